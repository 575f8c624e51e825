// The SLA board: sign in with a token (kept in this tab's sessionStorage), acknowledge, and
// refresh the table from /board/rows. The page works without this script, read-only.
import { initAll } from "/static/nhsuk/nhsuk-frontend.min.js";

initAll();

const REFRESH_MS = 1000 * Number(document.body.dataset.refreshSeconds || 30);
const TOKEN_KEY = "podlink-token";
const rows = document.getElementById("board-rows");
const updated = document.getElementById("updated");
const changes = document.getElementById("changes");
const error = document.getElementById("board-error");
const form = document.getElementById("sign-in");
const tokenInput = document.getElementById("token");

function showError(text) {
  error.textContent = text ? "Error: " + text : "";
  error.hidden = !text;
}

function showSignedIn() {
  const signedIn = Boolean(sessionStorage.getItem(TOKEN_KEY));
  document.getElementById("token-group").hidden = signedIn;
  document.getElementById("sign-in-button").hidden = signedIn;
  document.getElementById("signed-in").hidden = !signedIn;
}

async function refresh() {
  try {
    const response = await fetch("/board/rows", { cache: "no-store" });
    if (!response.ok) throw new Error("the board answered " + response.status);
    const html = await response.text();
    // Replaced and announced only when something changed: focus stays where it is, and a
    // screen reader is not told every 30 seconds.
    const version = response.headers.get("X-Podlink-Board-Version");
    if (version !== rows.dataset.version) {
      rows.innerHTML = html;
      rows.dataset.version = version;
      changes.textContent = "The board has changed.";
    }
    updated.textContent = "Updated " + response.headers.get("X-Podlink-Updated");
  } catch (e) {
    updated.textContent = "Could not update the board: " + e.message;
  }
}

async function acknowledge(button) {
  const token = sessionStorage.getItem(TOKEN_KEY);
  if (!token) {
    showError("sign in with your podlink token to acknowledge");
    tokenInput.focus();
    return;
  }
  button.disabled = true;
  const response = await fetch("/alerts/" + encodeURIComponent(button.dataset.alertId) + "/ack", {
    method: "POST",
    headers: { Authorization: "Bearer " + token, "Content-Type": "application/json" },
    body: "{}",
  });
  if (response.status === 401) {
    sessionStorage.removeItem(TOKEN_KEY);
    showSignedIn();
    showError("that token is not recognised: sign in again");
  } else if (!response.ok) {
    const problem = await response.json().catch(() => ({}));
    showError(problem.detail || "acknowledging failed (" + response.status + ")");
  } else {
    showError("");
  }
  await refresh();
}

form.addEventListener("submit", (event) => {
  event.preventDefault();
  const token = tokenInput.value.trim();
  if (!token) {
    showError("enter your podlink token");
    tokenInput.focus();
    return;
  }
  sessionStorage.setItem(TOKEN_KEY, token);
  tokenInput.value = "";
  showError("");
  showSignedIn();
});

document.getElementById("sign-out").addEventListener("click", () => {
  sessionStorage.removeItem(TOKEN_KEY);
  showSignedIn();
  tokenInput.focus();
});

rows.addEventListener("click", (event) => {
  const button = event.target.closest("button.podlink-ack");
  if (button) acknowledge(button);
});

showSignedIn();
setInterval(refresh, REFRESH_MS);
