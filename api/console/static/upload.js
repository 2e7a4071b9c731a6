// Upload a zip with POST /data (XMLHttpRequest, for its upload progress), then find and
// follow the run the bucket notification starts; or ask for the newest zip to load again.
import { ApiError, authHeaders, el, getJson, request, sentence, showToken } from "./common.js";
import { showRun } from "./receipt.js";

const FIND_RUN_MS = 1000;
const WAIT_NOTICE_MS = 30000;

const form = document.getElementById("upload-form");
const input = document.getElementById("zip-file");
const zone = document.getElementById("drop-zone");
const message = document.getElementById("upload-message");
const followed = document.getElementById("followed-run");
const bar = document.getElementById("upload-bar");
const percent = document.getElementById("upload-percent");

function say(text) {
  message.textContent = text;
}

function follow(runId) {
  const heading = el("h3", {}, `Run ${runId}`);
  const body = el("div", { id: "followed-run-body" });
  followed.replaceChildren(heading, body, el("p", {}, el("a", { href: `/ui/runs/${runId}` }, "Open this run's page")));
  showRun(runId, body, heading);
}

// The worker records the run when MinIO's notification reaches it: look for its source.
async function findRun(source, started) {
  try {
    const runs = await getJson("/runs?limit=20");
    const run = runs.find((candidate) => candidate.source === source);
    if (run) {
      say(`Stored as ${source}; the worker started run ${run.id}.`);
      follow(run.id);
      return;
    }
  } catch (error) {
    say(sentence(error, "Looking for the run"));
  }
  if (Date.now() - started > WAIT_NOTICE_MS) {
    say(`Stored as ${source}, but no run has started for it yet. Is the worker running, and does the bucket notify RabbitMQ? Still waiting…`);
  }
  setTimeout(() => findRun(source, started), FIND_RUN_MS);
}

function errorOf(xhr) {
  let body = {};
  try {
    body = JSON.parse(xhr.responseText);
  } catch {
    body = {};
  }
  return new ApiError(xhr.status, body.title, body.description);
}

function upload(file) {
  if (!file) {
    say("Choose a .zip first, or drop one on the box.");
    return;
  }
  const xhr = new XMLHttpRequest();
  xhr.open("POST", "/data");
  xhr.setRequestHeader("Content-Type", "application/zip");
  xhr.setRequestHeader("Accept", "application/json");
  for (const [name, value] of Object.entries(authHeaders())) xhr.setRequestHeader(name, value);
  document.getElementById("upload-progress").hidden = false;
  bar.value = 0;
  percent.textContent = "0 %";
  xhr.upload.addEventListener("progress", (event) => {
    if (!event.lengthComputable) return;
    bar.value = Math.round((event.loaded / event.total) * 100);
    percent.textContent = `${bar.value} %`;
  });
  xhr.addEventListener("load", () => {
    if (xhr.status === 202) {
      const stored = JSON.parse(xhr.responseText);
      bar.value = 100;
      percent.textContent = "100 %";
      const source = `${stored.bucket}/${stored.key}`;
      say(`Stored as ${source} (${stored.size} bytes). Waiting for the worker to start its run…`);
      findRun(source, Date.now());
      return;
    }
    const error = errorOf(xhr);
    if (error.status === 401) showToken();
    say(sentence(error, "The upload"));
  });
  xhr.addEventListener("error", () => say(sentence(new ApiError(0, "", ""), "The upload")));
  say(`Uploading ${file.name}…`);
  xhr.send(file);
}

async function reprocess() {
  say("Asking for the newest zip to be loaded again…");
  try {
    const response = await request("/data", { method: "POST" });
    const queued = await response.json();
    say(`Queued run ${queued.run_id} for ${queued.source}.`);
    follow(queued.run_id);
  } catch (error) {
    if (error instanceof ApiError && error.status === 401) showToken();
    say(sentence(error, "Loading again"));
  }
}

form.addEventListener("submit", (event) => {
  event.preventDefault();
  upload(input.files[0]);
});
input.addEventListener("change", () => {
  if (input.files[0]) say(`Ready to upload ${input.files[0].name} (${input.files[0].size} bytes).`);
});
for (const name of ["dragenter", "dragover"]) {
  zone.addEventListener(name, (event) => {
    event.preventDefault();
    zone.classList.add("dragging");
  });
}
zone.addEventListener("dragleave", () => zone.classList.remove("dragging"));
zone.addEventListener("drop", (event) => {
  event.preventDefault();
  zone.classList.remove("dragging");
  const file = event.dataTransfer.files[0];
  upload(file);
});
document.getElementById("reprocess").addEventListener("click", reprocess);
showToken();
