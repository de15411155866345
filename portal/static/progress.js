// The progress page updates itself from its JSON twin; without JavaScript it still works by reloading it.
// The page says where to poll and whether anything more will happen in data attributes (no inline script).
(function () {
  const list = document.getElementById("progress-events");
  if (!list || list.dataset.done === "true") { return; }
  const url = list.dataset.progressUrl;
  const timer = setInterval(async function () {
    const response = await fetch(url, { headers: { "Accept": "application/json" } });
    if (!response.ok) { return; }
    const data = await response.json();
    document.getElementById("subscription-status").textContent = data.subscription_status;
    document.getElementById("cluster-status").textContent = data.cluster_status || "not requested";
    list.replaceChildren(...data.events.map(function (event) {
      const item = document.createElement("li");
      item.textContent = event.occurred_at.substring(11, 19) + " " + event.action + " (" + event.outcome + ")";
      return item;
    }));
    if (data.done) {
      document.getElementById("progress-hint").textContent = "Done.";
      clearInterval(timer);
    }
  }, 3000);
})();
