// Every run, newest first, paged with /runs' `before` cursor; a page with a run in
// progress keeps itself current.
import { ACTIVE, el, nextQuery, request, runsTable, showError, withQuery } from "./common.js";

const PAGE_SIZE = 50;
const POLL_MS = 1000;
const before = new URLSearchParams(location.search).get("before");

async function show() {
  const container = document.getElementById("runs");
  const query = new URLSearchParams({ limit: PAGE_SIZE });
  if (before) query.set("before", before);
  document.getElementById("source-runs").href = withQuery("/runs", query);
  let response;
  try {
    response = await request(withQuery("/runs", query));
  } catch (error) {
    showError(container, error, "Loading the runs");
    return;
  }
  const runs = await response.json();
  container.replaceChildren(runsTable(runs));
  const next = nextQuery(response);
  const nextLink = document.getElementById("next-page");
  nextLink.hidden = !next;
  if (next) nextLink.href = withQuery("/ui/runs", new URLSearchParams({ before: next.get("before") }));
  document.getElementById("first-page").hidden = !before;
  if (runs.some((run) => ACTIVE.has(run.status))) setTimeout(show, POLL_MS);
}

show();
