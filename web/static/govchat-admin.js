/* Admin pages: while an index job runs, poll its status and reload the page when it ends.
   Without JavaScript the page says how far the job had got and offers a refresh link. */
(function () {
  "use strict";
  const status = document.querySelector("[data-poll]");
  if (!status) return;
  const url = status.getAttribute("data-poll");
  async function poll() {
    try {
      const res = await fetch(url, { headers: { Accept: "application/json" } });
      if (res.ok) {
        const job = await res.json();
        const current = job.current;
        if (!current || current.status !== "running") {
          status.textContent = "Finished. Loading the results…";
          location.reload();
          return;
        }
        const total = current.pages_total ? ` of ${current.pages_total}` : "";
        const kind = current.kind === "dry_run" ? "Checking for changes" : "Re-indexing";
        status.textContent = `${kind}: ${current.pages_done}${total} pages so far.`;
      }
    } catch (e) {
      /* try again shortly */
    }
    setTimeout(poll, 1000);
  }
  setTimeout(poll, 500);
})();
