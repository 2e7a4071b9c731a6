// The users table: the filters and search of the URL, 100 users a page with the cursor of
// /data's Link header, the match count from /stats, and the CSV of the same selection.
import {
  currentFilters, el, getJson, nextQuery, number, request, setUpFilterForm, showError, token,
  withQuery,
} from "./common.js";

const PAGE_SIZE = 100;
const filters = currentFilters();
const after = new URLSearchParams(location.search).get("after");

function row(user) {
  return el(
    "tr",
    { "data-user-id": user.user_id },
    el("td", {}, el("a", { href: `/ui/users/${encodeURIComponent(user.user_id)}` }, user.user_id)),
    el("td", {}, user.first_name),
    el("td", {}, user.last_name),
    el("td", {}, user.birthdate),
    el("td", { class: "number" }, user.age),
    el("td", {}, user.img_path ? "yes" : "no"),
  );
}

async function showPage() {
  const body = document.querySelector("#users tbody");
  const query = new URLSearchParams(filters);
  query.set("limit", PAGE_SIZE);
  if (after) query.set("after", after);
  document.getElementById("source-data").href = withQuery("/data", query);
  let response;
  try {
    response = await request(withQuery("/data", query));
  } catch (error) {
    body.replaceChildren();
    showError(document.getElementById("summary"), error, "Loading the users");
    return;
  }
  const users = await response.json();
  body.replaceChildren(...users.map(row));
  if (users.length === 0) {
    body.append(el("tr", {}, el("td", { colspan: 6 }, "No user matches these filters.")));
  }
  const next = nextQuery(response);
  const nextLink = document.getElementById("next-page");
  if (next) {
    const pageQuery = new URLSearchParams(filters);
    pageQuery.set("after", next.get("after"));
    nextLink.href = withQuery("/ui/users", pageQuery);
    nextLink.hidden = false;
  }
  const firstLink = document.getElementById("first-page");
  firstLink.href = withQuery("/ui/users", filters);
  firstLink.hidden = !after;
}

async function showCount() {
  const summary = document.getElementById("summary");
  document.getElementById("source-stats").href = withQuery("/stats", filters);
  try {
    const stats = await getJson(withQuery("/stats", filters));
    const shown = after ? `, from after user ${after}` : "";
    summary.textContent = `${number(stats.count)} users match${shown}.`;
  } catch (error) {
    showError(summary, error, "Counting the users");
  }
}

// A plain link streams the CSV to disk; with a token it must be fetched with the header.
function setUpDownload() {
  const link = document.getElementById("download-csv");
  const query = new URLSearchParams(filters);
  query.set("format", "csv");
  link.href = withQuery("/data", query);
  link.addEventListener("click", async (event) => {
    if (!token()) return;
    event.preventDefault();
    try {
      const blob = await (await request(link.href, { headers: { Accept: "text/csv" } })).blob();
      const url = URL.createObjectURL(blob);
      const save = el("a", { href: url, download: "users.csv" });
      document.body.append(save);
      save.click();
      save.remove();
      URL.revokeObjectURL(url);
    } catch (error) {
      showError(document.getElementById("summary"), error, "Downloading the CSV");
    }
  });
}

setUpFilterForm();
setUpDownload();
showCount();
showPage();
