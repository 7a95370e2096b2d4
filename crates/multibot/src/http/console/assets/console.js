// Multibot console: keeps the fleet table live. Without JavaScript every page still works; it just does not update.
"use strict";
(function () {
  const rows = document.getElementById("fleet-rows");
  if (!rows || !window.EventSource) return;
  const source = new EventSource(rows.dataset.live);
  let pending = null;
  const apply = () => {
    // The server renders and escapes the rows; they replace the table's body as they are. Not while a control in
    // the table has the keyboard's focus: it would be lost. The latest rows wait until focus leaves the table.
    if (pending === null || rows.contains(document.activeElement)) return;
    rows.innerHTML = pending;
    pending = null;
  };
  source.addEventListener("rows", (event) => {
    pending = event.data;
    apply();
  });
  rows.addEventListener("focusout", () => setTimeout(apply, 0));
  source.addEventListener("error", () => {
    // A closed stream (the session ended, the server stopped) is retried by the browser; a refused one is not.
    if (source.readyState === EventSource.CLOSED) rows.dataset.stale = "true";
  });
})();
