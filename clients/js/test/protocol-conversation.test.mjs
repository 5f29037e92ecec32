// TetherProtocol's conversation rules, driven directly like protocol.test.mjs:
// streamed replies, app events, raw frames, and the observer's state flow.
import { test, describe } from "node:test";
import assert from "node:assert/strict";

import { DEFAULTS, State, TetherProtocol, observeTarget } from "../../../src/tether/service/static/tether.js";

const SID = "9f0c1e2d3c4b5a69788796a5b4c3d2e1";
const SESSION = { id: SID, state: "active", config: {}, end_reason: null };

const frame = (obj) => JSON.stringify(obj);
const welcome = frame({ type: "welcome", v: 1, heartbeat_interval_s: 10 });
const started = frame({ type: "session.started", session: SESSION });
const resumed = frame({ type: "session.resumed", session: SESSION, transcript_tail: [] });
const delta = (text, id = "r1") => frame({ type: "reply.delta", reply_id: id, role: "assistant", text });
const message = (seq, extra = {}) =>
  frame({ type: "transcript.message", message: { seq, role: "assistant", content: "Hello", ts: 1, ...extra } });

function protocol(options = {}) {
  const p = new TetherProtocol({ token: "tok", random: () => 0.5, now: () => 0, ...options });
  p.run = (input) => {
    input(p);
    return p.take();
  };
  return p;
}

const types = (actions) => actions.map((a) => a.type);
const sent = (actions) => actions.filter((a) => a.type === "send").map((a) => JSON.parse(a.text));
const emitted = (actions, name) => actions.filter((a) => a.type === "emit" && a.name === name).map((a) => a.detail);

/** Walk a protocol to the point where its socket is open; returns what the open sent. */
function socketOpen(p) {
  p.run((q) => q.open());
  p.run((q) => q.tokenReady("tok"));
  return sent(p.run((q) => q.socketOpened()));
}

function open(options = {}) {
  const p = protocol(options);
  socketOpen(p);
  p.run((q) => q.receive(welcome));
  p.run((q) => q.receive(started));
  return p;
}

describe("protocol: streamed replies", () => {
  test("each reply.delta is emitted with its piece and the text so far, kept in replies by reply_id", () => {
    const p = open();
    const first = emitted(p.run((q) => q.receive(delta("Hel"))), "reply.delta");
    const second = emitted(p.run((q) => q.receive(delta("lo"))), "reply.delta");
    assert.deepEqual(first, [{ reply_id: "r1", role: "assistant", text: "Hel", content: "Hel" }]);
    assert.deepEqual(second, [{ reply_id: "r1", role: "assistant", text: "lo", content: "Hello" }]);
    assert.deepEqual([...p.replies.values()], [{ reply_id: "r1", role: "assistant", content: "Hello" }]);
  });

  test("two replies build apart; the transcript.message with a reply_id finishes only that one", () => {
    const p = open();
    p.run((q) => q.receive(delta("A", "r1")));
    p.run((q) => q.receive(delta("B", "r2")));
    const done = p.run((q) => q.receive(message(1, { reply_id: "r1", content: "A" })));
    assert.deepEqual(emitted(done, "message").map((d) => d.message.reply_id), ["r1"]);
    assert.deepEqual([...p.replies.keys()], ["r2"]);
  });

  test("a new link forgets the text so far, since the server replays it: no doubled text after a resume", () => {
    const p = open({ sessionId: SID });
    p.run((q) => q.receive(delta("Hel")));
    p.run((q) => q.socketClosed(1006));
    p.run((q) => q.timerFired("reconnect"));
    p.run((q) => q.tokenReady("tok"));
    p.run((q) => q.socketOpened());
    assert.equal(p.replies.size, 0);
    p.run((q) => q.receive(resumed));
    const replay = emitted(p.run((q) => q.receive(delta("Hel"))), "reply.delta");
    assert.equal(replay[0].content, "Hel");
    assert.equal(emitted(p.run((q) => q.receive(delta("lo"))), "reply.delta")[0].content, "Hello");
  });

  test("the end forgets every building reply", () => {
    const p = open();
    p.run((q) => q.receive(delta("Hel")));
    p.run((q) => q.receive(frame({ type: "session.ended", reason: "idle_timeout" })));
    assert.equal(p.replies.size, 0);
  });

  test("a reply.delta without a reply_id is a bad_server_frame error and changes nothing", () => {
    const p = open();
    const actions = p.run((q) => q.receive(frame({ type: "reply.delta", role: "assistant", text: "x" })));
    assert.equal(emitted(actions, "error")[0].code, "bad_server_frame");
    assert.deepEqual(emitted(actions, "reply.delta"), []);
    assert.equal(p.replies.size, 0);
  });
});

describe("protocol: app events and raw frames", () => {
  test("an app frame is emitted as app {name, data}", () => {
    const p = open();
    const actions = p.run((q) => q.receive(frame({ type: "app", name: "call.status", data: { status: "ringing" } })));
    assert.deepEqual(emitted(actions, "app"), [{ name: "call.status", data: { status: "ringing" } }]);
  });

  test("every server frame is emitted as frame, as sent, before its own event", () => {
    const p = open();
    const wire = { type: "reply.delta", reply_id: "r1", role: "assistant", text: "Hi", extra: 1 };
    const actions = p.run((q) => q.receive(frame(wire)));
    const names = actions.filter((a) => a.type === "emit").map((a) => a.name);
    assert.deepEqual(names, ["frame", "reply.delta"]);
    assert.deepEqual(emitted(actions, "frame"), [wire]);
  });

  test("a frame type this client does not know reaches frame, and nothing else happens", () => {
    const p = open();
    const actions = p.run((q) => q.receive(frame({ type: "call.status_changed", status: "in-progress" })));
    assert.deepEqual(types(actions), ["emit"]);
    assert.deepEqual(emitted(actions, "frame"), [{ type: "call.status_changed", status: "in-progress" }]);
    assert.equal(p.state, State.OPEN);
  });

  test("text that is not a JSON object is no frame: only the bad_server_frame error", () => {
    const p = open();
    const actions = p.run((q) => q.receive("[1, 2]"));
    assert.deepEqual(emitted(actions, "frame"), []);
    assert.equal(emitted(actions, "error")[0].code, "bad_server_frame");
  });
});

describe("protocol: observing", () => {
  test("observe {sessionId}: hello then observe with that id, never start or resume", () => {
    const p = protocol({ observe: { sessionId: SID } });
    assert.deepEqual(socketOpen(p), [
      { type: "hello", token: "tok", v: 1 },
      { type: "observe", session_id: SID },
    ]);
    p.run((q) => q.receive(welcome));
    const attached = p.run((q) => q.receive(resumed));
    assert.equal(p.state, State.OPEN);
    assert.deepEqual(emitted(attached, "started"), [{ session: SESSION, resumed: true }]);
  });

  test("an observer sends no activity: activity() does nothing, now or after a reconnect", () => {
    const p = protocol({ observe: true, sessionId: SID });
    socketOpen(p);
    p.run((q) => q.receive(resumed));
    assert.deepEqual(p.run((q) => q.activity()), []);
    p.run((q) => q.socketClosed(1006));
    p.run((q) => q.timerFired("reconnect"));
    p.run((q) => q.tokenReady("tok"));
    const reattach = p.run((q) => q.socketOpened());
    assert.deepEqual(sent(reattach).map((f) => f.type), ["hello", "observe"]);
    assert.equal(sent(p.run((q) => q.receive(resumed))).length, 0);
  });

  test("an observer cannot send messages (it throws, nothing goes out) but may set the config and end", () => {
    const p = protocol({ observe: { sessionId: SID } });
    socketOpen(p);
    p.run((q) => q.receive(resumed));
    assert.throws(() => p.sendMessage("hi"), /observer/);
    assert.deepEqual(p.take(), []);
    assert.deepEqual(sent(p.run((q) => q.setConfig({ voice: "alloy" }))), [{ type: "config", config: { voice: "alloy" } }]);
    assert.deepEqual(sent(p.run((q) => q.end())), [{ type: "end" }]);
  });

  test("observe the next session: waits (status awaiting, no connect timeout), then session.started attaches", () => {
    const p = protocol({ observe: { user: "me", waitS: 120 } });
    assert.deepEqual(socketOpen(p)[1], { type: "observe", user: "me", wait_s: 120 });
    const welcomed = p.run((q) => q.receive(welcome));
    assert.ok(welcomed.some((a) => a.type === "cancelTimer" && a.name === "connect"));
    assert.equal(p.status, "awaiting");
    assert.equal(p.state, State.ATTACHING);
    assert.deepEqual(p.run((q) => q.timerFired("connect")), []);
    const attached = p.run((q) => q.receive(started));
    assert.equal(p.state, State.OPEN);
    assert.equal(p.id, SID);
    assert.deepEqual(emitted(attached, "started"), [{ session: SESSION, resumed: false }]);
  });

  test("a reconnect while waiting asks only for what is left of the wait; once attached it observes the id", () => {
    let now = 0;
    const p = protocol({ observe: { user: "me", waitS: 60 }, now: () => now });
    socketOpen(p);
    now = 45_000;
    p.run((q) => q.socketClosed(1006));
    p.run((q) => q.timerFired("reconnect"));
    p.run((q) => q.tokenReady("tok"));
    assert.deepEqual(sent(p.run((q) => q.socketOpened()))[1], { type: "observe", user: "me", wait_s: 15 });
    p.run((q) => q.receive(started));
    p.run((q) => q.socketClosed(1006));
    p.run((q) => q.timerFired("reconnect"));
    p.run((q) => q.tokenReady("tok"));
    assert.deepEqual(sent(p.run((q) => q.socketOpened()))[1], { type: "observe", session_id: SID });
  });

  test("observe_timeout: the error is emitted and the observer closes, with no ended and no start", () => {
    const p = protocol({ observe: true });
    assert.deepEqual(socketOpen(p)[1], { type: "observe", user: "me", wait_s: DEFAULTS.observeWaitS });
    const actions = p.run((q) =>
      q.receive(frame({ type: "error", code: "observe_timeout", message: "no session started within 30s" })),
    );
    assert.equal(emitted(actions, "error")[0].code, "observe_timeout");
    assert.deepEqual(emitted(actions, "ended"), []);
    assert.deepEqual(types(actions).filter((t) => t !== "emit"), ["release", "finish"]);
    assert.equal(p.state, State.CLOSED);
  });

  test("end() while waiting for the next session stops waiting and never ends the session that starts later", () => {
    const p = protocol({ observe: true });
    socketOpen(p);
    const actions = p.run((q) => q.end());
    assert.deepEqual(sent(actions), []);
    assert.equal(p.state, State.CLOSED);
    assert.deepEqual(p.run((q) => q.receive(started)), []);
  });

  test("an observed session that is unknown (close 4404) ends the observer; a stored id never starts one", () => {
    const p = protocol({ observe: { sessionId: SID }, storedId: "0".repeat(32) });
    assert.equal(socketOpen(p)[1].session_id, SID);
    const actions = p.run((q) => q.socketClosed(4404));
    assert.equal(emitted(actions, "ended")[0].reason, "unknown_session");
    assert.ok(!types(actions).includes("token"));
  });

  test("over SSE an observer looks the session up and streams it; waiting for the next session is refused", () => {
    const byId = protocol({ observe: { sessionId: SID }, transport: "sse" });
    byId.run((q) => q.open());
    const lookup = byId.run((q) => q.tokenReady("tok"));
    assert.deepEqual(lookup.filter((a) => a.type === "rest"), [{ type: "rest", call: "lookup" }]);
    assert.deepEqual(byId.run((q) => q.activity()), []);

    const next = protocol({ observe: true, transport: "sse" });
    next.run((q) => q.open());
    const refused = next.run((q) => q.tokenReady("tok"));
    assert.equal(emitted(refused, "error")[0].code, "observe_unsupported");
    assert.equal(next.state, State.CLOSED);
    assert.ok(!refused.some((a) => a.type === "rest"));
  });

  test("observeTarget: true, ids, users and waits; bad values are a TypeError", () => {
    assert.equal(observeTarget(undefined), null);
    assert.equal(observeTarget(false, SID), null);
    assert.deepEqual(observeTarget(true, SID), { sessionId: SID });
    assert.deepEqual(observeTarget(true), { user: "me", waitS: DEFAULTS.observeWaitS });
    assert.deepEqual(observeTarget({ user: "alice", waitS: 5 }), { user: "alice", waitS: 5 });
    assert.throws(() => observeTarget({ waitS: -1 }), TypeError);
    assert.throws(() => observeTarget({ sessionId: 7 }), TypeError);
    assert.throws(() => observeTarget("yes"), TypeError);
  });
});
