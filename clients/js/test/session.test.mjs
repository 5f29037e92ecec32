// TetherSession end to end against fake browser parts: WebSocket, EventSource,
// fetch, sendBeacon, timers, window and document. Every timer is the fake
// scheduler's, so backoff delays and heartbeats are checked to the millisecond.
import { test, describe } from "node:test";
import assert from "node:assert/strict";

import {
  TetherSession,
  backoffDelay,
  connect,
  endpoints,
} from "../../../src/tether/service/static/tether.js";

const SID = "9f0c1e2d3c4b5a69788796a5b4c3d2e1";
const BASE = "https://app.example/";
const SESSION = {
  id: SID,
  user: "alice",
  kind: "interview",
  state: "active",
  created_at: 1.0,
  last_activity: 1.0,
  last_seen: 1.0,
  connections: 1,
  message_count: 0,
  config: { job: "nurse" },
  warning: null,
  next_deadline: null,
  deadlines: null,
  policy: { idle_timeout: 600, warn_before: 120, max_duration: 1800, presence_timeout: 60 },
  ended_at: null,
  end_reason: null,
};

class Scheduler {
  constructor() {
    this.t = 0;
    this.nextId = 1;
    this.timers = new Map();
    this.now = () => this.t;
    this.setTimeout = (fn, ms) => {
      const id = this.nextId++;
      this.timers.set(id, { at: this.t + Math.max(0, ms), fn });
      return id;
    };
    this.clearTimeout = (id) => this.timers.delete(id);
  }

  /** Move the clock forward, firing due timers in order. */
  advance(ms) {
    const end = this.t + ms;
    for (;;) {
      let next = null;
      for (const [id, timer] of this.timers) {
        if (timer.at <= end && (next === null || timer.at < next[1].at)) next = [id, timer];
      }
      if (next === null) break;
      this.timers.delete(next[0]);
      this.t = next[1].at;
      next[1].fn();
    }
    this.t = end;
  }

  /** The delay of the one pending timer that is not a heartbeat/connect timer. */
  delays() {
    return [...this.timers.values()].map((timer) => timer.at - this.t).sort((a, b) => a - b);
  }
}

function fakeWebSocketClass() {
  const sockets = [];
  class FakeWebSocket {
    constructor(url) {
      this.url = url;
      this.readyState = 0;
      this.sent = [];
      this.clientClosed = null;
      sockets.push(this);
    }
    send(text) {
      if (this.readyState !== 1) throw new Error("InvalidStateError");
      this.sent.push(JSON.parse(text));
    }
    close(code) {
      this.clientClosed = code ?? 1005;
      this.readyState = 3;
    }
    // test side
    accept() {
      this.readyState = 1;
      this.onopen?.({});
    }
    frame(obj) {
      this.onmessage?.({ data: typeof obj === "string" ? obj : JSON.stringify(obj) });
    }
    drop(code) {
      this.readyState = 3;
      this.onclose?.({ code, reason: "" });
    }
    types() {
      return this.sent.map((f) => f.type);
    }
  }
  return { FakeWebSocket, sockets };
}

function fakeEventSourceClass() {
  const streams = [];
  class FakeEventSource {
    constructor(url) {
      this.url = url;
      this.readyState = 0;
      this.closed = false;
      streams.push(this);
    }
    close() {
      this.closed = true;
      this.readyState = 2;
    }
    accept() {
      this.readyState = 1;
      this.onopen?.({});
    }
    frame(obj) {
      this.onmessage?.({ data: JSON.stringify(obj) });
    }
    fail(permanently) {
      this.readyState = permanently ? 2 : 0;
      this.onerror?.({});
    }
  }
  return { FakeEventSource, streams };
}

function jsonResponse(status, body) {
  return {
    ok: status >= 200 && status < 300,
    status,
    headers: { get: () => null },
    json: async () => body,
  };
}

class FakeDocument extends EventTarget {
  constructor() {
    super();
    this.visibilityState = "visible";
  }
  hide() {
    this.visibilityState = "hidden";
    this.dispatchEvent(new Event("visibilitychange"));
  }
  show() {
    this.visibilityState = "visible";
    this.dispatchEvent(new Event("visibilitychange"));
  }
}

class FakeWindow extends EventTarget {
  constructor() {
    super();
    this.listened = [];
  }
  addEventListener(name, fn, options) {
    this.listened.push(name);
    super.addEventListener(name, fn, options);
  }
}

const flush = async () => {
  for (let i = 0; i < 10; i++) await new Promise((resolve) => setImmediate(resolve));
};

/** A session over fakes; `rig.events` records every event in order. */
function rig(options = {}, envOverrides = {}) {
  const sched = new Scheduler();
  const { FakeWebSocket, sockets } = fakeWebSocketClass();
  const { FakeEventSource, streams } = fakeEventSourceClass();
  const fetches = [];
  const beacons = [];
  const storage = new Map();
  const r = {
    sched,
    sockets,
    streams,
    fetches,
    beacons,
    storage,
    beaconAnswer: true,
    fetchHandler: () => jsonResponse(200, {}),
    window: new FakeWindow(),
    document: new FakeDocument(),
    events: [],
  };
  const env = {
    WebSocket: FakeWebSocket,
    EventSource: FakeEventSource,
    fetch: async (url, init) => {
      fetches.push({ url, init });
      return r.fetchHandler(url, init);
    },
    navigator: {
      sendBeacon: (url, data) => {
        beacons.push({ url, data });
        return r.beaconAnswer;
      },
    },
    window: r.window,
    document: r.document,
    location: { origin: "https://app.example", href: "https://app.example/chat" },
    sessionStorage: {
      getItem: (k) => (storage.has(k) ? storage.get(k) : null),
      setItem: (k, v) => storage.set(k, String(v)),
      removeItem: (k) => storage.delete(k),
    },
    setTimeout: sched.setTimeout,
    clearTimeout: sched.clearTimeout,
    now: sched.now,
    monotonic: sched.now,
    random: () => 0.5,
    ...envOverrides,
  };
  r.session = new TetherSession({ token: "tok", kind: "interview", config: { job: "nurse" }, ...options, env });
  for (const name of ["started", "status", "config", "warning", "active", "message", "ended", "error"]) {
    r.session.on(name, (detail) => r.events.push([name, detail]));
  }
  r.named = (name) => r.events.filter(([n]) => n === name).map(([, d]) => d);
  r.ws = () => sockets[sockets.length - 1];
  return r;
}

/** Open the session and walk it through welcome and session.started. */
async function attached(options = {}, envOverrides = {}) {
  const r = rig(options, envOverrides);
  r.session.open();
  await flush();
  r.ws().accept();
  r.ws().frame({ type: "welcome", v: 1, heartbeat_interval_s: 25, max_message_bytes: 65536 });
  r.ws().frame({ type: "session.started", session: SESSION });
  r.ws().frame({ type: "session.config", config: SESSION.config });
  return r;
}

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

describe("activity", () => {
  test("user events become at most one activity frame per throttle window", async () => {
    const r = await attached();
    for (let i = 0; i < 50; i++) {
      r.window.dispatchEvent(new Event(i % 2 ? "mousemove" : "keydown"));
      r.sched.advance(50);
    }
    assert.equal(r.ws().types().filter((t) => t === "activity").length, 1);
    r.sched.advance(2500); // 5000 ms after the first
    r.window.dispatchEvent(new Event("scroll"));
    assert.equal(r.ws().types().filter((t) => t === "activity").length, 2);
  });

  test("the events and throttle are configurable", async () => {
    const r = await attached({ activity: { events: ["keydown"], throttleMs: 1000 } });
    r.window.dispatchEvent(new Event("mousemove"));
    assert.equal(r.ws().types().includes("activity"), false);
    r.window.dispatchEvent(new Event("keydown"));
    r.sched.advance(1000);
    r.window.dispatchEvent(new Event("keydown"));
    assert.equal(r.ws().types().filter((t) => t === "activity").length, 2);
  });

  test("activity tracking can be turned off", async () => {
    const r = await attached({ activity: { enabled: false } });
    r.window.dispatchEvent(new Event("keydown"));
    assert.equal(r.ws().types().includes("activity"), false);
    assert.equal(r.session.activityTracker, null);
  });

  test("a warning lets the user's next move through at once, and its countdown is live", async () => {
    const r = await attached();
    r.window.dispatchEvent(new Event("keydown"));
    r.sched.advance(1000);
    r.ws().frame({ type: "session.warning", reason: "idle_timeout", seconds_left: 120, ends_at: 99 });
    assert.equal(r.named("warning")[0].secondsLeft, 120);
    r.sched.advance(1000); // still inside the 5 s window of the keydown
    assert.equal(r.session.secondsLeft(), 119);
    r.window.dispatchEvent(new Event("mousemove"));
    assert.equal(r.ws().types().filter((t) => t === "activity").length, 2);
    r.sched.advance(29000);
    assert.equal(r.session.secondsLeft(), 90);
    r.ws().frame({ type: "session.active" });
    assert.equal(r.session.warning, null);
    assert.equal(r.named("active").length, 1);
  });

  test("activity() sends at once even inside the throttle window (a Continue button)", async () => {
    const r = await attached();
    r.window.dispatchEvent(new Event("keydown"));
    r.session.activity();
    assert.equal(r.ws().types().filter((t) => t === "activity").length, 2);
  });
});

describe("hiding and leaving the page", () => {
  test("endOnHide 'end': a hidden tab sends one text/plain beacon with the token to the end URL", async () => {
    const r = await attached({ endOnHide: "end" });
    r.document.hide();
    r.window.dispatchEvent(new Event("pagehide"));
    assert.equal(r.beacons.length, 1);
    assert.equal(r.beacons[0].url, endpoints(BASE, SID).end);
    assert.equal(r.beacons[0].data.type, "text/plain");
    assert.equal(await r.beacons[0].data.text(), "tok");
  });

  test("endOnHide 'end': pagehide alone sends the beacon too", async () => {
    const r = await attached({ endOnHide: "end" });
    r.window.dispatchEvent(new Event("pagehide"));
    assert.equal(r.beacons.length, 1);
  });

  test("a refused beacon falls back to fetch with keepalive and the same body", async () => {
    const r = await attached({ endOnHide: "end" });
    r.beaconAnswer = false;
    r.window.dispatchEvent(new Event("pagehide"));
    assert.equal(r.fetches.length, 1);
    assert.equal(r.fetches[0].url, endpoints(BASE, SID).end);
    assert.equal(r.fetches[0].init.keepalive, true);
    assert.equal(r.fetches[0].init.body, "tok");
    assert.equal(r.fetches[0].init.headers["Content-Type"], "text/plain");
  });

  test("endOnHide 'grace' (the default) sends nothing on hide or pagehide", async () => {
    const r = await attached();
    r.document.hide();
    r.window.dispatchEvent(new Event("pagehide"));
    assert.equal(r.beacons.length + r.fetches.length, 0);
    assert.deepEqual(r.named("ended"), []);
  });

  test("unload and beforeunload are never listened to", async () => {
    const r = await attached({ endOnHide: "end" });
    assert.ok(r.window.listened.includes("pagehide"));
    assert.equal(r.window.listened.includes("unload"), false);
    assert.equal(r.window.listened.includes("beforeunload"), false);
  });

  test("an unknown endOnHide value is refused", () => {
    assert.throws(() => rig({ endOnHide: "close" }), TypeError);
  });
});

describe("ending", () => {
  test("end() sends end and resolves with the server's ended detail", async () => {
    const r = await attached();
    const done = r.session.end();
    assert.equal(r.ws().types().at(-1), "end");
    r.ws().frame({ type: "session.ended", reason: "client_ended", archive_id: "arch" });
    r.ws().drop(1000);
    assert.deepEqual(await done, { reason: "client_ended", archiveId: "arch" });
    assert.equal(r.session.status, "closed");
  });

  test("end() before the socket opened cancels: no start is ever sent", async () => {
    const r = rig();
    r.session.open();
    await flush();
    assert.equal(await r.session.end(), null);
    r.ws().accept?.();
    assert.deepEqual(r.ws().sent, []);
    r.sched.advance(600000);
    await flush();
    assert.equal(r.sockets.length, 1);
  });

  test("end() while waiting for session.started sends end once the session is named", async () => {
    const r = rig();
    r.session.open();
    await flush();
    r.ws().accept();
    r.session.end();
    r.ws().frame({ type: "session.started", session: SESSION });
    assert.deepEqual(r.ws().types(), ["hello", "start", "end"]);
  });

  test("end() while disconnected ends over REST", async () => {
    const r = await attached();
    r.ws().drop(1006);
    r.fetchHandler = () => jsonResponse(200, { ended: true, reason: "client_ended" });
    const detail = await r.session.end();
    assert.equal(r.fetches[0].url, endpoints(BASE, SID).end);
    assert.equal(r.fetches[0].init.headers.Authorization, "Bearer tok");
    assert.deepEqual(detail, { reason: "client_ended", archiveId: null });
    r.sched.advance(600000);
    await flush();
    assert.equal(r.sockets.length, 1);
  });

  test("disconnect() closes without ending: no ended event, no reconnect", async () => {
    const r = await attached();
    r.session.disconnect();
    r.sched.advance(600000);
    await flush();
    assert.deepEqual(r.named("ended"), []);
    assert.equal(r.sockets.length, 1);
    assert.equal(r.ws().clientClosed, 1000);
    assert.equal(await r.session.closed, null);
  });

  test("a message over the server's max_message_bytes is refused locally instead of closing with 1009", async () => {
    const r = await attached();
    assert.throws(() => r.session.sendMessage("x".repeat(70000)), RangeError);
    assert.equal(r.ws().types().includes("message"), false);
  });

  test("commands after the end throw", async () => {
    const r = await attached();
    r.ws().frame({ type: "session.ended", reason: "admin" });
    assert.throws(() => r.session.sendMessage("late"), /over/);
  });
});

describe("server frames", () => {
  test("unknown frame types are ignored; malformed frames become error events", async () => {
    const r = await attached();
    r.ws().frame({ type: "session.paused" });
    assert.deepEqual(r.named("error"), []);
    r.ws().frame("{oops");
    r.ws().frame({ type: "session.warning", reason: "idle_timeout" });
    assert.deepEqual(
      r.named("error").map((e) => e.code),
      ["bad_server_frame", "bad_server_frame"],
    );
    assert.equal(r.session.warning, null);
  });
});

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
