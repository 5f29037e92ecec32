// demo.js: the interview-practice demo at / (TETHER_DEMO=1), built on tether.js.
//
// One interview is one tether session. tether.js does the protocol: start with
// the job config in the first packet, activity tracking, heartbeats,
// reconnect-and-resume, the warning dialog with its countdown. This file only
// draws what the session reports and wires three buttons:
//
// * "End interview": session.end(), which ends it as client_ended;
// * "Practice again": ends the current session first (seed 001: clean up the
//   old connection before a new one), then starts a fresh one: new id, empty
//   transcript, no state carried over;
// * leaving the page (pagehide: tab closed, navigated away, reloaded) ends the
//   session with navigator.sendBeacon. Hiding the tab does not: switching tabs
//   to look something up must not end an interview (tether.js's endOnHide
//   "end" would, on visibilitychange).
//
// The interviewer is the server's (src/tether/service/interviewer.py): each
// answer gets the next question as an `assistant` message in the transcript.
// A reply streamed through the server's reply API shows as it builds up: each
// `reply.delta` redraws it with the text so far, and the transcript message
// with the same reply_id takes its place.

import { connect, formatCountdown, showWarningDialog } from "./tether.js";

const $ = (id) => document.getElementById(id);
const root = $("demo");
const base = new URL("..", import.meta.url).href; // the server's root, also under a prefix

const REASONS = {
  client_ended: "You ended the interview.",
  client_gone: "The page went away and did not come back in time.",
  idle_timeout: "Nothing happened for too long, so the interview ended.",
  max_duration: "The interview reached its time limit.",
  replaced: "A newer interview of yours replaced this one.",
  admin: "An administrator ended this interview.",
  server_shutdown: "The server shut down.",
  error: "Something went wrong on the server.",
  unknown_session: "The server no longer knows this interview.",
};

let token = null;
let tokenExpiresAt = 0;
let session = null;
let dialog = null;

/** A demo token, minted once and reused until shortly before it expires. */
async function demoToken() {
  if (token !== null && Date.now() < tokenExpiresAt - 60_000) return token;
  const response = await fetch(new URL(root.dataset.tokenUrl, base), { method: "POST" });
  if (!response.ok) throw new Error(`the demo token endpoint answered ${response.status}`);
  const minted = await response.json();
  token = minted.token;
  tokenExpiresAt = Date.now() + minted.expires_in * 1000;
  return token;
}

function log(text) {
  const item = document.createElement("li");
  item.textContent = `${new Date().toLocaleTimeString()} ${text}`;
  $("log").append(item);
  $("log").scrollTop = $("log").scrollHeight;
}

function setState(state) {
  const badge = $("state");
  badge.textContent = state;
  badge.className = `badge ${state}`;
  root.dataset.state = state;
}

function setComposer(enabled) {
  $("answer").disabled = !enabled;
  $("send").disabled = !enabled;
  $("end-session").disabled = !enabled;
}

function resetView() {
  $("transcript").replaceChildren();
  $("empty-hint").hidden = false;
  $("ended").hidden = true;
  $("end-reason").textContent = "";
  $("end-text").textContent = "";
  $("session-id").textContent = "none yet";
  $("idle-limit").textContent = "…";
  delete root.dataset.sessionId;
  setState("starting");
  setComposer(false);
}

function messageItem(role, content) {
  const item = document.createElement("li");
  item.className = `msg msg-${role}`;
  item.dataset.role = role;
  const who = document.createElement("span");
  who.className = "who";
  who.textContent = role === "user" ? "You" : "Interviewer";
  const text = document.createElement("span");
  text.className = "text";
  text.textContent = content;
  item.append(who, text);
  return item;
}

function append(item) {
  $("transcript").append(item);
  $("empty-hint").hidden = true;
  $("transcript").scrollTop = $("transcript").scrollHeight;
}

/** The reply `replyId` while it streams: one list item, redrawn with the text so far. */
function buildingReply(replyId) {
  return [...$("transcript").querySelectorAll("li.building")].find((li) => li.dataset.replyId === replyId);
}

function showDelta({ reply_id: replyId, role, content }) {
  let item = buildingReply(replyId);
  if (item === undefined) {
    item = messageItem(role, "");
    item.classList.add("building");
    item.dataset.replyId = replyId;
    item.setAttribute("aria-busy", "true");
    append(item);
  }
  item.querySelector(".text").textContent = content;
  $("transcript").scrollTop = $("transcript").scrollHeight;
}

function showMessage(message) {
  const item = messageItem(message.role, message.content);
  item.dataset.seq = String(message.seq);
  const building = message.reply_id === undefined ? undefined : buildingReply(message.reply_id);
  if (building !== undefined) {
    item.dataset.replyId = message.reply_id;
    building.replaceWith(item); // the finished reply takes the place it was built in
  } else {
    append(item);
  }
}

function start() {
  resetView();
  const job = $("job").value;
  const current = connect({
    url: base,
    token: demoToken,
    kind: "interview",
    config: { interviewer: "scripted", job },
  });
  session = current;
  window.tetherDemo.session = current;
  dialog = showWarningDialog(current, {
    injectStyles: false, // the page links tether-dialog.css: its CSP allows no inline style
    texts: { idle: "This interview ends in {time} because nothing has happened for a while." },
  });
  // Events of a session the page has moved on from are ignored.
  const on = (name, fn) => current.on(name, (detail) => current === session && fn(detail));

  on("status", ({ status, attempt, delayMs }) => {
    const retry = status === "reconnecting" && attempt ? ` (attempt ${attempt})` : "";
    $("conn-status").textContent = status + retry;
    root.dataset.connection = status;
    log(`connection ${status}${retry}${delayMs !== undefined ? `, in ${delayMs} ms` : ""}`);
  });
  on("started", ({ session: view, resumed }) => {
    $("session-id").textContent = view.id;
    root.dataset.sessionId = view.id;
    $("idle-limit").textContent =
      `${formatCountdown(view.policy.idle_timeout)}, warned ` +
      `${formatCountdown(view.policy.warn_before)} before`;
    setState(view.state);
    setComposer(true);
    $("answer").focus();
    log(`${resumed ? "resumed" : "started"} session ${view.id.slice(0, 8)}…`);
  });
  on("warning", ({ reason, secondsLeft }) => {
    setState("warning");
    log(`warning: ${reason}, ${Math.round(secondsLeft)} s left`);
  });
  on("active", () => {
    setState("active");
    log("active again");
  });
  on("reply.delta", showDelta);
  on("message", ({ message }) => showMessage(message));
  on("ended", ({ reason }) => {
    setState("ended");
    setComposer(false);
    $("end-reason").textContent = reason;
    $("end-text").textContent = REASONS[reason] ?? "";
    $("ended").hidden = false;
    root.dataset.endReason = reason;
    log(`ended: ${reason}`);
  });
  on("error", ({ code, message }) => log(`error ${code}: ${message}`));
}

async function practiceAgain() {
  const previous = session;
  session = null;
  dialog?.destroy();
  dialog = null;
  if (previous !== null && previous.endedDetail === null) {
    log("ending the previous interview");
    await previous.end(); // resolves once the server says it ended
  }
  start();
}

function send() {
  const text = $("answer").value.trim();
  if (!text || session === null) return;
  session.sendMessage(text);
  $("answer").value = "";
}

$("composer").addEventListener("submit", (event) => {
  event.preventDefault();
  send();
});
$("answer").addEventListener("keydown", (event) => {
  if (event.key === "Enter" && !event.shiftKey) {
    event.preventDefault();
    send();
  }
});
$("end-session").addEventListener("click", () => session?.end());
$("again").addEventListener("click", () => practiceAgain());
// Leaving the page ends the interview now, not after the reconnect grace.
window.addEventListener("pagehide", () => session?.endWithBeacon());

window.tetherDemo = { session: null, practiceAgain };
start();
