// The progress page updates itself from its JSON twin; without JavaScript it still works by reloading it.
// The page says where to poll and whether anything more will happen in data attributes (no inline script).
// Polling stops for good once the purchase reaches a state where nothing more happens on its own.
(function () {
  const state = document.getElementById("progress-state");
  if (!state || state.dataset.done === "true") { return; }
  const url = state.dataset.progressUrl;
  const stateWords = { done: "Done", running: "In progress", failed: "Failed", waiting: "Not started" };
  const whoWords = { customer: "What you need to do:", publisher: "What we are doing:" };

  function span(className, text) {
    const element = document.createElement("span");
    element.className = className;
    element.textContent = text;
    return element;
  }

  const timer = setInterval(async function () {
    const response = await fetch(url, { headers: { "Accept": "application/json" } });
    if (!response.ok) { return; }
    const data = await response.json();
    document.getElementById("progress-headline").textContent = data.headline;
    document.title = data.headline + " · VAST on Azure";
    state.className = "progress-state state-" + data.state;
    document.getElementById("progress-explanation").textContent = data.explanation;
    document.getElementById("progress-who").textContent = whoWords[data.who_must_act] || "What happens next:";
    document.getElementById("progress-what-to-do").textContent = data.what_to_do;
    document.getElementById("subscription-status").textContent = data.status_label;
    document.getElementById("current-step").textContent = data.current_step || "none";
    document.getElementById("progress-steps").replaceChildren(...data.steps.map(function (step) {
      const item = document.createElement("li");
      item.className = "step-" + step.state;
      item.append(
        span("step-name", step.name.charAt(0).toUpperCase() + step.name.slice(1)),
        span("step-state", stateWords[step.state] || step.state),
        span("typical", step.typical),
      );
      return item;
    }));
    document.getElementById("progress-events").replaceChildren(...data.events.map(function (event) {
      const item = document.createElement("li");
      const time = document.createElement("time");
      time.dateTime = event.occurred_at;
      time.textContent = event.occurred_at.substring(11, 19) + " UTC";
      item.append(time, " " + event.label);
      return item;
    }));
    if (data.terminal) {
      clearInterval(timer);
      document.getElementById("progress-hint").textContent =
        "This page no longer updates itself: nothing more happens until someone acts.";
    }
  }, 3000);
})();
