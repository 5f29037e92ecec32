// What the page holds for a session (session.hold), released on every end; the
// conversation events and an observer, through TetherSession over fakes.mjs.
// tests/browser/test_browser_client.py proves the same with a real MediaStream
// and AudioContext in Chromium.
import { test, describe } from "node:test";
import assert from "node:assert/strict";

import { Holdings } from "../../../src/tether/service/static/tether.js";
import { SID, SESSION, attached, flush, rig } from "./fakes.mjs";

/** Stand-ins with the shapes hold() tells apart, counting their releases. */
function things() {
  const counts = { tracks: 0, context: 0, fn: 0, cleared: [] };
  const track = () => ({ stop: () => (counts.tracks += 1) });
  const stream = { getTracks: () => [track(), track()] };
  const context = {
    state: "running",
    close() {
      counts.context += 1;
      this.state = "closed";
      return Promise.resolve();
    },
  };
  const fn = () => (counts.fn += 1);
  return { counts, stream, context, fn };
}

describe("Holdings", () => {
  test("a stream's tracks are stopped, a context closed, a timer cleared, a function called: once each", () => {
    const { counts, stream, context, fn } = things();
    const cleared = [];
    const h = new Holdings({ clearTimeout: (id) => cleared.push(["t", id]), clearInterval: (id) => cleared.push(["i", id]) });
    for (const thing of [stream, context, fn, 42, fn]) h.hold(thing);
    assert.equal(h.size, 4);
    h.releaseAll();
    h.releaseAll();
    assert.deepEqual(counts, { tracks: 2, context: 1, fn: 1, cleared: [] });
    assert.deepEqual(cleared, [["t", 42], ["i", 42]]);
  });

  test("after the final release, anything handed over is released at once", () => {
    const { counts, fn } = things();
    const h = new Holdings();
    h.releaseAll({ final: true });
    h.hold(fn);
    assert.equal(counts.fn, 1);
    assert.equal(h.size, 0);
  });

  test("the function hold() returns releases that one thing now, and only once", () => {
    const { counts, fn, context } = things();
    const h = new Holdings();
    const release = h.hold(fn);
    h.hold(context);
    release();
    release();
    h.releaseAll();
    assert.equal(counts.fn, 1);
    assert.equal(counts.context, 1);
  });

  test("one release that throws is reported and the others still happen; an already closed context is left alone", () => {
    const { counts, fn, context } = things();
    const errors = [];
    const h = new Holdings({}, (exc) => errors.push(exc.message));
    context.state = "closed";
    h.hold(fn);
    h.hold(() => {
      throw new Error("boom");
    });
    h.hold(context);
    h.releaseAll();
    assert.deepEqual(errors, ["boom"]);
    assert.equal(counts.fn, 1);
    assert.equal(counts.context, 0);
  });

  test("something hold() cannot release is a TypeError at once, and nothing is held", () => {
    const h = new Holdings();
    for (const bad of [null, "stream", {}, true]) assert.throws(() => h.hold(bad), TypeError);
    assert.equal(h.size, 0);
  });
});

describe("session.hold", () => {
  for (const [name, endIt] of [
    ["session.ended from the server", (r) => r.ws().frame({ type: "session.ended", reason: "admin" })],
    ["an idle_timeout close", (r) => r.ws().drop(4001)],
    ["a replaced close", (r) => r.ws().drop(4003)],
    ["disconnect()", (r) => r.session.disconnect()],
    ["end() answered by the server", (r) => {
      r.session.end();
      r.ws().frame({ type: "session.ended", reason: "client_ended" });
    }],
  ]) {
    test(`${name} releases everything held`, async () => {
      const r = await attached();
      const { counts, stream, context, fn } = things();
      r.session.hold(stream);
      r.session.hold(context);
      r.session.hold(fn);
      assert.equal(counts.tracks + counts.context + counts.fn, 0);
      endIt(r);
      await flush();
      assert.deepEqual(counts, { tracks: 2, context: 1, fn: 1, cleared: [] });
    });
  }

  test("pagehide releases what is held though the session goes on; held later is kept", async () => {
    const r = await attached();
    const { counts, stream, fn } = things();
    r.session.hold(stream);
    r.window.dispatchEvent(new Event("pagehide"));
    assert.equal(counts.tracks, 2);
    assert.equal(r.session.status, "open");
    r.session.hold(fn);
    assert.equal(counts.fn, 0);
  });

  test("a timer id handed over is cleared with the page's clearTimeout at the end", async () => {
    const r = await attached();
    let fired = 0;
    const id = r.sched.setTimeout(() => (fired += 1), 1000);
    r.session.hold(id);
    r.ws().drop(4001);
    r.sched.advance(5000);
    assert.equal(fired, 0);
  });
});

describe("conversation events and observers on a session", () => {
  test("reply.delta, app and frame reach on(); session.replies holds the reply until its message", async () => {
    const r = await attached();
    const seen = [];
    for (const name of ["reply.delta", "app", "frame"]) r.session.on(name, (d) => seen.push([name, d]));
    r.ws().frame({ type: "reply.delta", reply_id: "r1", role: "assistant", text: "Hi" });
    r.ws().frame({ type: "app", name: "tts.level", data: 0.5 });
    r.ws().frame({ type: "call.status_changed", status: "ringing" });
    assert.equal(r.session.replies.get("r1").content, "Hi");
    r.ws().frame({
      type: "transcript.message",
      message: { seq: 1, role: "assistant", content: "Hi", ts: 1, reply_id: "r1" },
    });
    assert.equal(r.session.replies.size, 0);
    assert.deepEqual(
      seen.filter(([name]) => name !== "frame"),
      [
        ["reply.delta", { reply_id: "r1", role: "assistant", text: "Hi", content: "Hi" }],
        ["app", { name: "tts.level", data: 0.5 }],
      ],
    );
    assert.deepEqual(
      seen.filter(([name]) => name === "frame").map(([, f]) => f.type),
      ["reply.delta", "app", "call.status_changed", "transcript.message"],
    );
  });

  test("an observer tracks no user activity: DOM events and activity() send nothing", async () => {
    const r = rig({ observe: { sessionId: SID } });
    r.session.open();
    await flush();
    r.ws().accept();
    r.ws().frame({ type: "session.resumed", session: SESSION, transcript_tail: [] });
    assert.equal(r.session.activityTracker, null);
    r.window.dispatchEvent(new Event("keydown"));
    r.session.activity();
    assert.deepEqual(r.ws().types(), ["hello", "observe"]);
    assert.deepEqual(r.session.observing, { sessionId: SID });
  });
});
