// TetherSession over fake browser parts: persistence across reloads, the SSE + REST fallback.
// Driven through fakes.mjs: every timer is the fake scheduler's.
import { test, describe } from "node:test";
import assert from "node:assert/strict";

import { endpoints } from "../../../src/tether/service/static/tether.js";
import { SID, BASE, SESSION, attached, rig, flush, jsonResponse } from "./fakes.mjs";

describe("persistence across reloads", () => {
  test("persistKey: the id is stored on start and resumed by the next page", async () => {
    const r = await attached({ persistKey: "chat" });
    assert.equal(r.storage.get("chat"), SID);
    const reloaded = rig({ persistKey: "chat" }, { sessionStorage: r.session.env.sessionStorage });
    reloaded.session.open();
    await flush();
    reloaded.ws().accept();
    assert.deepEqual(reloaded.ws().sent[1], { type: "resume", session_id: SID });
    assert.equal(reloaded.sockets.length, 1);
  });

  test("persistKey: a stored session the server no longer knows is replaced by a new one", async () => {
    const stored = new Map([["chat", SID]]);
    const r = rig(
      { persistKey: "chat" },
      {
        sessionStorage: {
          getItem: (k) => stored.get(k) ?? null,
          setItem: (k, v) => stored.set(k, v),
          removeItem: (k) => stored.delete(k),
        },
      },
    );
    r.session.open();
    await flush();
    r.ws().accept();
    r.ws().frame({ type: "error", code: "unknown_session", message: "no such session" });
    r.ws().drop(4404);
    await flush();
    assert.equal(stored.has("chat"), false);
    r.ws().accept();
    assert.deepEqual(r.ws().sent[1], { type: "start", kind: "interview", config: { job: "nurse" } });
    assert.deepEqual(r.named("ended"), []);
  });

  test("persistKey: the stored id is forgotten when the session ends", async () => {
    const r = await attached({ persistKey: "chat" });
    r.ws().frame({ type: "session.ended", reason: "client_ended" });
    assert.equal(r.storage.has("chat"), false);
  });
});

describe("Server-Sent Events fallback", () => {
  test("after 3 WebSocket failures it starts over REST and streams events with ?token", async () => {
    const r = rig();
    r.fetchHandler = () => jsonResponse(201, SESSION);
    r.session.open();
    for (let i = 0; i < 3; i++) {
      await flush();
      r.ws().drop(1006); // never opened: a proxy that refuses upgrades
      r.sched.advance(60000);
    }
    await flush();
    assert.equal(r.sockets.length, 3);
    assert.equal(r.fetches[0].url, endpoints(BASE).sessions);
    assert.equal(r.fetches[0].init.method, "POST");
    assert.deepEqual(JSON.parse(r.fetches[0].init.body), { kind: "interview", config: { job: "nurse" } });
    assert.equal(r.streams.length, 1);
    assert.equal(r.streams[0].url, `${endpoints(BASE, SID).events}?token=tok`);
    r.streams[0].accept();
    assert.equal(r.session.status, "open");
    assert.equal(r.session.transport, "sse");
  });

  test("with no WebSocket at all it uses SSE from the start; frames and REST commands work as over WS", async () => {
    const r = rig({}, { WebSocket: undefined });
    r.fetchHandler = () => jsonResponse(201, SESSION);
    r.session.open();
    await flush();
    const es = r.streams[0];
    es.accept();
    assert.deepEqual(r.named("started"), [{ session: SESSION, resumed: false }]);
    es.frame({ type: "session.warning", reason: "idle_timeout", seconds_left: 60, ends_at: 5 });
    assert.equal(r.named("warning").length, 1);
    r.fetchHandler = () => jsonResponse(200, {});
    r.session.activity();
    r.session.sendMessage("hi");
    r.session.setConfig({ a: 1 });
    await flush();
    assert.deepEqual(
      r.fetches.slice(1).map((f) => [f.init.method, f.url]),
      [
        ["POST", endpoints(BASE, SID).activity],
        ["POST", endpoints(BASE, SID).messages],
        ["PUT", endpoints(BASE, SID).config],
      ],
    );
    assert.deepEqual(JSON.parse(r.fetches[2].init.body), { role: "user", content: "hi" });
    es.frame({ type: "session.ended", reason: "idle_timeout" });
    assert.equal(es.closed, true);
    assert.deepEqual(r.named("ended"), [{ reason: "idle_timeout", archiveId: null }]);
  });

  test("a stream that gives up is reopened after the message position it reached", async () => {
    const r = rig({ sessionId: SID }, { WebSocket: undefined });
    r.fetchHandler = () => jsonResponse(200, SESSION);
    r.session.open();
    await flush();
    r.streams[0].accept();
    r.streams[0].frame({ type: "transcript.message", message: { seq: 4, role: "user", content: "x", ts: 1 } });
    r.streams[0].fail(true);
    await flush();
    r.sched.advance(10000);
    await flush();
    assert.equal(r.streams.length, 2);
    assert.equal(r.streams[1].url, `${endpoints(BASE, SID).events}?token=tok&last_event_id=4`);
  });

  test("a stream refused because the session ended reports the end instead of retrying", async () => {
    const r = rig({ sessionId: SID }, { WebSocket: undefined });
    r.fetchHandler = () => jsonResponse(200, SESSION);
    r.session.open();
    await flush();
    r.streams[0].accept();
    r.fetchHandler = () => jsonResponse(200, { ...SESSION, state: "ended", end_reason: "max_duration" });
    r.streams[0].fail(true);
    await flush();
    r.sched.advance(600000);
    await flush();
    assert.equal(r.streams.length, 1);
    assert.deepEqual(r.named("ended"), [{ reason: "max_duration", archiveId: null }]);
  });

  test("a WebSocket that once worked is never swapped for SSE when the network drops", async () => {
    const r = await attached();
    for (let i = 0; i < 5; i++) {
      r.ws().drop(1006);
      r.sched.advance(60000);
      await flush();
    }
    assert.equal(r.streams.length, 0);
    assert.equal(r.session.transport, "websocket");
  });
});
