// One run, the uploader's receipt: status (with live progress while it loads), counts,
// error and the rejected files.
import { showRun } from "./receipt.js";

const article = document.getElementById("run");
showRun(article.dataset.runId, document.getElementById("run-body"), document.getElementById("run-heading"));
