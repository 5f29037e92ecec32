// dashboard.js: the admin dashboard at /dashboard. No framework, no build step.
//
// Data comes from one admin event stream (GET /api/v1/admin/events, read with
// fetch so the token travels in the Authorization header, not in a URL): a
// snapshot, then every change, and a fresh snapshot every ~10 s. Nothing is
// polled; the page only re-renders its clocks once a second. Ending sessions
// goes through the REST cleanup endpoint (`specific` and `inactive`), after a
// confirmation. The Archives card (dashboard/archives.js) reads a user's archived dialogs.
// docs/dashboard.md describes the page.

import { backoffDelay, formatCountdown } from "./tether.js";
import { bucketStart, renderEnds, renderStates } from "./dashboard/charts.js";
import { setupArchives } from "./dashboard/archives.js";

const $ = (id) => document.getElementById(id);
const base = new URL("..", import.meta.url).href; // the server's root, also under a prefix
const TOKEN_KEY = "tether.adminToken";
const MAX_ROWS = 500;

const CLOCKS = { activity: "idle", lifetime: "max", presence: "presence" };

const model = {
  live: new Map(), // id -> session view
  ended: new Map(), // id -> session view (the newest ones)
  ends: new Map(), // "bucketStart|reason" -> count
  bucketS: 300,
  intervalS: 10,
  offsetMs: 0, // the server's clock minus this page's
  lastEventAt: 0,
};
const selected = new Set();
const rows = new Map(); // id -> {tr, cells}

// -- the token ---------------------------------------------------------------------------

function storedToken() {
  try {
    return sessionStorage.getItem(TOKEN_KEY);
  } catch {
    return null;
  }
}

function storeToken(value) {
  try {
    sessionStorage.setItem(TOKEN_KEY, value);
  } catch {
    // storage blocked: the token lives as long as this page
  }
  memoryToken = value;
}

function forgetToken() {
  try {
    sessionStorage.removeItem(TOKEN_KEY);
  } catch {
    // nothing stored
  }
  memoryToken = null;
}

let memoryToken = null;
const token = () => memoryToken ?? storedToken();

/** `#token=...` in the address: keep it in sessionStorage and take it out of the address bar. */
function tokenFromHash() {
  const params = new URLSearchParams(location.hash.slice(1));
  const value = params.get("token");
  if (value) {
    storeToken(value);
    history.replaceState(null, "", location.pathname + location.search);
  }
}

function showLogin(error = "") {
  $("board").hidden = true;
  $("forget").hidden = true;
  $("login").hidden = false;
  $("login-error").textContent = error;
  $("token-input").focus();
}

function showBoard() {
  $("login").hidden = true;
  $("board").hidden = false;
  $("forget").hidden = false;
}

// -- the feed ----------------------------------------------------------------------------

let controller = null;
let attempt = 0;
let retryTimer = null;

function setFeed(status) {
  const pill = $("feed-status");
  pill.textContent = status;
  pill.className = `feed ${status === "live" ? "live" : status === "offline" ? "" : "down"}`;
  document.body.dataset.feed = status;
}

async function openFeed() {
  clearTimeout(retryTimer);
  controller?.abort();
  const current = token();
  if (!current) {
    setFeed("offline");
    showLogin();
    return;
  }
  const ctl = new AbortController();
  controller = ctl;
  setFeed(attempt === 0 ? "connecting" : "reconnecting");
  let response;
  try {
    response = await fetch(new URL("api/v1/admin/events", base), {
      headers: { Authorization: `Bearer ${current}`, Accept: "text/event-stream" },
      cache: "no-store",
      signal: ctl.signal,
    });
  } catch {
    if (!ctl.signal.aborted) retry();
    return;
  }
  if (response.status === 401 || response.status === 403) {
    forgetToken();
    setFeed("offline");
    showLogin(
      response.status === 401
        ? "The server does not accept this token."
        : "This token is not an admin token.",
    );
    return;
  }
  if (!response.ok || response.body === null) {
    const after = Number(response.headers.get("Retry-After"));
    retry(Number.isFinite(after) ? after * 1000 : 0);
    return;
  }
  showBoard();
  setFeed("live");
  attempt = 0;
  model.lastEventAt = Date.now();
  try {
    for await (const event of sseEvents(response.body)) {
      if (ctl.signal.aborted) return;
      handle(event);
    }
  } catch {
    // the stream broke: reconnect below
  }
  if (!ctl.signal.aborted) retry();
}

function retry(minimumMs = 0) {
  setFeed("reconnecting");
  const delay = Math.max(minimumMs, backoffDelay(attempt, { base: 500, cap: 10000 }));
  attempt += 1;
  clearTimeout(retryTimer);
  retryTimer = setTimeout(openFeed, delay);
}

/** The JSON payloads of a text/event-stream body. */
async function* sseEvents(body) {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buffer += value.replace(/\r\n?/g, "\n");
      let cut = buffer.indexOf("\n\n");
      while (cut >= 0) {
        const block = buffer.slice(0, cut);
        buffer = buffer.slice(cut + 2);
        const data = block
          .split("\n")
          .filter((line) => line.startsWith("data:"))
          .map((line) => line.slice(5).replace(/^ /, ""))
          .join("\n");
        model.lastEventAt = Date.now(); // comments count: the stream is alive
        if (data) {
          try {
            yield JSON.parse(data);
          } catch {
            // not JSON: skip it
          }
        }
        cut = buffer.indexOf("\n\n");
      }
    }
  } finally {
    reader.releaseLock();
  }
}

function bucketOf(at) {
  return bucketStart(at, model.bucketS);
}

function handle(event) {
  if (typeof event.now === "number") model.offsetMs = event.now * 1000 - Date.now();
  const view = event.session;
  switch (event.type) {
    case "snapshot":
      model.live = new Map(event.sessions.map((s) => [s.id, s]));
      model.ended = new Map(event.ended.map((s) => [s.id, s]));
      model.ends = new Map(event.ends.map((b) => [`${b.start}|${b.reason}`, b.count]));
      model.bucketS = event.ends_bucket_s;
      model.intervalS = event.interval_s;
      for (const id of selected) if (!model.live.has(id)) selected.delete(id);
      break;
    case "session.started":
    case "session.warning":
    case "session.active":
    case "session.updated":
      // An ended session never comes back: an update computed before its end is stale.
      if (!model.ended.has(view.id)) model.live.set(view.id, view);
      break;
    case "session.ended":
      model.live.delete(view.id);
      selected.delete(view.id);
      if (!model.ended.has(view.id)) {
        model.ended.set(view.id, view);
        if (view.ended_at !== null && view.end_reason !== null) {
          const key = `${bucketOf(view.ended_at)}|${view.end_reason}`;
          model.ends.set(key, (model.ends.get(key) ?? 0) + 1);
        }
      }
      break;
    default:
      return; // a newer server's event: ignore it
  }
  scheduleRender();
}

// -- rendering ---------------------------------------------------------------------------

const serverNow = () => (Date.now() + model.offsetMs) / 1000;
let renderQueued = false;

function scheduleRender() {
  if (renderQueued) return;
  renderQueued = true;
  queueMicrotask(() => {
    renderQueued = false;
    render();
  });
}

function render() {
  renderKinds();
  renderTable();
  renderStates(model, serverNow());
  renderEnds(model, serverNow());
}

function filters() {
  return {
    state: $("filter-state").value,
    user: $("filter-user").value.trim().toLowerCase(),
    kind: $("filter-kind").value,
  };
}

function shownSessions() {
  const { state, user, kind } = filters();
  let pool;
  if (state === "ended") pool = [...model.ended.values()];
  else if (state === "all") pool = [...model.live.values(), ...model.ended.values()];
  else pool = [...model.live.values()].filter((s) => state === "live" || s.state === state);
  const order = { warning: 0, active: 1, ended: 2 };
  return pool
    .filter((s) => (!user || s.user.toLowerCase().includes(user)) && (!kind || s.kind === kind))
    .sort(
      (a, b) =>
        order[a.state] - order[b.state] ||
        (b.ended_at ?? 0) - (a.ended_at ?? 0) ||
        b.created_at - a.created_at,
    );
}

function renderKinds() {
  const select = $("filter-kind");
  const kinds = new Set([...model.live.values(), ...model.ended.values()].map((s) => s.kind));
  const have = new Set([...select.options].map((o) => o.value).filter(Boolean));
  for (const kind of [...kinds].sort()) {
    if (!have.has(kind)) select.add(new Option(kind, kind));
  }
}

function text(node, value) {
  if (node.textContent !== value) node.textContent = value;
}

function duration(seconds) {
  return formatCountdown(Math.max(0, seconds));
}

function createRow(id) {
  const tr = document.createElement("tr");
  tr.dataset.sessionId = id;
  const td = (className = "") => {
    const cell = document.createElement("td");
    if (className) cell.className = className;
    tr.append(cell);
    return cell;
  };
  const pick = document.createElement("input");
  pick.type = "checkbox";
  pick.setAttribute("aria-label", "Select this session");
  pick.addEventListener("change", () => {
    if (pick.checked) selected.add(id);
    else selected.delete(id);
    updateSelection();
  });
  td().append(pick);
  const cells = {
    pick,
    user: td("user"),
    kind: td("kind"),
    state: td("state"),
    age: td("time age"),
    deadline: td("time deadline"),
    connections: td("num connections"),
    messages: td("num messages"),
    id: td("id"),
    action: td("action"),
  };
  const badge = document.createElement("span");
  cells.state.append(badge);
  cells.badge = badge;
  const code = document.createElement("code");
  cells.id.append(code);
  cells.code = code;
  const end = document.createElement("button");
  end.type = "button";
  end.className = "end-one";
  end.textContent = "End";
  end.addEventListener("click", () => endOne(id));
  cells.action.append(end);
  cells.end = end;
  const row = { tr, cells };
  rows.set(id, row);
  return row;
}

function updateRow(row, s, now) {
  const { cells } = row;
  const live = s.state !== "ended";
  row.tr.className = s.state;
  text(cells.user, s.user);
  text(cells.kind, s.kind);
  text(cells.badge, live ? s.state : `ended · ${s.end_reason}`);
  cells.badge.className = `badge ${s.state}`;
  text(cells.age, duration((live ? now : s.ended_at) - s.created_at));
  let deadline = "—";
  let soon = false;
  if (live && s.next_deadline) {
    const left = s.next_deadline.at - now;
    const verb = s.next_deadline.action === "warn" ? "warns" : "ends";
    deadline = `${verb} in ${duration(left)} (${CLOCKS[s.next_deadline.clock] ?? s.next_deadline.clock})`;
    soon = s.next_deadline.action === "end" && left < 60;
  } else if (!live && s.ended_at) {
    deadline = `ended ${duration(now - s.ended_at)} ago`;
  }
  text(cells.deadline, deadline);
  cells.deadline.classList.toggle("soon", soon);
  text(cells.connections, String(s.connections));
  text(cells.messages, String(s.message_count));
  text(cells.code, `${s.id.slice(0, 8)}…`);
  cells.code.title = s.id;
  cells.pick.disabled = !live;
  cells.pick.checked = live && selected.has(s.id);
  cells.end.hidden = !live;
  cells.end.setAttribute("aria-label", `End ${s.user}'s session ${s.id.slice(0, 8)}`);
}

function renderTable() {
  const tbody = $("sessions").tBodies[0];
  const shown = shownSessions();
  const now = serverNow();
  const keep = new Set();
  let previous = null;
  for (const s of shown.slice(0, MAX_ROWS)) {
    const row = rows.get(s.id) ?? createRow(s.id);
    updateRow(row, s, now);
    keep.add(s.id);
    const expected = previous === null ? tbody.firstChild : previous.nextSibling;
    if (row.tr !== expected) tbody.insertBefore(row.tr, expected);
    previous = row.tr;
  }
  for (const [id, row] of rows) {
    if (!keep.has(id)) {
      row.tr.remove();
      rows.delete(id);
    }
  }
  $("empty").hidden = shown.length > 0;
  $("empty").textContent =
    shown.length > MAX_ROWS ? `${shown.length - MAX_ROWS} more not shown: filter to see them.` : "No sessions match.";
  if (shown.length > MAX_ROWS) $("empty").hidden = false;
  updateSelection();
}

function updateSelection() {
  const live = [...selected].filter((id) => model.live.has(id));
  const button = $("end-selected");
  button.disabled = live.length === 0;
  button.textContent = live.length ? `End selected (${live.length})` : "End selected";
  const shownLive = [...rows.keys()].filter((id) => model.live.has(id));
  const all = $("select-all");
  all.checked = shownLive.length > 0 && shownLive.every((id) => selected.has(id));
  all.indeterminate = !all.checked && shownLive.some((id) => selected.has(id));
}


// -- actions -----------------------------------------------------------------------------

function notice(message, error = false) {
  const node = $("notice");
  node.textContent = message;
  node.className = error ? "error" : "";
}

function confirmAction(message, okLabel) {
  const dialog = $("confirm");
  $("confirm-text").textContent = message;
  $("confirm-ok").textContent = okLabel;
  dialog.returnValue = "";
  dialog.showModal();
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => resolve(dialog.returnValue === "ok"), { once: true });
  });
}

async function cleanup(body) {
  let response;
  try {
    response = await fetch(new URL("api/v1/sessions/cleanup", base), {
      method: "POST",
      headers: { Authorization: `Bearer ${token()}`, "Content-Type": "application/json" },
      body: JSON.stringify(body),
    });
  } catch (exc) {
    notice(`Could not reach the server: ${exc.message}`, true);
    return;
  }
  if (response.status === 401 || response.status === 403) {
    forgetToken();
    controller?.abort();
    setFeed("offline");
    showLogin("The server no longer accepts this token.");
    return;
  }
  const answer = await response.json().catch(() => null);
  if (!response.ok) {
    notice(`Refused: ${answer?.error?.message ?? `HTTP ${response.status}`}`, true);
    return;
  }
  const n = answer.ended;
  notice(`Ended ${n} session${n === 1 ? "" : "s"}.`);
}

async function endOne(id) {
  const s = model.live.get(id);
  if (!s) return;
  const ok = await confirmAction(
    `End ${s.user}'s ${s.kind} session ${id.slice(0, 8)}…? Its client is told it ended (reason "admin").`,
    "End session",
  );
  if (ok) await cleanup({ type: "specific", session_ids: [id] });
}

async function endSelected() {
  const ids = [...selected].filter((id) => model.live.has(id));
  if (ids.length === 0) return;
  const ok = await confirmAction(
    `End ${ids.length} selected session${ids.length === 1 ? "" : "s"}? Their clients are told (reason "admin").`,
    `End ${ids.length}`,
  );
  if (ok) {
    await cleanup({ type: "specific", session_ids: ids });
    selected.clear();
    updateSelection();
  }
}

function seconds(value) {
  const match = /^\s*(\d+(?:\.\d+)?)\s*(s|m|h)?\s*$/.exec(value);
  if (!match) return null;
  return Number(match[1]) * { s: 1, m: 60, h: 3600 }[match[2] ?? "s"];
}

async function endIdle() {
  const value = $("idle-for").value.trim();
  const limit = seconds(value);
  if (limit === null) {
    notice("Idle for: a duration such as 90, 90s, 10m or 1h.", true);
    $("idle-for").focus();
    return;
  }
  const now = serverNow();
  const matching = [...model.live.values()].filter((s) => now - s.last_activity >= limit).length;
  const ok = await confirmAction(
    `End every live session with no user activity for ${value}? ${matching} match now.`,
    "End idle sessions",
  );
  if (ok) await cleanup({ type: "inactive", inactive_for: value });
}

// -- wiring ------------------------------------------------------------------------------

$("login").addEventListener("submit", (event) => {
  event.preventDefault();
  const value = $("token-input").value.trim();
  if (!value) return;
  $("token-input").value = "";
  storeToken(value);
  attempt = 0;
  openFeed();
});
$("forget").addEventListener("click", () => {
  forgetToken();
  controller?.abort();
  setFeed("offline");
  showLogin();
});
for (const id of ["filter-state", "filter-kind"]) $(id).addEventListener("change", render);
$("filter-user").addEventListener("input", render);
$("select-all").addEventListener("change", (event) => {
  for (const id of rows.keys()) {
    if (!model.live.has(id)) continue;
    if (event.target.checked) selected.add(id);
    else selected.delete(id);
  }
  renderTable();
});
$("end-selected").addEventListener("click", endSelected);
$("end-idle").addEventListener("click", endIdle);
setupArchives({
  base,
  token,
  $,
  onAuthLost: () => {
    forgetToken();
    controller?.abort();
    setFeed("offline");
    showLogin("The server no longer accepts this token.");
  },
});

// Clocks tick here; data only changes when the server says so.
setInterval(() => {
  if ($("board").hidden) return;
  render();
  // Nothing at all (not even a snapshot) for three intervals: the stream is dead.
  if (document.body.dataset.feed === "live" && Date.now() - model.lastEventAt > 3000 * model.intervalS) {
    controller?.abort();
    retry();
  }
}, 1000);

tokenFromHash();
window.addEventListener("hashchange", () => {
  tokenFromHash();
  attempt = 0;
  openFeed();
});
openFeed();
