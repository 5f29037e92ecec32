// TetherSession over fake browser parts: connecting, heartbeats, reconnecting.
// Driven through fakes.mjs: every timer is the fake scheduler's.
import { test, describe } from "node:test";
import assert from "node:assert/strict";

import {
  TetherSession,
  backoffDelay,
  connect,
} from "../../../src/tether/service/static/tether.js";
import { SID, BASE, SESSION, fakeWebSocketClass, flush, rig, attached } from "./fakes.mjs";

describe("connecting", () => {
  test("hello and start (with kind and config) go out as soon as the socket opens, before any server frame", async () => {
    const r = rig();
    r.session.open();
    await flush();
    assert.equal(r.ws().url, "wss://app.example/ws");
    r.ws().accept();
    assert.deepEqual(r.ws().sent, [
      { type: "hello", token: "tok", v: 1 },
      { type: "start", kind: "interview", config: { job: "nurse" } },
    ]);
  });

  test("a given session id is resumed, not started", async () => {
    const r = rig({ sessionId: SID });
    r.session.open();
    await flush();
    r.ws().accept();
    assert.deepEqual(r.ws().sent[1], { type: "resume", session_id: SID });
  });

  test("started fires once with the session, status goes connecting then open, ready resolves", async () => {
    const r = await attached();
    assert.deepEqual(r.named("started"), [{ session: SESSION, resumed: false }]);
    assert.deepEqual(
      r.named("status").map((s) => s.status),
      ["connecting", "open"],
    );
    assert.deepEqual(await r.session.ready, SESSION);
    assert.equal(r.session.id, SID);
    assert.deepEqual(r.named("config"), [{ config: { job: "nurse" } }]);
  });

  test("a token function is asked again on every connect", async () => {
    let calls = 0;
    const r = rig({ token: async () => `tok${++calls}` });
    r.session.open();
    await flush();
    r.ws().accept();
    r.ws().frame({ type: "session.started", session: SESSION });
    r.ws().drop(1006);
    r.sched.advance(60000);
    await flush();
    r.ws().accept();
    assert.deepEqual(
      r.sockets.map((ws) => ws.sent[0].token),
      ["tok1", "tok2"],
    );
  });

  test("connect() returns an opened session and a token is required", async () => {
    assert.throws(() => new TetherSession({ url: BASE }), TypeError);
    const { FakeWebSocket, sockets } = fakeWebSocketClass();
    const session = connect({
      token: "t",
      url: BASE,
      activity: false,
      env: { WebSocket: FakeWebSocket, window: undefined, document: undefined },
    });
    assert.equal(session.status, "connecting");
    session.disconnect(); // before the token resolved: no socket is ever opened
    await flush();
    assert.equal(sockets.length, 0);
    assert.equal(session.status, "closed");
  });
});

describe("heartbeats", () => {
  test("pings go out on the server's advertised interval, not the default", async () => {
    const r = rig();
    r.session.open();
    await flush();
    r.ws().accept();
    r.ws().frame({ type: "welcome", v: 1, heartbeat_interval_s: 10 });
    r.ws().frame({ type: "session.started", session: SESSION });
    r.sched.advance(9999);
    assert.equal(r.ws().types().filter((t) => t === "ping").length, 0);
    r.sched.advance(1);
    r.ws().frame({ type: "pong" });
    r.sched.advance(10000);
    r.ws().frame({ type: "pong" });
    assert.equal(r.ws().types().filter((t) => t === "ping").length, 2);
  });

  test("a socket that stops answering is replaced and the session resumed, never ended", async () => {
    const r = await attached();
    const first = r.ws();
    r.sched.advance(25000 * 3); // two unanswered pings, then the third beat gives up
    assert.equal(first.clientClosed !== null, true);
    assert.deepEqual(r.named("ended"), []);
    r.sched.advance(10000);
    await flush();
    assert.equal(r.sockets.length, 2);
    r.ws().accept();
    assert.deepEqual(r.ws().sent[1], { type: "resume", session_id: SID });
  });

  test("any frame from the server counts as an answer: a chatty socket is never presumed dead", async () => {
    const r = await attached();
    for (let i = 0; i < 10; i++) {
      r.sched.advance(25000);
      r.ws().frame({ type: "session.config", config: {} });
    }
    assert.equal(r.sockets.length, 1);
    assert.equal(r.ws().clientClosed, null);
  });
});

describe("reconnecting", () => {
  for (const code of [1001, 1006, 1011]) {
    test(`after close ${code} it waits the jittered backoff, then resumes with the last transcript position`, async () => {
      const r = await attached();
      r.ws().frame({ type: "transcript.message", message: { seq: 7, role: "user", content: "x", ts: 1 } });
      r.ws().drop(code);
      const delay = backoffDelay(0, { base: 500, cap: 10000 }, () => 0.5);
      assert.deepEqual(r.named("status").at(-1), {
        status: "reconnecting",
        previous: "open",
        transport: "websocket",
        attempt: 1,
        delayMs: delay,
      });
      r.sched.advance(delay - 1);
      await flush();
      assert.equal(r.sockets.length, 1);
      r.sched.advance(1);
      await flush();
      assert.equal(r.sockets.length, 2);
      r.ws().accept();
      assert.deepEqual(r.ws().sent, [
        { type: "hello", token: "tok", v: 1 },
        { type: "resume", session_id: SID, after: 7 },
      ]);
      r.ws().frame({ type: "session.resumed", session: SESSION, transcript_tail: [] });
      assert.equal(r.session.status, "open");
      assert.equal(r.named("started").length, 1);
    });
  }

  test("successive failures back off exponentially with full jitter, and success resets it", async () => {
    const r = await attached({}, { random: () => 0.999 });
    const seen = [];
    for (let attempt = 0; attempt < 6; attempt++) {
      r.ws().drop(1006);
      seen.push(r.named("status").at(-1).delayMs);
      r.sched.advance(seen.at(-1));
      await flush();
      if (attempt < 5) r.ws().accept();
    }
    assert.deepEqual(
      seen,
      [0, 1, 2, 3, 4, 5].map((a) => backoffDelay(a, {}, () => 0.999)),
    );
    r.ws().accept();
    r.ws().frame({ type: "session.resumed", session: SESSION, transcript_tail: [] });
    r.ws().drop(1006);
    assert.equal(r.named("status").at(-1).delayMs, backoffDelay(0, {}, () => 0.999));
  });

  for (const [code, reason] of [
    [1000, "client_ended"],
    [4001, "idle_timeout"],
    [4002, "max_duration"],
    [4003, "replaced"],
    [4004, "admin"],
  ]) {
    test(`close ${code} ends the session as ${reason} and never reconnects`, async () => {
      const r = await attached();
      r.ws().drop(code);
      r.sched.advance(600000);
      await flush();
      assert.equal(r.sockets.length, 1);
      assert.deepEqual(r.named("ended"), [{ reason, archiveId: null, code }]);
      assert.equal(r.session.status, "closed");
      assert.deepEqual(await r.session.closed, { reason, archiveId: null, code });
    });
  }

  test("session.ended gives one ended event with the server's reason and archive, and no reconnect", async () => {
    const r = await attached();
    r.ws().frame({ type: "session.ended", reason: "idle_timeout", archive_id: "a1" });
    r.ws().drop(4001);
    r.sched.advance(600000);
    await flush();
    assert.deepEqual(r.named("ended"), [{ reason: "idle_timeout", archiveId: "a1" }]);
    assert.equal(r.sockets.length, 1);
  });

  test("4404 on resume ends with the reason from the server's error frame", async () => {
    const r = rig({ sessionId: SID });
    r.session.open();
    await flush();
    r.ws().accept();
    r.ws().frame({ type: "error", code: "session_ended", message: "ended", reason: "client_gone" });
    r.ws().drop(4404);
    assert.deepEqual(r.named("ended"), [{ reason: "client_gone", archiveId: null, code: 4404 }]);
    await assert.rejects(r.session.ready);
  });

  test("4029 waits at least the server's retry_after_s before trying again", async () => {
    const r = await attached();
    r.ws().frame({ type: "error", code: "rate_limited", message: "slow down", retry_after_s: 30 });
    r.ws().drop(4029);
    assert.equal(r.named("status").at(-1).delayMs, 30000);
    r.sched.advance(29999);
    await flush();
    assert.equal(r.sockets.length, 1);
    r.sched.advance(1);
    await flush();
    assert.equal(r.sockets.length, 2);
  });

  test("1008 (token refused) reports the server's error and stops", async () => {
    const r = rig();
    r.session.open();
    await flush();
    r.ws().accept();
    r.ws().frame({ type: "error", code: "unauthorized", message: "invalid or expired token" });
    r.ws().drop(1008);
    r.sched.advance(600000);
    await flush();
    assert.equal(r.sockets.length, 1);
    assert.equal(r.session.status, "closed");
    assert.equal(r.named("error").at(-1).code, "unauthorized");
    assert.equal(r.named("error").at(-1).closeCode, 1008);
  });

  test("1008 with a token function is retried once with a fresh token", async () => {
    const r = rig({ token: () => "fresh" });
    r.session.open();
    await flush();
    r.ws().accept();
    r.ws().frame({ type: "session.started", session: SESSION });
    r.ws().drop(1008);
    r.sched.advance(10000);
    await flush();
    assert.equal(r.sockets.length, 2);
    r.ws().accept();
    r.ws().drop(1008);
    r.sched.advance(600000);
    await flush();
    assert.equal(r.sockets.length, 2);
    assert.equal(r.session.status, "closed");
  });

  test("being disconnected far past the presence timeout never ends the session locally: the server decides", async () => {
    const r = await attached();
    r.ws().drop(1006);
    for (let i = 0; i < 40; i++) {
      r.sched.advance(15 * 60 * 1000); // timers as late as a throttled background tab's
      await flush();
      r.ws().drop(1006);
    }
    assert.deepEqual(r.named("ended"), []);
    r.sched.advance(15 * 60 * 1000);
    await flush();
    r.ws().accept();
    assert.deepEqual(r.ws().sent[1], { type: "resume", session_id: SID });
    r.ws().frame({ type: "error", code: "session_ended", message: "ended", reason: "client_gone" });
    r.ws().drop(4404);
    assert.deepEqual(r.named("ended"), [{ reason: "client_gone", archiveId: null, code: 4404 }]);
  });

  test("coming back online or to the tab reconnects at once instead of waiting out the backoff", async () => {
    const r = await attached({}, { random: () => 0.999 });
    r.ws().drop(1006);
    r.sched.advance(r.named("status").at(-1).delayMs);
    await flush();
    r.ws().drop(1006); // second attempt pending now
    assert.ok(r.named("status").at(-1).delayMs > 0);
    r.window.dispatchEvent(new Event("online"));
    await flush();
    assert.equal(r.sockets.length, 3);
    r.ws().drop(1006);
    r.document.hide();
    r.document.show();
    await flush();
    assert.equal(r.sockets.length, 4);
  });

  test("frames sent while reconnecting are queued and go out after the resume", async () => {
    const r = await attached();
    r.ws().drop(1006);
    r.session.sendMessage("are you there?");
    r.session.setConfig({ job: "doctor" });
    r.sched.advance(10000);
    await flush();
    r.ws().accept();
    assert.deepEqual(r.ws().types(), ["hello", "resume"]);
    r.ws().frame({ type: "session.resumed", session: SESSION, transcript_tail: [] });
    assert.deepEqual(r.ws().sent.slice(2), [
      { type: "message", role: "user", content: "are you there?" },
      { type: "config", config: { job: "doctor" } },
    ]);
  });

  test("a transcript message seen twice (replay overlap) is delivered once", async () => {
    const r = await attached();
    const m1 = { seq: 1, role: "user", content: "a", ts: 1 };
    const m2 = { seq: 2, role: "assistant", content: "b", ts: 2 };
    r.ws().frame({ type: "transcript.message", message: m1 });
    r.ws().drop(1006);
    r.sched.advance(10000);
    await flush();
    r.ws().accept();
    r.ws().frame({ type: "session.resumed", session: SESSION, transcript_tail: [m1, m2] });
    r.ws().frame({ type: "transcript.message", message: m2 });
    assert.deepEqual(
      r.named("message").map((d) => d.message.seq),
      [1, 2],
    );
  });
});
