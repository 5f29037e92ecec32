// TetherProtocol, the sans-I/O rulebook, driven directly: inputs in (frames,
// closes, REST answers, fired timers, commands), actions out. No fakes of any
// browser part: the protocol never touches one.
import { test, describe } from "node:test";
import assert from "node:assert/strict";

import { Ending, State, TetherProtocol, backoffDelay } from "../../../src/tether/service/static/tether.js";

const SID = "9f0c1e2d3c4b5a69788796a5b4c3d2e1";
const SESSION = { id: SID, state: "active", config: { job: "nurse" }, end_reason: null };

const frame = (obj) => JSON.stringify(obj);
const started = frame({ type: "session.started", session: SESSION });
const welcome = frame({ type: "welcome", v: 1, heartbeat_interval_s: 10, max_message_bytes: 200 });

/** A protocol on a fixed clock and random, with helpers to read its actions. */
function protocol(options = {}) {
  const p = new TetherProtocol({ token: "tok", kind: "interview", random: () => 0.5, now: () => 0, ...options });
  p.run = (input) => {
    input(p);
    return p.take();
  };
  return p;
}

const types = (actions) => actions.map((a) => a.type);
const sent = (actions) => actions.filter((a) => a.type === "send").map((a) => JSON.parse(a.text));
const emitted = (actions, name) => actions.filter((a) => a.type === "emit" && a.detail && a.name === name);
const rest = (actions) => actions.filter((a) => a.type === "rest").map((a) => a.call);

/** A protocol walked to OPEN over a WebSocket. */
function open(options = {}) {
  const p = protocol(options);
  p.run((q) => q.open());
  p.run((q) => q.tokenReady("tok"));
  p.run((q) => q.socketOpened());
  p.run((q) => q.receive(welcome));
  p.run((q) => q.receive(started));
  return p;
}

describe("protocol: connecting", () => {
  test("open asks for the token; the token opens a socket; the open socket says hello and start at once", () => {
    const p = protocol();
    assert.equal(p.state, State.IDLE);
    const first = p.run((q) => q.open());
    assert.deepEqual(types(first), ["emit", "token"]);
    assert.equal(p.state, State.CONNECTING);
    assert.deepEqual(types(p.run((q) => q.tokenReady("tok"))), ["timer", "openSocket"]);
    const hello = p.run((q) => q.socketOpened());
    assert.deepEqual(sent(hello), [
      { type: "hello", token: "tok", v: 1 },
      { type: "start", kind: "interview" },
    ]);
    assert.equal(p.state, State.ATTACHING);
  });

  test("session.started makes the state OPEN, stores the id, resolves ready and emits started once", () => {
    const p = protocol();
    p.run((q) => q.open());
    p.run((q) => q.tokenReady("tok"));
    p.run((q) => q.socketOpened());
    const actions = p.run((q) => q.receive(started));
    assert.equal(p.state, State.OPEN);
    assert.equal(p.id, SID);
    assert.deepEqual(types(actions).filter((t) => t !== "emit"), ["store", "ready"]);
    assert.deepEqual(emitted(actions, "started").map((a) => a.detail), [{ session: SESSION, resumed: false }]);
    assert.equal(p.status, "open");
  });

  test("a token that arrives after disconnect() is ignored: nothing is opened", () => {
    const p = protocol();
    p.run((q) => q.open());
    const closing = p.run((q) => q.disconnect());
    assert.deepEqual(types(closing), ["release", "emit", "finish"]);
    assert.equal(p.state, State.CLOSED);
    assert.deepEqual(p.run((q) => q.tokenReady("tok")), []);
  });
});

describe("protocol: closes", () => {
  test("close 1006 while OPEN waits the jittered backoff (state WAITING), then the timer reconnects", () => {
    const p = open();
    const actions = p.run((q) => q.socketClosed(1006));
    assert.equal(p.state, State.WAITING);
    const delay = backoffDelay(0, {}, () => 0.5);
    assert.deepEqual(actions.filter((a) => a.type === "timer"), [{ type: "timer", name: "reconnect", ms: delay }]);
    assert.deepEqual(emitted(actions, "status").at(-1).detail, {
      status: "reconnecting",
      previous: "open",
      transport: "websocket",
      attempt: 1,
      delayMs: delay,
    });
    assert.deepEqual(types(p.run((q) => q.timerFired("reconnect"))), ["token"]);
    assert.equal(p.state, State.CONNECTING);
  });

  test("close 4001 ends the session: forget the id, ended, release, finish; the state is CLOSED", () => {
    const p = open();
    const actions = p.run((q) => q.socketClosed(4001));
    assert.equal(p.state, State.CLOSED);
    assert.deepEqual(types(actions).filter((t) => t !== "emit" && t !== "cancelTimer"), ["forget", "release", "finish"]);
    assert.deepEqual(emitted(actions, "ended")[0].detail, { reason: "idle_timeout", archiveId: null, code: 4001 });
    assert.deepEqual(p.run((q) => q.timerFired("reconnect")), []);
  });

  test("a stored id the server no longer knows is dropped and a new session started, over WS and REST alike", () => {
    const ws = protocol({ storedId: SID });
    ws.run((q) => q.open());
    ws.run((q) => q.tokenReady("tok"));
    assert.deepEqual(sent(ws.run((q) => q.socketOpened()))[1], { type: "resume", session_id: SID });
    const restart = ws.run((q) => q.socketClosed(4404));
    assert.deepEqual(types(restart).filter((t) => t !== "emit" && t !== "cancelTimer"), ["forget", "token"]);
    assert.equal(ws.id, null);
    assert.equal(ws.state, State.CONNECTING);

    const sse = protocol({ storedId: SID, transport: "sse" });
    sse.run((q) => q.open());
    assert.deepEqual(rest(sse.run((q) => q.tokenReady("tok"))), ["lookup"]);
    const again = sse.run((q) => q.restAnswered("lookup", { ok: false, status: 404, body: null }));
    assert.deepEqual(types(again).filter((t) => t !== "emit"), ["forget", "token"]);
    assert.equal(sse.id, null);
    assert.deepEqual(emitted(again, "ended"), []);
  });

  test("a given (not stored) id that is unknown ends the session instead", () => {
    const p = protocol({ sessionId: SID });
    p.run((q) => q.open());
    p.run((q) => q.tokenReady("tok"));
    p.run((q) => q.socketOpened());
    p.run((q) => q.receive(frame({ type: "error", code: "session_ended", message: "x", reason: "client_gone" })));
    const actions = p.run((q) => q.socketClosed(4404));
    assert.deepEqual(emitted(actions, "ended")[0].detail, { reason: "client_gone", archiveId: null, code: 4404 });
    assert.equal(p.state, State.CLOSED);
  });

  test("three WebSockets that never open switch the transport to SSE: the next connect is a REST start", () => {
    const p = protocol();
    p.run((q) => q.open());
    for (let i = 0; i < 3; i++) {
      p.run((q) => q.tokenReady("tok"));
      p.run((q) => q.socketClosed(1006));
      p.run((q) => q.timerFired("reconnect"));
    }
    assert.equal(p.transport, "sse");
    const start = p.run((q) => q.tokenReady("tok"));
    assert.deepEqual(start.filter((a) => a.type === "rest"), [
      { type: "rest", call: "start", body: { kind: "interview" } },
    ]);
    const named = p.run((q) => q.restAnswered("start", { ok: true, status: 201, body: SESSION }));
    assert.deepEqual(named.filter((a) => a.type === "openStream"), [{ type: "openStream", after: 0 }]);
    p.run((q) => q.streamOpened());
    assert.equal(p.state, State.OPEN);
  });
});

describe("protocol: heartbeats and commands", () => {
  test("welcome arms the ping timer; two unanswered pings and the third beat drops the socket and reconnects", () => {
    const p = open();
    assert.deepEqual(sent(p.run((q) => q.timerFired("ping"))), [{ type: "ping" }]);
    p.run((q) => q.timerFired("ping"));
    const dead = p.run((q) => q.timerFired("ping"));
    assert.equal(types(dead)[0], "closeSocket");
    assert.equal(p.state, State.WAITING);
    assert.deepEqual(emitted(dead, "ended"), []);
  });

  test("commands while reconnecting are queued and go out after the resume, in order", () => {
    const p = open();
    p.run((q) => q.socketClosed(1006));
    assert.deepEqual(p.run((q) => q.sendMessage("hi")), []);
    p.run((q) => q.timerFired("reconnect"));
    p.run((q) => q.tokenReady("tok"));
    p.run((q) => q.socketOpened());
    const resumed = frame({ type: "session.resumed", session: SESSION, transcript_tail: [] });
    assert.deepEqual(sent(p.run((q) => q.receive(resumed))), [{ type: "message", role: "user", content: "hi" }]);
  });

  test("a message over max_message_bytes throws RangeError and queues no send", () => {
    const p = open();
    assert.throws(() => p.sendMessage("x".repeat(500)), RangeError);
    assert.deepEqual(sent(p.take()), []);
  });

  test("end() before the session is named waits (ending ASKED), and session.started sends the end frame", () => {
    const p = protocol();
    p.run((q) => q.open());
    p.run((q) => q.tokenReady("tok"));
    p.run((q) => q.socketOpened());
    assert.deepEqual(p.run((q) => q.end()), []);
    assert.equal(p.ending, Ending.ASKED);
    assert.deepEqual(sent(p.run((q) => q.receive(started))), [{ type: "end" }]);
    assert.equal(p.ending, Ending.SENT);
  });

  test("end() while WAITING cancels the reconnect and ends over REST (state ENDING); the answer ends it", () => {
    const p = open();
    p.run((q) => q.socketClosed(1006));
    const actions = p.run((q) => q.end());
    assert.deepEqual(actions, [
      { type: "cancelTimer", name: "reconnect" },
      { type: "rest", call: "end" },
    ]);
    assert.equal(p.state, State.ENDING);
    assert.deepEqual(p.run((q) => q.timerFired("reconnect")), []);
    const done = p.run((q) => q.restAnswered("end", { ok: true, status: 200, body: { reason: "client_ended" } }));
    assert.deepEqual(emitted(done, "ended")[0].detail, { reason: "client_ended", archiveId: null });
    assert.equal(p.state, State.CLOSED);
  });

  test("commands after the end throw; a warning's deadline comes from the injected clock", () => {
    let now = 1000;
    const p = open({ now: () => now });
    const warned = p.run((q) =>
      q.receive(frame({ type: "session.warning", reason: "idle_timeout", seconds_left: 30, ends_at: 5 })),
    );
    const notFrames = warned.filter((a) => !(a.type === "emit" && a.name === "frame"));
    assert.equal(notFrames[0].type, "resetThrottle");
    now += 10000;
    assert.equal(p.secondsLeft(), 20);
    p.run((q) => q.receive(frame({ type: "session.ended", reason: "admin" })));
    assert.throws(() => p.sendMessage("late"), /over/);
  });
});
