/*
 * Knowledge pages: drag-and-drop upload of several files at once, each with its own live
 * progress (polling the document's status URL until it is ready or failed). Document rows are
 * always the server's own (GET .../documents/<id>/row/), before and after a reload.
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

  // In-place progress while ingest runs; the finished row is fetched whole (refreshRow).
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
          if (doc.status === "pending" || doc.status === "processing") {
            render(row, doc);
            window.setTimeout(tick, POLL_MS);
          } else {
            refreshRow(row);
          }
        })
        .catch(function (status) {
          if (status === 404) row.remove();  // deleted meanwhile (in another tab, say)
          else window.setTimeout(tick, POLL_MS * 4);
        });
    }
    tick();
  }

  function rowUrl(table, id) {
    return table.dataset.rowUrl.replace(/\/0\/row\/$/, "/" + id + "/row/");
  }

  function parseRow(html) {
    var holder = document.createElement("template");
    holder.innerHTML = html.trim();
    return holder.content.querySelector("tr");
  }

  // Rows always come from the server's template (knowledge/_document_row.html), so a row added
  // here is the row a reload shows: the page never builds a document row of its own.
  function fetchRow(url) {
    return fetch(url, { credentials: "same-origin", headers: { Accept: "text/html" } })
      .then(function (response) { return response.ok ? response.text() : Promise.reject(response.status); })
      .then(parseRow);
  }

  function refreshRow(row) {
    fetchRow(row.dataset.rowUrl)
      .then(function (fresh) { if (fresh && row.isConnected) row.replaceWith(fresh); })
      .catch(function (status) {
        if (status === 404) row.remove();
        else window.setTimeout(function () { refreshRow(row); }, POLL_MS * 4);
      });
  }

  function announce(text) {
    var status = document.getElementById("documents-status");
    if (status) status.textContent = text;
  }

  // A placeholder while the file goes up; it is not a document yet, so it is not a document row.
  function placeholderRow(table, name, size) {
    var empty = table.querySelector(".doc-empty");
    if (empty) empty.remove();
    var row = document.createElement("tr");
    row.className = "doc-upload";
    row.innerHTML =
      '<td class="doc-title"><span class="doc-name"></span></td>' +
      '<td class="doc-status"><progress class="doc-progress" max="100">…</progress> ' +
      '<span class="badge doc-badge badge--warning">Uploading</span> <span class="doc-error field__help"></span></td>' +
      '<td class="num doc-chunks" data-label="Passages"></td><td class="num doc-size" data-label="Size"></td>' +
      '<td class="doc-added"></td>';
    if (table.tHead.rows[0].cells.length > 5) row.appendChild(document.createElement("td"));
    row.querySelector(".doc-name").textContent = name;
    row.querySelector(".doc-progress").setAttribute("aria-label", "Uploading " + name);
    row.querySelector(".doc-size").textContent = size;
    table.tBodies[0].insertBefore(row, table.tBodies[0].firstChild);
    return row;
  }

  function refused(row, message, upgradeUrl) {
    row.querySelector(".doc-progress").hidden = true;
    var badge = row.querySelector(".doc-badge");
    badge.textContent = "Not added";
    badge.className = "badge doc-badge badge--danger";
    var error = row.querySelector(".doc-error");
    error.textContent = message;
    if (upgradeUrl) {
      // Over the plan's documents or megabytes: say so in words, and offer the way out.
      var upgrade = document.createElement("a");
      upgrade.className = "btn btn--small doc-upgrade";
      upgrade.href = upgradeUrl;
      upgrade.textContent = "Upgrade";
      error.append(" ", upgrade);
    }
  }

  function upload(form, table, file) {
    var size = Math.max(1, Math.round(file.size / 1024)) + " KB";
    var placeholder = placeholderRow(table, file.name, size);
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
          refused(placeholder, error.message || "Upload failed.", error.upgrade_url);
          return;
        }
        var doc = result.data;
        var existing = document.getElementById("document-" + doc.id);
        if (!doc.created) {
          announce(file.name + " is already in this collection as “" + doc.title + "”.");
        }
        if (existing) {
          placeholder.remove();
          existing.classList.add("doc-row--again");
          existing.scrollIntoView({ block: "nearest" });
          return;
        }
        return fetchRow(rowUrl(table, doc.id)).then(function (row) {
          placeholder.replaceWith(row);
          poll(row);
        });
      })
      .catch(function () {
        refused(placeholder, "The upload did not reach the server. Check your connection and try again.");
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
