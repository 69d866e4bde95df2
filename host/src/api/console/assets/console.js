// hookhost console: progressive enhancement only; every page works without it.
"use strict";

// Events list: add events newer than the newest shown, without reload.
function liveEvents() {
  const rows = document.getElementById("event-rows");
  if (!rows || !rows.dataset.live) return;
  let after = rows.dataset.after || "0";
  const poll = async () => {
    try {
      const res = await fetch(`${rows.dataset.live}&after=${encodeURIComponent(after)}`, {
        credentials: "same-origin",
        headers: { accept: "text/html" },
        redirect: "error",
      });
      if (res.ok) {
        const html = await res.text();
        if (html.trim()) {
          rows.insertAdjacentHTML("afterbegin", html);
          document.querySelectorAll("p.empty").forEach((p) => p.remove());
        }
        after = res.headers.get("x-after") || after;
        rows.dataset.after = after;
      }
    } catch (_) {
      // Signed out or offline: try again at the next tick.
    }
    setTimeout(poll, 1500);
  };
  setTimeout(poll, 1500);
}

// Plugins page: while a version compiles, look again shortly.
function refreshWhileCompiling() {
  if (document.querySelector("[data-compiling]") && !document.getElementById("dry-run")) {
    setTimeout(() => window.location.replace("/console/plugins"), 1500);
  }
}

document.addEventListener("DOMContentLoaded", () => {
  liveEvents();
  refreshWhileCompiling();
});
