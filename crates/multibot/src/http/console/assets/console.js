// Multibot console: keeps the fleet table live. Without JavaScript every page still works; it just does not update.
"use strict";
(function () {
  const rows = document.getElementById("fleet-rows");
  if (!rows || !window.EventSource) return;
  const source = new EventSource(rows.dataset.live);
  source.addEventListener("rows", (event) => {
    // The server renders and escapes the rows; they replace the table's body as they are.
    rows.innerHTML = event.data;
  });
  source.addEventListener("error", () => {
    // A closed stream (the session ended, the server stopped) is retried by the browser; a refused one is not.
    if (source.readyState === EventSource.CLOSED) rows.dataset.stale = "true";
  });
})();
