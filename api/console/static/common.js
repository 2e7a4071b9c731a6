// What every console page shares: calling the public API with the reader's token, turning
// its errors into sentences, and building elements whose text is always text.

const TOKEN_KEY = "zipflow.token";
export const FILTER_NAMES = ["q", "is_image_exists", "min_age", "max_age"];

export class ApiError extends Error {
  constructor(status, title, description) {
    super(description || title || `HTTP ${status}`);
    this.status = status;
    this.title = title || "";
    this.description = description || "";
  }
}

export function token() {
  return sessionStorage.getItem(TOKEN_KEY) || "";
}

export function authHeaders() {
  const value = token();
  return value ? { Authorization: `Bearer ${value}` } : {};
}

async function errorFrom(response) {
  let body = {};
  try {
    body = await response.json();
  } catch {
    body = {};
  }
  return new ApiError(response.status, body.title, body.description);
}

// fetch() on the API with the token; the response when it is 2xx, an ApiError otherwise.
export async function request(path, options = {}) {
  let response;
  try {
    response = await fetch(path, {
      ...options,
      headers: { Accept: "application/json", ...authHeaders(), ...(options.headers || {}) },
    });
  } catch {
    throw new ApiError(0, "", "");
  }
  if (!response.ok) {
    const error = await errorFrom(response);
    if (error.status === 401) askForToken(sentence(error));
    throw error;
  }
  return response;
}

export async function getJson(path) {
  return (await request(path)).json();
}

// What went wrong, as a sentence a person can act on.
export function sentence(error, doing = "This page") {
  if (!(error instanceof ApiError)) return `${doing} failed: ${error.message}`;
  const detail = error.description ? ` (${error.description})` : "";
  switch (error.status) {
    case 0:
      return "The API did not answer. Is it running, and is this machine on the network?";
    case 401:
      return token()
        ? "The API refused the token you gave. Type the right token above and try again."
        : "The API needs a token for this. Type it above; it is kept only in this browser tab.";
    case 413:
      return `The zip is too large for the API: ${error.description || "its limit is ZIPFLOW_API_MAX_UPLOAD_BYTES"}.`;
    case 503:
      return `${serviceDown(error.title)} is not answering, so this could not be done. Try again when it is back${detail}.`;
    case 404:
      return `Not found: ${error.description || error.title}.`;
    case 400:
      return `The API refused a parameter: ${error.description || error.title}.`;
    default:
      return `The API answered ${error.status} ${error.title}${detail}.`;
  }
}

function serviceDown(title) {
  if (/object storage/i.test(title)) return "Object storage (MinIO)";
  if (/broker/i.test(title)) return "The message broker (RabbitMQ)";
  if (/store/i.test(title)) return "The database";
  return "A service the API needs";
}

// Show the token form, saying why; saving the token reloads the page to use it.
export function askForToken(reason = "") {
  const form = document.getElementById("token-form");
  if (!form) return;
  form.hidden = false;
  document.getElementById("token-reason").textContent = reason;
}

function setUpTokenForm() {
  const form = document.getElementById("token-form");
  if (!form) return;
  const input = document.getElementById("token-input");
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const value = input.value.trim();
    if (value) sessionStorage.setItem(TOKEN_KEY, value);
    input.value = "";
    location.reload();
  });
  document.getElementById("token-forget").addEventListener("click", () => {
    sessionStorage.removeItem(TOKEN_KEY);
    location.reload();
  });
}

export function showToken() {
  askForToken(token() ? "A token is in use for this browser tab." : "");
}

// An element with attributes and children; strings become text nodes, never markup.
export function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === null || value === undefined || value === false) continue;
    if (name === "text") node.textContent = String(value);
    else node.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

export function setStatus(text) {
  document.getElementById("status").textContent = text;
}

export function number(value) {
  return value === null || value === undefined ? "–" : Number(value).toLocaleString("en");
}

export function when(timestamp) {
  if (!timestamp) return "–";
  return timestamp.replace("T", " ").replace(/\.\d+Z$|Z$/, " UTC");
}

export function seconds(value) {
  return value === null || value === undefined ? "–" : `${value.toFixed(1)} s`;
}

// The filters in this page's query string, without empty ones.
export function currentFilters() {
  const query = new URLSearchParams(location.search);
  const filters = new URLSearchParams();
  for (const name of FILTER_NAMES) {
    const value = query.get(name);
    if (value) filters.set(name, value);
  }
  return filters;
}

// Fill the filter form from the URL, and submit it as a clean, bookmarkable query string.
export function setUpFilterForm() {
  const form = document.getElementById("filters");
  if (!form) return;
  const filters = currentFilters();
  for (const name of FILTER_NAMES) {
    if (filters.has(name)) form.elements[name].value = filters.get(name);
  }
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const query = new URLSearchParams();
    for (const name of FILTER_NAMES) {
      const value = form.elements[name].value.trim();
      if (value) query.set(name, value);
    }
    const text = query.toString();
    location.assign(location.pathname + (text ? `?${text}` : ""));
  });
}

export function withQuery(path, query) {
  const text = query.toString();
  return text ? `${path}?${text}` : path;
}

// The query string of the rel="next" URL of a Link header, or null on the last page.
export function nextQuery(response) {
  const link = response.headers.get("Link") || "";
  const match = link.match(/<([^>]*)>;\s*rel="next"/);
  if (!match) return null;
  return new URL(match[1], location.origin).searchParams;
}

export const ACTIVE = new Set(["queued", "running"]);

// A run's state in a few words, with a progress bar while it loads.
export function runProgress(run) {
  if (!ACTIVE.has(run.status)) return el("span", { class: `badge ${run.status}` }, run.status);
  const { members_read: read, members_total: total } = run.progress;
  const wrapper = el("span", { class: "progress-cell" });
  wrapper.append(el("span", { class: `badge ${run.status}` }, run.status));
  if (total > 0) {
    wrapper.append(
      el("progress", { max: total, value: read, "aria-label": `run ${run.id} progress` }),
      el("span", { class: "progress-text" }, `${number(read)} of ${number(total)} files read`),
    );
  } else {
    wrapper.append(el("span", { class: "progress-text" }, run.status === "queued" ? "waiting for the worker" : "opening the zip"));
  }
  return wrapper;
}

export function runCounts(run) {
  const c = run.counts;
  return `${number(c.inserted)} new, ${number(c.updated)} updated, ${number(c.deleted)} removed, ${number(c.rejected)} rejected`;
}

// The table of runs shown on the overview and on /ui/runs.
export function runsTable(runs) {
  if (runs.length === 0) return el("p", {}, "No run yet. Upload a zip to start one.");
  const rows = runs.map((run) =>
    el(
      "tr",
      { "data-run-id": run.id, "data-status": run.status },
      el("td", {}, el("a", { href: `/ui/runs/${run.id}` }, `#${run.id}`)),
      el("td", {}, runProgress(run)),
      el("td", {}, run.trigger),
      el("td", { class: "wrap" }, run.source),
      el("td", {}, runCounts(run)),
      el("td", {}, seconds(run.duration_seconds)),
      el("td", {}, when(run.queued_at)),
    ),
  );
  const head = ["Run", "Status", "Trigger", "Source", "Users", "Took", "Queued"].map((label) =>
    el("th", { scope: "col" }, label),
  );
  return el("table", { class: "data runs" }, el("thead", {}, el("tr", {}, head)), el("tbody", {}, rows));
}

export function showError(container, error, doing) {
  container.replaceChildren(el("p", { class: "error", role: "alert" }, sentence(error, doing)));
}

setUpTokenForm();
