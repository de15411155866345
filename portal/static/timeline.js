// Progressive enhancement of the provisioning timeline: poll its JSON twin until the cluster settles.
// Without JavaScript the page shows the same list and a reload brings it up to date.
(function () {
  "use strict";
  const POLL_MILLISECONDS = 1500;
  const container = document.getElementById("timeline");
  if (!container || container.dataset.done === "true") {
    return;
  }
  const list = document.getElementById("timeline-events");
  const state = document.getElementById("timeline-state");
  const clusterStatus = document.getElementById("cluster-status");

  // Each line as the server writes it: its time in UTC, the event in words, and who did it; only a real failure
  // carries the failure tone (see core/audit/sentences.py).
  function renderEvents(events) {
    const items = events.map(function (event) {
      const item = document.createElement("li");
      item.className = "tone-" + event.tone;
      item.dataset.action = event.action;
      const time = document.createElement("time");
      time.dateTime = event.occurred_at;
      time.textContent = event.occurred_at_text;
      const sentence = document.createElement("span");
      sentence.className = "sentence";
      sentence.textContent = event.sentence;
      const actor = document.createElement("span");
      actor.className = "actor";
      actor.textContent = "(" + event.who + ")";
      item.append(time, " ", sentence, " ", actor);
      return item;
    });
    if (items.length > 0) {
      list.replaceChildren.apply(list, items);
    }
  }

  function poll() {
    fetch(container.dataset.timelineUrl, { headers: { Accept: "application/json" }, credentials: "same-origin" })
      .then(function (response) {
        if (!response.ok) {
          throw new Error("status " + response.status);
        }
        return response.json();
      })
      .then(function (body) {
        renderEvents(body.events);
        if (clusterStatus && body.cluster_status) {
          clusterStatus.textContent = body.cluster_status;
          clusterStatus.className = "status status-" + body.cluster_status;
        }
        if (body.done) {
          // The outputs (endpoint, alias, key id) are rendered server-side: reload once to show them.
          state.textContent = "Finished (" + body.cluster_status + "). Loading the cluster's details...";
          window.location.reload();
          return;
        }
        state.textContent = "In progress (" + (body.current_step_text || body.cluster_status) + "); updating by itself.";
        window.setTimeout(poll, POLL_MILLISECONDS);
      })
      .catch(function () {
        state.textContent = "Live updates paused (connection problem). Reload the page to see the latest state.";
      });
  }

  state.textContent = "Loading the latest steps...";
  window.setTimeout(poll, POLL_MILLISECONDS);
})();
