// Attach a file from the composer: it goes into a collection the user picks (one they may write to),
// ingest runs in the background with its progress shown here, Send waits until the file is read, and
// then the conversation's Knowledge picker points at that collection so the next reply can cite it.

const box = document.getElementById("attach-box");

if (box) {
  const toggle = document.getElementById("attach");
  const panel = document.getElementById("attach-panel");
  const collection = document.getElementById("attach-collection");
  const input = document.getElementById("attach-input");
  const status = document.getElementById("attach-status");
  const text = document.getElementById("attach-text");
  const progress = document.getElementById("attach-progress");
  const send = document.getElementById("send");
  const scope = document.getElementById("knowledge-scope");
  const POLL_MS = 700;

  const openPanel = (open) => {
    panel.hidden = !open;
    toggle.setAttribute("aria-expanded", String(open));
    if (open) collection.focus();
  };
  toggle.addEventListener("click", () => openPanel(panel.hidden));
  panel.addEventListener("keydown", (event) => {
    if (event.key === "Escape") { openPanel(false); toggle.focus(); }
  });

  const say = (message, { busy = false, value = null } = {}) => {
    status.hidden = false;
    text.textContent = message;
    progress.hidden = !busy;
    if (value == null) progress.removeAttribute("value"); else progress.value = value;
    // Send waits while the file is read, so a question about it is not answered without it.
    send.disabled = busy;
    send.title = busy ? "Wait until the attached file is read" : "";
  };

  const errorOf = async (response) => {
    try {
      const body = await response.json();
      return body.error?.message || body.detail || body.message || `The upload failed (HTTP ${response.status}).`;
    } catch {
      return `The upload failed (HTTP ${response.status}).`;
    }
  };

  const useCollection = (id, name) => {
    if (!scope) return;
    if (![...scope.options].some((o) => o.value === String(id))) scope.append(new Option(name, String(id)));
    scope.value = String(id);
  };

  const follow = async (doc, name, collectionName) => {
    for (;;) {
      if (doc.status === "ready") {
        useCollection(doc.collection_id, collectionName);
        say(`${name} is ready: replies now answer from ${collectionName}.`);
        return;
      }
      if (doc.status === "failed") {
        say(`${name} could not be read: ${doc.error || "ingest failed"}.`);
        return;
      }
      say(`Reading ${name}… ${doc.progress || 0}%`, { busy: true, value: doc.progress || 0 });
      await new Promise((resolve) => setTimeout(resolve, POLL_MS));
      const response = await fetch(doc.status_url, { credentials: "same-origin", headers: { Accept: "application/json" } });
      if (!response.ok) { say(await errorOf(response)); return; }
      doc = await response.json();
    }
  };

  input.addEventListener("change", async () => {
    const file = input.files[0];
    if (!file) return;
    const collectionName = collection.selectedOptions[0]?.textContent || "the collection";
    openPanel(false);
    say(`Uploading ${file.name}…`, { busy: true });
    const body = new FormData();
    body.append("file", file, file.name);
    try {
      const response = await fetch(`/api/knowledge/collections/${collection.value}/documents`, {
        method: "POST", body, credentials: "same-origin",
        headers: { Accept: "application/json", "X-CSRFToken": box.dataset.csrf },
      });
      if (!response.ok) { say(await errorOf(response)); return; }
      await follow(await response.json(), file.name, collectionName);
    } catch (error) {
      say(`The upload failed: ${error.message}. Check the connection and try again.`);
    } finally {
      input.value = "";
    }
  });
}
