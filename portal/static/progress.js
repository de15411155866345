// The progress page updates itself from its JSON twin; without JavaScript it still works by reloading it.
// The page says where to poll and whether anything more will happen in data attributes (no inline script).
// Polling stops for good once the purchase reaches a state where nothing more happens on its own.
(function () {
  const list = document.getElementById("progress-events");
  if (!list || list.dataset.done === "true") { return; }
  const url = list.dataset.progressUrl;
  const timer = setInterval(async function () {
    const response = await fetch(url, { headers: { "Accept": "application/json" } });
    if (!response.ok) { return; }
    const data = await response.json();
    document.getElementById("progress-headline").textContent = data.headline;
    document.getElementById("progress-explanation").textContent = data.explanation;
    document.getElementById("progress-what-to-do").textContent = data.what_to_do;
    document.getElementById("subscription-status").textContent = data.status_label;
    document.getElementById("current-step").textContent = data.current_step || "none";
    list.replaceChildren(...data.events.map(function (event) {
      const item = document.createElement("li");
      item.textContent = event.occurred_at.substring(11, 19) + " " + event.label;
      return item;
    }));
    if (data.terminal) {
      clearInterval(timer);
      document.getElementById("progress-hint").textContent =
        "This page no longer updates itself: nothing more happens until someone acts.";
    }
  }, 3000);
})();
