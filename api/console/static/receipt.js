// A run rendered in full, polled while it is queued or running; used by the run page and
// by the upload page to follow the run it started.
import { ACTIVE, ApiError, el, getJson, number, runProgress, seconds, showError, when } from "./common.js";

const POLL_MS = 1000;
const RUN_ID = /^[1-9][0-9]{0,9}$/;
const COUNT_LABELS = {
  users_in_archive: "Users in the zip",
  inserted: "New users",
  updated: "Updated",
  deleted: "Removed",
  unchanged: "Unchanged",
  kept_newer: "Kept (stored data newer)",
  rejected: "Rejected files",
  images: "Images in the zip",
  images_uploaded: "Images uploaded",
  images_deleted: "Images deleted",
};

function definitionList(pairs, className) {
  return el(
    "dl",
    { class: className },
    pairs.map(([label, value]) => el("div", {}, el("dt", {}, label), el("dd", {}, value))),
  );
}

function rejectionsTable(run) {
  if (run.rejections_total === 0) return el("p", {}, "No file was rejected.");
  const rows = run.rejections.map((rejection) =>
    el(
      "tr",
      {},
      el("td", { class: "wrap" }, rejection.member),
      el("td", {}, rejection.user_id ?? "–"),
      el("td", { class: "wrap" }, rejection.reason),
    ),
  );
  const shown = run.rejections.length < run.rejections_total
    ? `The first ${run.rejections.length} of ${number(run.rejections_total)} rejected files.`
    : `${number(run.rejections_total)} rejected files.`;
  return el(
    "div",
    { class: "scroll" },
    el(
      "table",
      { class: "data rejections" },
      el("caption", {}, shown),
      el("thead", {}, el("tr", {}, ["File in the zip", "User id", "Why it was rejected"].map((label) => el("th", { scope: "col" }, label)))),
      el("tbody", {}, rows),
    ),
  );
}

function render(run) {
  const parts = [
    definitionList(
      [
        ["Status", runProgress(run)],
        ["Trigger", run.trigger],
        ["Mode", run.mode],
        ["Source", run.source],
        ["Queued", when(run.queued_at)],
        ["Started", when(run.started_at)],
        ["Finished", when(run.finished_at)],
        ["Took", seconds(run.duration_seconds)],
      ],
      "fields",
    ),
  ];
  if (run.error) parts.push(el("p", { class: "error", role: "alert" }, `The run failed: ${run.error}`));
  if (run.note) parts.push(el("p", { class: "note" }, run.note));
  for (const warning of run.warnings || []) parts.push(el("p", { class: "warning" }, `Warning: ${warning}`));
  parts.push(
    el("h2", {}, "Counts"),
    definitionList(Object.entries(COUNT_LABELS).map(([name, label]) => [label, number(run.counts[name])]), "numbers small"),
    el("h2", {}, "Rejected files"),
    rejectionsTable(run),
  );
  return parts;
}

export async function showRun(runId, container, heading) {
  const notFound = () => {
    heading.textContent = "No such run";
    document.title = "No such run · zipflow";
    container.replaceChildren(el("p", { class: "error", role: "alert" }, `There is no run with the id “${runId}”.`));
  };
  if (!RUN_ID.test(String(runId))) {
    notFound();
    return;
  }
  const source = document.getElementById("source-run");
  if (source) source.href = `/runs/${runId}`;
  try {
    const run = await getJson(`/runs/${runId}`);
    heading.textContent = `Run ${run.id}: ${run.status}`;
    container.replaceChildren(...render(run));
    container.dataset.status = run.status;
    if (ACTIVE.has(run.status)) setTimeout(() => showRun(runId, container, heading), POLL_MS);
  } catch (error) {
    if (error instanceof ApiError && error.status === 404) notFound();
    else showError(container, error, "Loading the run");
  }
}
