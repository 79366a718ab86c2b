// Taskpost dashboard: keeps a job page live without reloading it.
// Loaded as a file (the Content-Security-Policy allows no inline script); written by hand, no
// framework. Text from the server is only ever set with textContent, never parsed as HTML.
"use strict";

(function () {
  const live = document.getElementById("live");
  if (!live || live.dataset.terminal === "true") {
    return;
  }
  const stateEl = document.getElementById("job-state");
  const attemptsEl = document.getElementById("job-attempts");
  const bar = document.getElementById("job-progress");
  const percent = document.getElementById("job-progress-text");
  const message = document.getElementById("job-message");
  const partial = document.getElementById("job-partial");
  const timeline = document.querySelector("#timeline tbody");
  const terminalStates = ["completed", "dead", "cancelled"];
  const liveKinds = ["progress", "partial"];

  // "2026-12-03T13:13:32.123+00:00" -> "2026-12-03 13:13:32", as the server renders times.
  function when(iso) {
    return iso ? iso.replace("T", " ").slice(0, 19) : "";
  }

  function addTimelineRow(event) {
    const empty = timeline.querySelector("tr.no-events");
    if (empty) {
      empty.remove();
    }
    const row = document.createElement("tr");
    const kind = event.kind === "state" && event.state ? "state: " + event.state : event.kind;
    const cells = [when(event.at), kind, event.attempt == null ? "" : String(event.attempt), event.worker_id || "", event.detail || ""];
    for (const text of cells) {
      const cell = document.createElement("td");
      cell.textContent = text;
      row.appendChild(cell);
    }
    timeline.appendChild(row);
  }

  function showFacts(job) {
    document.getElementById("job-started").textContent = when(job.started_at);
    document.getElementById("job-ended").textContent = when(job.ended_at);
    document.getElementById("job-agent").textContent = job.worker_id || "";
  }

  function showState(state) {
    stateEl.textContent = state;
    stateEl.className = "state " + state;
    if (state === "completed") {
      showProgress(1, null);
    }
    const cancel = document.getElementById("cancel");
    if (cancel && terminalStates.indexOf(state) >= 0) {
      cancel.closest("form").remove();
    }
  }

  function showProgress(value, text) {
    if (typeof value === "number") {
      bar.value = value;
      percent.textContent = Math.round(value * 100) + "%";
    }
    if (typeof text === "string") {
      message.textContent = text;
    }
  }

  function showPartial(lines) {
    partial.textContent = lines.length ? lines.join("\n") + "\n" : "";
  }

  function appendPartial(line) {
    partial.textContent += line + "\n";
  }

  function stream(url) {
    const source = new EventSource(url);
    source.onmessage = function (message) {
      const event = JSON.parse(message.data);
      if (liveKinds.indexOf(event.kind) < 0) {
        addTimelineRow(event);
      }
      if (typeof event.attempt === "number") {
        attemptsEl.textContent = String(event.attempt);
      }
      if (event.kind === "state" && event.state) {
        showState(event.state);
        if (terminalStates.indexOf(event.state) >= 0) {
          // Done: stop the browser from reconnecting, and read the final attempts and output.
          source.close();
          refresh(live.dataset.poll);
        }
      } else if (event.kind === "progress") {
        showProgress(event.progress, event.message);
      } else if (event.kind === "partial") {
        appendPartial(chunkText(event.partial));
      }
    };
    source.onerror = function () {
      // EventSource reconnects by itself (with Last-Event-ID) unless the server refused it.
      if (source.readyState === EventSource.CLOSED) {
        poll(live.dataset.poll);
      }
    };
  }

  function chunkText(chunk) {
    if (typeof chunk === "string") {
      return chunk;
    }
    if (chunk && typeof chunk.text === "string") {
      return chunk.text;
    }
    return JSON.stringify(chunk);
  }

  // One read of the job; resolves to whether it has ended (or polling should stop).
  async function refresh(url) {
    try {
      const response = await fetch(url, { credentials: "same-origin", cache: "no-store" });
      if (response.status === 401) {
        message.textContent = "Signed out: reload the page to sign in again.";
        return true;
      }
      if (response.ok) {
        const job = await response.json();
        showState(job.state);
        attemptsEl.textContent = String(job.attempts);
        showProgress(job.progress, job.message || "");
        showPartial(job.partial);
        showFacts(job);
        return job.terminal;
      }
    } catch (error) {
      // The coordinator may be restarting: the next tick tries again.
    }
    return false;
  }

  function poll(url) {
    async function tick() {
      if (!(await refresh(url))) {
        window.setTimeout(tick, 1000);
      }
    }
    window.setTimeout(tick, 1000);
  }

  if (live.dataset.stream && window.EventSource) {
    stream(live.dataset.stream);
  } else {
    poll(live.dataset.poll);
  }
})();
