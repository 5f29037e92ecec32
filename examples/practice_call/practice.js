// The practice page of seed 001: wait for my next call, brief the interviewer, watch it live.
//
// The page is an observer (observe {user: "me"}): it never holds the call's presence nor
// counts as activity; the phone does. It sends the job as the session's config when the
// call starts (the owner's observer may), and "Practice again" waits for the next call and
// sends the same job again. The token is read from the URL fragment (#token=...), which
// the browser never sends to a server.
import { connect } from "/static/tether.js";

const $ = (id) => document.getElementById(id);
const token = new URLSearchParams(location.hash.slice(1)).get("token");
const WAIT_S = 600;
let job = null; // fixed by the first "Wait for my call"; "Practice again" reuses it
let current = null;

function readJob() {
  const form = new FormData($("job"));
  const out = {};
  for (const [name, value] of form) if (String(value).trim()) out[name] = String(value).trim();
  return out;
}

function setStatus(text) {
  $("status").textContent = text;
  $("status").className = `badge ${text.replace(/\W+/g, "-")}`;
}

function log(text) {
  const li = document.createElement("li");
  li.textContent = text;
  $("log").append(li);
}

// The stored reply carries the id its reply.delta pieces had.
const replyId = (message) => message.reply_id ?? message.metadata?.reply_id;

function line(message) {
  const li = document.createElement("li");
  li.className = `msg ${message.role}`;
  li.dataset.role = message.role;
  li.dataset.seq = String(message.seq);
  if (replyId(message)) li.dataset.replyId = replyId(message);
  li.textContent = message.content;
  return li;
}

function watch() {
  $("transcript").replaceChildren(); // a fresh practice: an empty transcript
  $("ended").hidden = true;
  $("problem").textContent = "";
  $("call-status").textContent = "none";
  $("session-id").textContent = "none yet";
  $("briefed").textContent = "not briefed yet";
  $("log").replaceChildren();
  setStatus("waiting for your call");
  const session = connect({ token, observe: { user: "me", waitS: WAIT_S } });
  current = session;
  const building = new Map(); // reply_id -> <li> being streamed
  let configSent = false;

  session.on("started", ({ session: info }) => {
    $("session-id").textContent = info.id;
    setStatus("call in progress");
    log("session started");
  });
  session.on("config", ({ config }) => {
    if (configSent) return;
    configSent = true; // once per session: the job, over whatever the call started with
    session.setConfig({ ...config, job });
  });
  session.on("frame", (frame) => {
    if (frame.type !== "call.status_changed") return;
    $("call-status").textContent = frame.status;
    log(`call ${frame.status}`);
  });
  session.on("app", ({ name, data }) => {
    if (name === "practice.briefed") {
      $("briefed").textContent = data.company ? `${data.title} at ${data.company}` : data.title;
    }
  });
  session.on("reply.delta", ({ reply_id, role, content }) => {
    let li = building.get(reply_id);
    if (!li) {
      li = line({ role, content, seq: "", reply_id });
      li.classList.add("building");
      li.setAttribute("aria-busy", "true");
      li.dataset.deltas = "0";
      building.set(reply_id, li);
      $("transcript").append(li);
    }
    li.textContent = content;
    li.dataset.deltas = String(Number(li.dataset.deltas) + 1);
  });
  session.on("message", ({ message }) => {
    const done = line(message);
    const li = building.get(replyId(message));
    if (li) {
      done.dataset.deltas = li.dataset.deltas; // how many pieces it was built from
      building.delete(replyId(message));
      li.replaceWith(done);
    } else {
      $("transcript").append(done);
    }
  });
  session.on("error", ({ code, message }) => {
    $("problem").textContent = `${code}: ${message}`;
    if (code === "observe_timeout") {
      setStatus("no call came in");
      $("ended").hidden = false;
    }
  });
  session.on("ended", ({ reason }) => {
    setStatus("call ended");
    log(`session ended ${reason}`);
    $("end-reason").textContent = reason;
    $("ended").hidden = false;
  });
}

$("job").addEventListener("submit", (event) => {
  event.preventDefault();
  if (!token) {
    $("problem").textContent = "open this page as /practice#token=YOUR_TOKEN";
    return;
  }
  job = readJob();
  for (const input of $("job").elements) input.disabled = true;
  watch();
});

$("again").addEventListener("click", () => {
  if (current) current.disconnect(); // the last call is over; stop watching it
  watch();
});
