// The approval console (served as a file: the page's CSP allows no inline scripts).
"use strict";
const KEY = "zengate.approver.token";
let token = sessionStorage.getItem(KEY);
let events = null;
let reloadTimer = null;

const $ = (id) => document.getElementById(id);
function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") e.className = v; else e.setAttribute(k, v);
  }
  for (const c of children) e.append(c instanceof Node ? c : document.createTextNode(String(c ?? "")));
  return e;
}
function say(text) { $("message").textContent = text || ""; }
function age(iso) {
  const s = Math.max(0, Math.round((Date.now() - Date.parse(iso)) / 1000));
  if (s < 60) return s + "s";
  if (s < 3600) return Math.round(s / 60) + "m";
  if (s < 86400) return Math.round(s / 3600) + "h";
  return Math.round(s / 86400) + "d";
}
function bodyOf(action) { return action.body ?? JSON.stringify(action.fields ?? {}); }
function subjectOf(item) {
  const a = item.request.action;
  return item.request.context?.ticket_subject || a.subject || ("Ticket " + (a.ticket_id ?? "new"));
}
function requesterOf(item) {
  const a = item.request.action;
  return item.request.context?.requester || (a.requester ? a.requester.name + " <" + a.requester.email + ">" : "");
}

async function api(method, path, body) {
  const res = await fetch(path, {
    method,
    headers: Object.assign({ "Authorization": "Bearer " + token },
      body ? { "Content-Type": "application/json" } : {}),
    body: body ? JSON.stringify(body) : undefined,
  });
  if (res.status === 401) { signOut("Your token was not accepted."); throw new Error("unauthorized"); }
  const data = await res.json().catch(() => ({}));
  if (!res.ok) throw new Error(data.message || ("HTTP " + res.status));
  return data;
}

function renderPending(items) {
  const box = $("pending");
  box.replaceChildren();
  $("pending-count").textContent = "(" + items.length + ")";
  if (!items.length) box.append(el("p", { class: "meta", id: "no-pending" }, "Nothing waiting."));
  for (const it of items) {
    const a = it.request.action;
    const id = it.id;
    const card = el("div", { class: "item pending-item", "data-approval-id": id, "data-state": it.state },
      el("div", {}, el("strong", { class: "subject" }, subjectOf(it)), " ",
        el("span", { class: "state" }, it.state)),
      el("div", { class: "meta" }, a.type.replace("_", " "), " · ",
        a.ticket_id ? "ticket " + a.ticket_id : "new ticket", " · ",
        requesterOf(it), " · ", "waiting " + age(it.created_at), " · by ", it.request.proposed_by),
      el("pre", { class: "proposal", "data-proposal-for": id }, bodyOf(a)));
    const edit = el("textarea", { class: "hidden", "data-edit-for": id });
    edit.value = a.body ?? "";
    const reason = el("input", { type: "text", placeholder: "reason (optional)", "data-reason-for": id, size: "40" });
    const approve = el("button", { type: "button", class: "approve", "data-action": "approve", "data-id": id }, "Approve");
    const editBtn = el("button", { type: "button", "data-action": "edit", "data-id": id }, "Edit");
    const save = el("button", { type: "button", class: "approve hidden", "data-action": "save-approve", "data-id": id }, "Approve edited");
    const reject = el("button", { type: "button", class: "reject", "data-action": "reject", "data-id": id }, "Reject");
    if (a.body === undefined) editBtn.disabled = true;
    approve.onclick = () => decide(id, "approve", { reason: reason.value || undefined });
    editBtn.onclick = () => { edit.classList.toggle("hidden"); save.classList.toggle("hidden"); };
    save.onclick = () => decide(id, "approve", { body: edit.value, reason: reason.value || undefined });
    reject.onclick = () => decide(id, "reject", { reason: reason.value || undefined });
    card.append(edit, el("div", {}, approve, editBtn, save, reject, reason));
    box.append(card);
  }
}

function renderHistory(items) {
  const box = $("history");
  box.replaceChildren();
  for (const it of items.filter((i) => i.state !== "pending")) {
    const d = it.decision || {};
    const card = el("div", { class: "item history-item", "data-approval-id": it.id, "data-state": it.state },
      el("div", {}, el("strong", {}, subjectOf(it)), " ", el("span", { class: "state" }, it.state)),
      el("div", { class: "meta" }, d.by ? (d.decision + " by " + d.by + " " + age(d.at) + " ago") : "",
        d.reason ? " · " + d.reason : ""));
    if (d.edits) card.append(el("pre", { class: "edits" }, d.edits));
    const list = el("ul", { class: "meta" });
    for (const h of it.history || []) list.append(el("li", {}, h.at + " — " + h.by + ": " + h.what + (h.reason ? " (" + h.reason + ")" : "")));
    card.append(list);
    box.append(card);
  }
}

async function reload() {
  try {
    const [pending, recent] = await Promise.all([
      api("GET", "/v1/approvals?state=pending&limit=200"),
      api("GET", "/v1/approvals?limit=50"),
    ]);
    renderPending(pending.items);
    renderHistory(recent.items);
    document.body.setAttribute("data-loaded", "1");
  } catch (e) { if (e.message !== "unauthorized") say(e.message); }
}
function scheduleReload() {
  clearTimeout(reloadTimer);
  reloadTimer = setTimeout(reload, 150);
}

async function decide(id, verb, body) {
  say("");
  try {
    const item = await api("POST", "/v1/approvals/" + encodeURIComponent(id) + "/" + verb, body);
    say("");
    $("message").setAttribute("data-last", id + ":" + item.state);
  } catch (e) { say(e.message); }
  reload();
}

// The event stream takes a single-use ticket (valid ~30 s), never the
// approver token: a URL ends up in histories and proxy logs. A used ticket
// cannot reconnect, so every (re)connection fetches a fresh one.
let retryDelay = 1000;
let retryTimer = null;
async function connect() {
  clearTimeout(retryTimer);
  if (events) { events.close(); events = null; }
  if (!token) return;
  let ticket;
  try {
    ticket = (await api("POST", "/v1/events/ticket")).ticket;
  } catch (e) {
    if (e.message !== "unauthorized") retryLater();
    return;
  }
  if (!token) return;
  const es = new EventSource("/v1/events?ticket=" + encodeURIComponent(ticket));
  events = es;
  es.addEventListener("open", () => {
    retryDelay = 1000;
    $("live").textContent = "live"; $("live").dataset.state = "open"; scheduleReload();
  });
  es.addEventListener("item", scheduleReload);
  es.addEventListener("resync", scheduleReload);
  es.addEventListener("error", () => {
    if (events !== es) return;
    es.close();
    events = null;
    retryLater();
  });
}
function retryLater() {
  $("live").textContent = "reconnecting…"; $("live").dataset.state = "retry";
  clearTimeout(retryTimer);
  retryTimer = setTimeout(connect, retryDelay);
  retryDelay = Math.min(retryDelay * 2, 30000);
}

function signOut(msg) {
  token = null;
  sessionStorage.removeItem(KEY);
  if (events) { events.close(); events = null; }
  clearTimeout(retryTimer);
  show();
  say(msg || "");
}

function show() {
  const signedIn = !!token;
  $("signin-form").classList.toggle("hidden", signedIn);
  $("app").classList.toggle("hidden", !signedIn);
  $("signout").classList.toggle("hidden", !signedIn);
  if (signedIn) { reload(); connect(); }
}

$("signin-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  const t = $("token").value.trim();
  if (!t) return;
  token = t;
  sessionStorage.setItem(KEY, t);
  $("token").value = "";
  say("");
  show();
});
$("signout").addEventListener("click", () => signOut());
setInterval(() => { if (token) scheduleReload(); }, 30000);
show();
