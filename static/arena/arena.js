// A new comparison: read both answers from the battle's stream (Server-Sent Events over a POST) into the
// two panes, then enable the vote. The vote itself is the page's plain form.
const root = document.getElementById("arena-battle");

function pane(side) {
  return {
    section: document.getElementById(`answer-${side}`),
    body: document.getElementById(`answer-${side}-body`),
    state: document.getElementById(`answer-${side}-state`),
    metrics: document.getElementById(`answer-${side}-metrics`),
  };
}

function showError(message) {
  const box = document.getElementById("arena-error");
  document.getElementById("arena-error-text").textContent = message;
  box.hidden = false;
}

function metricsText(frame) {
  const parts = [];
  if (frame.ttft_ms != null) parts.push(`First token ${Math.round(frame.ttft_ms)} ms`);
  if (frame.tokens_per_s != null) parts.push(`${frame.tokens_per_s.toFixed(1)} tokens/s`);
  parts.push(`${frame.completion_tokens} tokens`);
  if (frame.finish_reason === "length") parts.push("cut at the length limit");
  return parts.join(" · ");
}

function handle(type, frame) {
  if (type === "delta") {
    const p = pane(frame.side);
    const atEnd = p.body.scrollHeight - p.body.scrollTop - p.body.clientHeight < 24;
    p.body.textContent += frame.text;
    if (atEnd) p.body.scrollTop = p.body.scrollHeight;
    p.state.textContent = "Answering";
  } else if (type === "done") {
    const p = pane(frame.side);
    p.state.textContent = "Done";
    p.section.setAttribute("aria-busy", "false");
    p.metrics.textContent = metricsText(frame);
  } else if (type === "error") {
    const p = pane(frame.side);
    p.state.textContent = "Failed";
    p.section.setAttribute("aria-busy", "false");
    p.metrics.textContent = frame.message;
  } else if (type === "answered") {
    root.dataset.status = frame.status;
    const help = document.getElementById("arena-vote-help");
    if (frame.status === "answered") {
      document.querySelectorAll(".arena__choices button").forEach((button) => { button.disabled = false; });
      if (help) help.textContent = "Vote once; then the models' names are shown.";
    } else {
      if (help) help.textContent = "This comparison can't be voted on.";
      showError(frame.error || "One of the answers failed.");
    }
  }
}

async function run() {
  ["a", "b"].forEach((side) => { pane(side).state.textContent = "Waiting"; });
  let response;
  try {
    response = await fetch(root.dataset.streamUrl, {
      method: "POST", credentials: "same-origin",
      headers: { "X-CSRFToken": root.dataset.csrf, Accept: "text/event-stream" },
    });
  } catch (error) {
    showError("The server could not be reached. Check your connection and reload the page.");
    return;
  }
  if (!response.ok) {
    let message = `The comparison could not start (HTTP ${response.status}).`;
    try { message = (await response.json()).error.message || message; } catch (error) { /* not JSON */ }
    showError(message);
    return;
  }
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += value;
    let cut;
    while ((cut = buffer.indexOf("\n\n")) !== -1) {
      const block = buffer.slice(0, cut);
      buffer = buffer.slice(cut + 2);
      let type = "message", data = "";
      for (const line of block.split("\n")) {
        if (line.startsWith("event: ")) type = line.slice(7);
        else if (line.startsWith("data: ")) data += line.slice(6);
      }
      if (data) handle(type, JSON.parse(data));
    }
  }
  if (root.dataset.status === "new") {
    showError("The answers stopped before they were complete. Reload the page to see what was kept.");
  }
}

if (root && root.dataset.status === "new") {
  run();
}
