/*
 * Knowledge pages: drag-and-drop upload of several files at once, each with its own live
 * progress (polling the document's status URL until it is ready or failed).
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
(function () {
  "use strict";

  var POLL_MS = 800;
  var LABELS = { pending: "Pending", processing: "Processing", ready: "Ready", failed: "Failed" };

  function csrfToken(form) {
    var input = form.querySelector("input[name=csrfmiddlewaretoken]");
    return input ? input.value : "";
  }

  function badgeClass(status) {
    if (status === "ready") return "badge--success";
    if (status === "failed") return "badge--danger";
    return "badge--warning";
  }

  function render(row, doc) {
    row.dataset.status = doc.status;
    var progress = row.querySelector(".doc-progress");
    var badge = row.querySelector(".doc-badge");
    progress.value = doc.progress;
    progress.textContent = doc.progress + "%";
    progress.hidden = doc.status === "ready" || doc.status === "failed";
    badge.textContent = LABELS[doc.status] || doc.status;
    badge.className = "badge doc-badge " + badgeClass(doc.status);
    row.querySelector(".doc-error").textContent = doc.error || "";
    row.querySelector(".doc-chunks").textContent = doc.chunk_count;
  }

  function poll(row) {
    var url = row.dataset.statusUrl;
    if (!url || row.dataset.polling) return;
    row.dataset.polling = "1";
    function tick() {
      fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
        .then(function (response) { return response.ok ? response.json() : Promise.reject(response.status); })
        .then(function (doc) {
          render(row, doc);
          if (doc.status === "pending" || doc.status === "processing") {
            window.setTimeout(tick, POLL_MS);
          } else {
            delete row.dataset.polling;
          }
        })
        .catch(function () { window.setTimeout(tick, POLL_MS * 4); });
    }
    tick();
  }

  function newRow(table, name) {
    var empty = table.querySelector(".doc-empty");
    if (empty) empty.remove();
    var row = document.createElement("tr");
    row.className = "doc-row";
    row.innerHTML =
      '<td><span class="doc-title"></span></td>' +
      '<td class="doc-status"><progress class="doc-progress" max="100" value="0">0%</progress> ' +
      '<span class="badge doc-badge badge--warning">Uploading</span> <span class="doc-error field__help"></span></td>' +
      '<td class="num doc-chunks">0</td><td class="num doc-size"></td><td>just now</td><td></td>';
    row.querySelector(".doc-title").textContent = name;
    row.querySelector(".doc-progress").setAttribute("aria-label", "Progress of " + name);
    table.tBodies[0].insertBefore(row, table.tBodies[0].firstChild);
    return row;
  }

  function upload(form, table, file) {
    var row = newRow(table, file.name);
    row.querySelector(".doc-size").textContent = Math.max(1, Math.round(file.size / 1024)) + " KB";
    var body = new FormData();
    body.append("file", file, file.name);
    fetch(form.dataset.uploadUrl, {
      method: "POST", body: body, credentials: "same-origin",
      headers: { "X-CSRFToken": csrfToken(form), Accept: "application/json" },
    })
      .then(function (response) {
        return response.json().then(function (data) { return { ok: response.ok, data: data }; });
      })
      .then(function (result) {
        if (!result.ok) {
          var error = result.data.error || {};
          render(row, { status: "failed", progress: 0, error: error.message || "Upload failed.", chunk_count: 0 });
          if (error.upgrade_url) {
            // Over the plan's documents or megabytes: say so in words, and offer the way out.
            var upgrade = document.createElement("a");
            upgrade.className = "btn btn--small doc-upgrade";
            upgrade.href = error.upgrade_url;
            upgrade.textContent = "Upgrade";
            row.querySelector(".doc-error").append(" ", upgrade);
          }
          return;
        }
        var doc = result.data;
        var link = document.createElement("a");
        link.href = doc.page_url;
        link.textContent = doc.title;
        var title = row.querySelector(".doc-title");
        title.replaceWith(link);
        row.dataset.documentId = doc.id;
        row.dataset.statusUrl = doc.status_url;
        if (!doc.created) {
          row.querySelector(".doc-error").textContent = "Already in this collection.";
        }
        render(row, doc);
        if (!doc.created) row.querySelector(".doc-error").textContent = "Already in this collection.";
        poll(row);
      })
      .catch(function () {
        render(row, { status: "failed", progress: 0, error: "The upload did not reach the server.", chunk_count: 0 });
      });
  }

  function setUpDropzone() {
    var form = document.getElementById("dropzone");
    var table = document.getElementById("documents");
    if (!form || !table) return;
    var input = form.querySelector("input[type=file]");
    function send(files) {
      Array.prototype.forEach.call(files, function (file) { upload(form, table, file); });
    }
    input.addEventListener("change", function () { send(input.files); input.value = ""; });
    ["dragenter", "dragover"].forEach(function (name) {
      form.addEventListener(name, function (event) { event.preventDefault(); form.classList.add("dropzone--over"); });
    });
    ["dragleave", "drop"].forEach(function (name) {
      form.addEventListener(name, function () { form.classList.remove("dropzone--over"); });
    });
    form.addEventListener("drop", function (event) {
      event.preventDefault();
      if (event.dataTransfer && event.dataTransfer.files.length) send(event.dataTransfer.files);
    });
  }

  function resumePolling() {
    document.querySelectorAll(".doc-row").forEach(function (row) {
      if (row.dataset.status === "pending" || row.dataset.status === "processing") poll(row);
    });
  }

  function revealCited() {
    var cited = document.querySelector(".chunk--cited");
    if (cited) cited.scrollIntoView({ block: "center" });
  }

  document.addEventListener("DOMContentLoaded", function () {
    setUpDropzone();
    resumePolling();
    revealCited();
  });
})();
