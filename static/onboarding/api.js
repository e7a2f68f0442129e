// POSTs to the app's own endpoints with the session's CSRF token, answering JSON.
// SPDX-License-Identifier: GPL-3.0-or-later

let csrf = "";

export function setCsrf(token) { csrf = token || ""; }

export async function postJSON(url, fields = {}) {
  const body = new URLSearchParams(fields);
  const response = await fetch(url, {
    method: "POST",
    credentials: "same-origin",
    headers: { "X-CSRFToken": csrf, Accept: "application/json" },
    body,
  });
  if (!response.ok) throw new Error(`${url} answered ${response.status}`);
  return response.json();
}

export async function postBody(url, payload) {
  const response = await fetch(url, {
    method: "POST",
    credentials: "same-origin",
    headers: { "X-CSRFToken": csrf, Accept: "application/json", "Content-Type": "application/json" },
    body: JSON.stringify(payload),
  });
  if (!response.ok) throw new Error(`${url} answered ${response.status}`);
  return response.json();
}
