// The approval console (served as a file: the page's CSP allows no inline
// scripts). Every piece of data is put on the page as text nodes or checked
// attributes, never as HTML.
"use strict";
const KEY = "zengate.approver.token";
let token = sessionStorage.getItem(KEY);
let events = null;
let reloadTimer = null;
let view = "pending";
let pendingItems = [];
let historyItems = [];
let historyNext = null;
let cursor = -1;            // index of the focused card in the current view
const selected = new Set(); // selected pending ids (bulk approve)
// Work in progress on pending cards, by approval id: whether the editor is
// open, its text and the typed reason. Live updates rebuild the list, and an
// approver's unsaved edit must survive them.
const drafts = new Map();

const $ = (id) => document.getElementById(id);
function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") e.className = v; else e.setAttribute(k, v);
  }
  for (const c of children) {
    if (c === undefined || c === null || c === false) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}
// Only http(s) links from the data ever become clickable.
function safeUrl(u) {
  try {
    const url = new URL(String(u));
    return (url.protocol === "https:" || url.protocol === "http:") ? url.href : null;
  } catch (_) { return null; }
}
function link(href, text, attrs) {
  const url = safeUrl(href);
  if (!url) return el("span", attrs || {}, text);
  return el("a", Object.assign({ href: url, target: "_blank", rel: "noopener noreferrer" }, attrs || {}), text);
}
function say(text, kind) {
  $("message").textContent = text || "";
  $("message").dataset.kind = kind || "error";
}
function age(iso) {
  const t = Date.parse(iso);
  if (Number.isNaN(t)) return "";
  const s = Math.max(0, Math.round((Date.now() - t) / 1000));
  if (s < 60) return s + "s";
  if (s < 3600) return Math.round(s / 60) + "m";
  if (s < 86400) return Math.round(s / 3600) + "h";
  return Math.round(s / 86400) + "d";
}
function when(iso) {
  const t = Date.parse(iso);
  return Number.isNaN(t) ? "" : new Date(t).toLocaleString();
}
const KIND = { reply: "Public reply", internal_note: "Internal note", update_fields: "Field update", create_ticket: "New ticket" };
function ctxOf(item) { return item.request.context || {}; }
function subjectOf(item) {
  const a = item.request.action;
  return ctxOf(item).ticket_subject || a.subject || ("Ticket " + (a.ticket_id ?? "new"));
}
function requesterOf(item) {
  const a = item.request.action;
  return ctxOf(item).requester || (a.requester ? a.requester.name + " <" + a.requester.email + ">" : "");
}
function fieldsText(fields) {
  const parts = [];
  for (const [k, v] of Object.entries(fields || {})) {
    if (v === null || v === undefined || (Array.isArray(v) && !v.length)) continue;
    parts.push(k + ": " + (Array.isArray(v) ? v.join(", ") : v));
  }
  return parts.join(" · ");
}

// ---- connection state (honest: reflects the stream and the last request) ----
const LIVE_TEXT = { open: "live", retry: "reconnecting…", down: "offline: server unreachable", off: "offline" };
function setLive(state, detail) {
  const box = $("live");
  box.dataset.state = state;
  $("live-text").textContent = LIVE_TEXT[state] + (detail ? " (" + detail + ")" : "");
  box.title = "since " + new Date().toLocaleTimeString();
}

async function api(method, path, body) {
  let res;
  try {
    res = await fetch(path, {
      method,
      headers: Object.assign({ "Authorization": "Bearer " + token },
        body ? { "Content-Type": "application/json" } : {}),
      body: body ? JSON.stringify(body) : undefined,
    });
  } catch (_) {
    setLive("down");
    throw new Error("the approval service is unreachable");
  }
  if (res.status === 401) { signOut("Your token was not accepted."); throw new Error("unauthorized"); }
  const data = await res.json().catch(() => ({}));
  if (!res.ok) {
    const err = new Error(data.message || ("HTTP " + res.status));
    err.status = res.status;
    err.code = data.error;
    throw err;
  }
  return data;
}

// ---- filters ----
const PENDING_STATES = ["pending", "escalated"];
const HISTORY_STATES = ["all", "applied", "failed", "released", "approved", "rejected", "expired", "escalated", "pending"];
function fillStates() {
  const sel = $("filter-state");
  const keep = sel.value;
  const opts = view === "pending" ? ["open"].concat(PENDING_STATES) : HISTORY_STATES;
  sel.replaceChildren(...opts.map((s) => el("option", { value: s }, s === "open" ? "waiting (all)" : s)));
  sel.value = opts.includes(keep) ? keep : opts[0];
}
function filters() {
  return {
    state: $("filter-state").value,
    ticket: $("filter-ticket").value.trim(),
    requester: $("filter-requester").value.trim().toLowerCase(),
    text: $("filter-text").value.trim().toLowerCase(),
  };
}
function searchable(item) {
  const c = ctxOf(item);
  return [subjectOf(item), requesterOf(item), item.request.action.ticket_id, item.request.action.body,
    item.request.proposed_by, (c.tags || []).join(" "), (item.request.reasons || []).join(" "),
    ...(c.conversation || []).map((m) => m.author + " " + m.body)].join("\n").toLowerCase();
}
function passes(item, f) {
  if (f.state && f.state !== "open" && f.state !== "all" && item.state !== f.state) return false;
  if (f.ticket && String(item.request.action.ticket_id ?? "") !== f.ticket) return false;
  if (f.requester && !requesterOf(item).toLowerCase().includes(f.requester)) return false;
  if (f.text) {
    const hay = searchable(item);
    for (const w of f.text.split(/\s+/)) if (!hay.includes(w)) return false;
  }
  return true;
}

// ---- pending ----
function conversationOf(item) {
  const conv = ctxOf(item).conversation || [];
  const box = el("ol", { class: "conversation" });
  if (!conv.length && ctxOf(item).last_comment) {
    box.append(el("li", { class: "msg customer" }, el("div", { class: "who" }, "last comment"),
      el("div", { class: "body" }, ctxOf(item).last_comment)));
  }
  for (const m of conv) {
    const role = m.role === "staff" ? "staff" : "customer";
    box.append(el("li", { class: "msg " + role + (m.public ? "" : " private"), "data-role": role },
      el("div", { class: "who" },
        el("strong", {}, m.author), " ",
        el("span", { class: "role" }, role === "staff" ? "staff" : "customer"),
        m.public ? "" : el("span", { class: "badge private-badge" }, "internal"),
        " ", el("time", { datetime: m.at || "", title: when(m.at) }, m.at ? age(m.at) + " ago" : "")),
      el("div", { class: "body" }, m.body)));
  }
  return box;
}

function ticketMeta(item) {
  const a = item.request.action;
  const c = ctxOf(item);
  const meta = el("div", { class: "meta ticket-meta" });
  const bits = [
    a.ticket_id ? "#" + a.ticket_id : "new ticket",
    requesterOf(item) ? el("span", { class: "requester" }, requesterOf(item)) : null,
    c.status ? el("span", { class: "status" }, "status " + c.status) : null,
    c.priority ? el("span", { class: "priority prio-" + String(c.priority).replace(/[^a-z]/g, "") }, c.priority) : null,
    "waiting " + age(item.created_at),
  ].filter(Boolean);
  bits.forEach((b, i) => { if (i) meta.append(" · "); meta.append(b); });
  for (const t of c.tags || []) meta.append(" ", el("span", { class: "tag" }, t));
  return meta;
}

function proposalOf(item) {
  const a = item.request.action;
  const c = ctxOf(item);
  const d = c.draft;
  const box = el("div", { class: "proposal-box" });
  const head = el("div", { class: "proposal-head" }, el("strong", {}, KIND[a.type] || a.type));
  if (d) {
    head.append(" · by ", el("span", { class: "drafter" }, d.drafter + (d.model ? " / " + d.model : "")));
    if (d.confidence_pct !== undefined && d.confidence_pct !== null) {
      head.append(" · ", el("span", { class: "confidence" }, "confidence " + d.confidence_pct + "%"));
    }
  } else {
    head.append(" · by ", el("span", { class: "drafter" }, item.request.proposed_by));
  }
  box.append(head);
  if (a.body !== undefined) box.append(el("pre", { class: "proposal", "data-proposal-for": item.id }, a.body));
  const f = fieldsText(a.fields);
  if (f) box.append(el("div", { class: "meta fields" }, "fields: " + f));
  const reasons = item.request.reasons || [];
  if (reasons.length) {
    const ul = el("ul", { class: "reasons" });
    for (const r of reasons) ul.append(el("li", {}, r));
    box.append(el("div", { class: "meta" }, "Why:"), ul);
  }
  const cites = (d && d.citations) || [];
  if (cites.length) {
    const ul = el("ul", { class: "citations" });
    for (const ct of cites) ul.append(el("li", {}, link(ct.url, ct.title || ("article " + ct.article_id), { class: "citation" })));
    box.append(el("div", { class: "meta" }, "Cited articles:"), ul);
  }
  return box;
}

function pendingCard(it) {
  const a = it.request.action;
  const id = it.id;
  const c = ctxOf(it);
  const check = el("input", { type: "checkbox", class: "select", "data-select-for": id, "aria-label": "select" });
  check.checked = selected.has(id);
  check.addEventListener("change", () => { toggleSelect(id, check.checked); });
  const head = el("div", { class: "card-head" }, check, " ",
    el("strong", { class: "subject" }, subjectOf(it)), " ",
    el("span", { class: "state state-" + it.state }, it.state),
    c.draft && c.draft.needs_human ? el("span", { class: "badge needs-human" }, "needs human") : null,
    c.ticket_url ? link(c.ticket_url, "Open in Zendesk ↗", { class: "ticket-link" }) : null);
  const card = el("article", { class: "item pending-item", "data-approval-id": id, "data-state": it.state, tabindex: "-1" },
    head, ticketMeta(it), conversationOf(it), proposalOf(it));
  const draft = drafts.get(id);
  const edit = el("textarea", { class: draft && draft.open ? "" : "hidden", "data-edit-for": id, "aria-label": "edited text" });
  edit.value = draft && draft.body !== null ? draft.body : (a.body ?? "");
  edit.addEventListener("input", () => { draftOf(id).body = edit.value; });
  const reason = el("input", { type: "text", placeholder: "reason (optional)", "data-reason-for": id, size: "30" });
  reason.value = draft ? draft.reason : "";
  reason.addEventListener("input", () => { draftOf(id).reason = reason.value; });
  const approve = el("button", { type: "button", class: "approve", "data-action": "approve", "data-id": id }, "Approve");
  const editBtn = el("button", { type: "button", "data-action": "edit", "data-id": id }, "Edit");
  const save = el("button", { type: "button", class: draft && draft.open ? "approve" : "approve hidden", "data-action": "save-approve", "data-id": id }, "Approve edited");
  const reject = el("button", { type: "button", class: "reject", "data-action": "reject", "data-id": id }, "Reject");
  if (a.body === undefined) editBtn.disabled = true;
  approve.onclick = () => decide(id, "approve", { reason: reason.value || undefined });
  editBtn.onclick = () => toggleEdit(card);
  save.onclick = () => decide(id, "approve", { body: edit.value, reason: reason.value || undefined });
  reject.onclick = () => decide(id, "reject", { reason: reason.value || undefined });
  card.append(edit, el("div", { class: "actions" }, approve, editBtn, save, reject, reason));
  return card;
}
function toggleEdit(card) {
  const area = card.querySelector("textarea");
  const save = card.querySelector("[data-action='save-approve']");
  if (!area || card.querySelector("[data-action='edit']").disabled) return;
  area.classList.toggle("hidden");
  save.classList.toggle("hidden");
  draftOf(card.dataset.approvalId).open = !area.classList.contains("hidden");
  if (!area.classList.contains("hidden")) area.focus();
}
function draftOf(id) {
  let d = drafts.get(id);
  if (!d) { d = { open: false, body: null, reason: "" }; drafts.set(id, d); }
  return d;
}

function renderPending() {
  const f = filters();
  const shown = pendingItems.filter((i) => passes(i, f));
  $("pending-count").textContent = "(" + pendingItems.length + ")";
  const box = $("pending");
  // The field being typed into is rebuilt too: give it back its focus and
  // caret, or the next keystroke would reach the page's shortcuts (where
  // "a" approves the unedited proposal).
  const active = document.activeElement;
  const typing = active && box.contains(active) && (active.dataset.editFor || active.dataset.reasonFor)
    ? { edit: active.dataset.editFor, reason: active.dataset.reasonFor, start: active.selectionStart, end: active.selectionEnd }
    : null;
  box.replaceChildren();
  if (!pendingItems.length) box.append(el("p", { class: "meta", id: "no-pending" }, "Nothing waiting."));
  else if (!shown.length) box.append(el("p", { class: "meta", id: "no-match" }, "Nothing matches the filters."));
  for (const it of shown) box.append(pendingCard(it));
  for (const id of [...selected]) if (!pendingItems.some((i) => i.id === id)) selected.delete(id);
  for (const id of [...drafts.keys()]) if (!pendingItems.some((i) => i.id === id)) drafts.delete(id);
  renderBulk();
  refocus();
  if (typing) {
    const field = [...box.querySelectorAll("textarea[data-edit-for], input[data-reason-for]")]
      .find((f) => (typing.edit && f.dataset.editFor === typing.edit) || (typing.reason && f.dataset.reasonFor === typing.reason));
    if (field) {
      field.focus();
      try { field.setSelectionRange(typing.start, typing.end); } catch (_) { /* not a text field */ }
    }
  }
}

// ---- history ----
function historyCard(it) {
  const d = it.decision || {};
  const o = it.outcome;
  const c = ctxOf(it);
  const retry = it.retry;
  const retrying = retry && !retry.settled;
  const card = el("article", { class: "item history-item", "data-approval-id": it.id, "data-state": it.state, tabindex: "-1" },
    el("div", { class: "card-head" }, el("strong", { class: "subject" }, subjectOf(it)), " ",
      el("span", { class: "state state-" + it.state }, it.state),
      retrying ? el("span", { class: "badge retrying" }, "retry #" + retry.attempt + " in flight") : null,
      c.ticket_url ? link(c.ticket_url, "Open in Zendesk ↗", { class: "ticket-link" }) : null),
    el("div", { class: "meta" },
      it.request.action.ticket_id ? "#" + it.request.action.ticket_id + " · " : "",
      requesterOf(it) ? requesterOf(it) + " · " : "",
      d.by ? (d.decision + " by " + d.by + " " + age(d.at) + " ago") : "waiting",
      d.reason ? " · " + d.reason : ""));
  if (it.state === "failed" && o && o.error) {
    card.append(el("div", { class: "failure" }, el("strong", {}, "Write failed: "), el("span", { class: "failure-reason" }, o.error)));
  }
  if (it.state === "applied" && o) {
    card.append(el("div", { class: "applied-note meta" }, "Written to Zendesk" + (o.result_id ? " (comment " + o.result_id + ")" : "") + " " + age(o.at) + " ago"));
  }
  const action = it.final_action || it.request.action;
  if (action.body !== undefined) card.append(el("pre", { class: "proposal" }, action.body));
  if (d.edits) card.append(el("pre", { class: "edits" }, d.edits));
  const list = el("ul", { class: "meta audit" });
  for (const h of it.history || []) {
    list.append(el("li", {}, el("time", { datetime: h.at, title: when(h.at) }, age(h.at) + " ago"),
      " — " + h.by + ": " + h.what + (h.reason ? " (" + h.reason + ")" : "")));
  }
  card.append(list);
  if (it.state === "failed") {
    const btn = el("button", { type: "button", class: "retry", "data-action": "retry", "data-id": it.id }, "Retry write");
    if (retrying) btn.disabled = true;
    btn.onclick = () => retryWrite(it.id);
    card.append(el("div", { class: "actions" }, btn));
  }
  return card;
}

function renderHistory() {
  const f = filters();
  const shown = historyItems.filter((i) => passes(i, f));
  const box = $("history");
  box.replaceChildren();
  if (!shown.length) box.append(el("p", { class: "meta", id: "no-history" }, "No items."));
  for (const it of shown) box.append(historyCard(it));
  $("history-more").classList.toggle("hidden", historyNext === null);
  refocus();
}

function historyQuery(before) {
  const f = filters();
  const q = new URLSearchParams({ limit: "50" });
  if (f.state && f.state !== "all") q.set("state", f.state);
  if (f.ticket) q.set("ticket", f.ticket);
  const words = [f.text, f.requester].filter(Boolean).join(" ");
  if (words) q.set("q", words);
  if (before !== null && before !== undefined) q.set("before", String(before));
  return "/v1/approvals/history?" + q.toString();
}
async function loadHistory(more) {
  const page = await api("GET", historyQuery(more ? historyNext : null));
  historyItems = more ? historyItems.concat(page.items) : page.items;
  historyNext = page.next_before ?? null;
  renderHistory();
}

// ---- loading ----
async function reload() {
  try {
    const pending = await api("GET", "/v1/approvals?state=pending&limit=500");
    const escalated = await api("GET", "/v1/approvals?state=escalated&limit=500");
    pendingItems = pending.items.concat(escalated.items);
    renderPending();
    if (view === "history") await loadHistory(false);
    document.body.setAttribute("data-loaded", "1");
    if (!events) setLive("retry", "polling");
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
    $("message").setAttribute("data-last", id + ":" + item.state);
    selected.delete(id);
  } catch (e) { say(e.message); }
  reload();
}

async function retryWrite(id) {
  say("");
  try {
    const item = await api("POST", "/v1/approvals/" + encodeURIComponent(id) + "/retry");
    $("message").setAttribute("data-last", id + ":retry" + (item.retry ? item.retry.attempt : ""));
    say("Retry requested; the worker checks the ticket before writing again.", "info");
  } catch (e) { say(e.message); }
  reload();
}

// ---- selection and bulk approve ----
function toggleSelect(id, on) {
  if (on) selected.add(id); else selected.delete(id);
  const box = document.querySelector("[data-select-for='" + CSS.escape(id) + "']");
  if (box) box.checked = on;
  renderBulk();
}
function renderBulk() {
  $("bulk").classList.toggle("hidden", selected.size === 0 || view !== "pending");
  $("bulk-count").textContent = selected.size + " selected";
}
// Each approval is its own compare-and-set: some may lose to another
// approver; every item's result is reported.
async function bulkApprove() {
  const ids = [...selected];
  const list = el("ul", {});
  const out = $("bulk-result");
  out.replaceChildren(el("strong", {}, "Approving " + ids.length + "…"), list);
  out.classList.remove("hidden");
  let ok = 0;
  for (const id of ids) {
    const item = pendingItems.find((i) => i.id === id);
    const label = item ? subjectOf(item) : id;
    try {
      const res = await api("POST", "/v1/approvals/" + encodeURIComponent(id) + "/approve");
      ok++;
      list.append(el("li", { "data-id": id, "data-result": "ok" }, label + ": " + res.state));
    } catch (e) {
      list.append(el("li", { "data-id": id, "data-result": "error", class: "failure" }, label + ": " + e.message));
    }
    selected.delete(id);
  }
  out.firstChild.textContent = "Approved " + ok + " of " + ids.length;
  out.dataset.done = "1";
  renderBulk();
  reload();
}

// ---- keyboard ----
function cards() { return [...document.querySelectorAll(view === "pending" ? "#pending .item" : "#history .item")]; }
let focusedId = null;
function focusCard(i) {
  const list = cards();
  if (!list.length) { cursor = -1; focusedId = null; return; }
  cursor = Math.max(0, Math.min(i, list.length - 1));
  list.forEach((c, n) => c.classList.toggle("focused", n === cursor));
  focusedId = list[cursor].dataset.approvalId;
  list[cursor].scrollIntoView({ block: "nearest" });
}
function refocus() {
  const list = cards();
  const i = list.findIndex((c) => c.dataset.approvalId === focusedId);
  if (i >= 0) focusCard(i); else if (focusedId !== null) focusCard(Math.min(cursor, list.length - 1));
}
function current() { return cards()[cursor] || null; }
document.addEventListener("keydown", (ev) => {
  if (!token || ev.ctrlKey || ev.metaKey || ev.altKey) return;
  const t = ev.target;
  if (t && (t.tagName === "INPUT" || t.tagName === "TEXTAREA" || t.tagName === "SELECT")) {
    if (ev.key === "Escape") t.blur();
    return;
  }
  const card = current();
  const click = (sel) => { const b = card && card.querySelector(sel); if (b && !b.disabled) b.click(); };
  switch (ev.key) {
    case "j": focusCard(cursor + 1); break;
    case "k": focusCard(cursor < 0 ? 0 : cursor - 1); break;
    case "a": click("[data-action='approve']"); break;
    case "e": if (card) toggleEdit(card); break;
    case "r": click("[data-action='reject']"); break;
    case "x": if (card && view === "pending") toggleSelect(card.dataset.approvalId, !selected.has(card.dataset.approvalId)); break;
    case "/": $("filter-text").focus(); break;
    default: return;
  }
  ev.preventDefault();
});

// ---- views ----
function setView(v) {
  view = v;
  cursor = -1; focusedId = null;
  for (const b of document.querySelectorAll(".tab")) b.classList.toggle("active", b.dataset.view === v);
  $("pending-view").classList.toggle("hidden", v !== "pending");
  $("history-view").classList.toggle("hidden", v !== "history");
  document.body.dataset.view = v;
  fillStates();
  renderBulk();
  if (v === "history") loadHistory(false).catch((e) => say(e.message)); else renderPending();
}
let filterTimer = null;
function onFilter() {
  clearTimeout(filterTimer);
  filterTimer = setTimeout(() => {
    if (view === "history") loadHistory(false).catch((e) => say(e.message)); else renderPending();
  }, 200);
}

// ---- live stream ----
// The event stream takes a single-use ticket (valid ~30 s), never the
// approver token: a URL ends up in histories and proxy logs. A used ticket
// cannot reconnect, so every (re)connection fetches a fresh one. The server
// sends a `ping` every few seconds; a stream silent for longer is treated as
// dead, so the indicator never shows "live" for a server that is gone.
const SILENCE_MS = 20000;
let retryDelay = 1000;
let retryTimer = null;
let lastBeat = 0;
async function connect() {
  clearTimeout(retryTimer);
  if (events) { events.close(); events = null; }
  if (!token) return;
  let ticket;
  try {
    ticket = (await api("POST", "/v1/events/ticket")).ticket;
  } catch (e) {
    if (e.message !== "unauthorized") retryLater(e.status ? "retry" : "down");
    return;
  }
  if (!token) return;
  const es = new EventSource("/v1/events?ticket=" + encodeURIComponent(ticket));
  events = es;
  const beat = () => { lastBeat = Date.now(); };
  es.addEventListener("open", () => {
    retryDelay = 1000;
    beat();
    setLive("open");
    scheduleReload();
  });
  es.addEventListener("ping", beat);
  es.addEventListener("item", () => { beat(); scheduleReload(); });
  es.addEventListener("resync", () => { beat(); scheduleReload(); });
  es.addEventListener("error", () => {
    if (events !== es) return;
    es.close();
    events = null;
    retryLater("retry");
  });
}
function retryLater(state) {
  setLive(state);
  clearTimeout(retryTimer);
  retryTimer = setTimeout(connect, retryDelay);
  retryDelay = Math.min(retryDelay * 2, 15000);
}
setInterval(() => {
  if (events && events.readyState === EventSource.OPEN && Date.now() - lastBeat > SILENCE_MS) {
    events.close();
    events = null;
    retryLater("down");
  }
}, 2000);

function signOut(msg) {
  token = null;
  sessionStorage.removeItem(KEY);
  if (events) { events.close(); events = null; }
  clearTimeout(retryTimer);
  setLive("off");
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
for (const b of document.querySelectorAll(".tab")) b.addEventListener("click", () => setView(b.dataset.view));
for (const id of ["filter-state", "filter-ticket", "filter-requester", "filter-text"]) {
  $(id).addEventListener("input", onFilter);
}
$("bulk-approve").addEventListener("click", bulkApprove);
$("bulk-clear").addEventListener("click", () => { selected.clear(); renderPending(); });
$("history-more").addEventListener("click", () => loadHistory(true).catch((e) => say(e.message)));
setInterval(() => { if (token) scheduleReload(); }, 30000);
fillStates();
document.body.dataset.view = view;
show();
