// The overview: the numbers and the age histogram for the filters in the URL, and the
// latest runs, polled so that a running load's progress bar moves until its outcome shows.
import {
  ACTIVE, currentFilters, el, getJson, number, runsTable, setUpFilterForm, showError, withQuery,
} from "./common.js";

const RUNS_SHOWN = 5;
const POLL_ACTIVE_MS = 1000;
const POLL_IDLE_MS = 5000;
// Wider than this many years, the histogram counts five years per bar.
const YEARS_PER_BAR_LIMIT = 40;

const filters = currentFilters();

function showNumbers(stats) {
  document.getElementById("count").textContent = number(stats.count);
  document.getElementById("average-age").textContent =
    stats.average_age === null ? "–" : stats.average_age.toFixed(2);
  document.getElementById("with-image").textContent = number(stats.with_image);
  document.getElementById("without-image").textContent = number(stats.without_image);
}

function bins(ages) {
  if (ages.length === 0) return [];
  const youngest = ages[0].age;
  const oldest = ages[ages.length - 1].age;
  const width = oldest - youngest + 1 > YEARS_PER_BAR_LIMIT ? 5 : 1;
  const byStart = new Map();
  for (const row of ages) {
    const start = Math.floor(row.age / width) * width;
    const bin = byStart.get(start) || { start, end: start + width - 1, count: 0, withImage: 0 };
    bin.count += row.count;
    bin.withImage += row.with_image;
    byStart.set(start, bin);
  }
  const result = [];
  for (let start = Math.floor(youngest / width) * width; start <= oldest; start += width) {
    result.push(byStart.get(start) || { start, end: start + width - 1, count: 0, withImage: 0 });
  }
  return result;
}

function showHistogram(ages) {
  const list = document.getElementById("histogram");
  const rows = bins(ages);
  if (rows.length === 0) {
    list.replaceChildren(el("li", { class: "empty" }, "No user matches these filters."));
    return;
  }
  const tallest = Math.max(...rows.map((bin) => bin.count));
  const width = rows[0].end - rows[0].start + 1;
  list.replaceChildren(
    ...rows.map((bin) => {
      const label = width === 1 ? `${bin.start}` : `${bin.start}–${bin.end}`;
      const bar = el("span", { class: "bar", "aria-hidden": "true" });
      bar.style.height = `${(bin.count / tallest) * 100}%`;
      return el(
        "li",
        { "data-count": bin.count, title: `${label}: ${bin.count} users, ${bin.withImage} with an image` },
        el("span", { class: "bar-count" }, number(bin.count)),
        bar,
        el("span", { class: "bar-label" }, label),
        el("span", { class: "visually-hidden" }, ` years old: ${bin.count} users`),
      );
    }),
  );
  document.getElementById("histogram-caption").textContent =
    width === 1 ? "Users per year of age." : "Users per five years of age.";
}

async function showStats() {
  const numbers = document.getElementById("numbers");
  try {
    const [stats, ages] = await Promise.all([
      getJson(withQuery("/stats", filters)),
      getJson(withQuery("/stats/ages", filters)),
    ]);
    showNumbers(stats);
    showHistogram(ages.ages);
  } catch (error) {
    showError(numbers, error, "Loading the numbers");
  }
}

let activeBefore = false;

async function showRuns() {
  const container = document.getElementById("runs");
  let runs;
  try {
    runs = await getJson(`/runs?limit=${RUNS_SHOWN}`);
  } catch (error) {
    showError(container, error, "Loading the runs");
    return;
  }
  container.replaceChildren(runsTable(runs));
  const active = runs.some((run) => ACTIVE.has(run.status));
  // A load just ended: the numbers changed with it.
  if (activeBefore && !active) showStats();
  activeBefore = active;
  setTimeout(showRuns, active ? POLL_ACTIVE_MS : POLL_IDLE_MS);
}

document.getElementById("source-stats").href = withQuery("/stats", filters);
document.getElementById("source-ages").href = withQuery("/stats/ages", filters);
setUpFilterForm();
showStats();
showRuns();
