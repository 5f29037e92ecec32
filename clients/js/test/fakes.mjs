// Fake browser parts for driving TetherSession end to end: WebSocket, EventSource,
// fetch, sendBeacon, timers, window and document. Every timer is the fake
// scheduler's, so backoff delays and heartbeats are checked to the millisecond.
// (Not a test file itself: the session*.test.mjs files share it.)
import { TetherSession } from "../../../src/tether/service/static/tether.js";

export const SID = "9f0c1e2d3c4b5a69788796a5b4c3d2e1";
export const BASE = "https://app.example/";
export const SESSION = {
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

export class Scheduler {
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

export function fakeWebSocketClass() {
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

export function fakeEventSourceClass() {
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

export function jsonResponse(status, body) {
  return {
    ok: status >= 200 && status < 300,
    status,
    headers: { get: () => null },
    json: async () => body,
  };
}

export class FakeDocument extends EventTarget {
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

export class FakeWindow extends EventTarget {
  constructor() {
    super();
    this.listened = [];
  }
  addEventListener(name, fn, options) {
    this.listened.push(name);
    super.addEventListener(name, fn, options);
  }
}

export const flush = async () => {
  for (let i = 0; i < 10; i++) await new Promise((resolve) => setImmediate(resolve));
};

/** A session over fakes; `rig.events` records every event in order. */
export function rig(options = {}, envOverrides = {}) {
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
export async function attached(options = {}, envOverrides = {}) {
  const r = rig(options, envOverrides);
  r.session.open();
  await flush();
  r.ws().accept();
  r.ws().frame({ type: "welcome", v: 1, heartbeat_interval_s: 25, max_message_bytes: 65536 });
  r.ws().frame({ type: "session.started", session: SESSION });
  r.ws().frame({ type: "session.config", config: SESSION.config });
  return r;
}
