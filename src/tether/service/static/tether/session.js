// tether/session.js: TetherSession, the browser's face of one tether session.
//
// It owns the I/O and nothing else: it feeds what happens (socket and stream
// events, REST answers, timers, the page, the user's commands) into the
// sans-I/O TetherProtocol (protocol.js) and carries out the actions that come
// back, through the drivers (drivers.js). Every decision is the protocol's.
import { ActivityTracker } from "./activity.js";
import { DEFAULTS } from "./defaults.js";
import { SseDriver, WebSocketDriver, restCall } from "./drivers.js";
import { Holdings } from "./holdings.js";
import { State, TetherProtocol } from "./protocol.js";
import { monotonicNow } from "./timing.js";
import { apiBase, beaconRequest, endpoints, eventsUrl } from "./urls.js";

function defaultEnv() {
  const g = globalThis;
  let storage = null;
  try {
    storage = g.sessionStorage ?? null;
  } catch {
    storage = null; // sandboxed frames throw on access
  }
  return {
    WebSocket: g.WebSocket,
    EventSource: g.EventSource,
    fetch: typeof g.fetch === "function" ? g.fetch.bind(g) : undefined,
    navigator: g.navigator,
    window: g.window ?? (typeof g.addEventListener === "function" ? g : undefined),
    document: g.document,
    location: g.location,
    sessionStorage: storage,
    setTimeout: (fn, ms) => g.setTimeout(fn, ms),
    clearTimeout: (id) => g.clearTimeout(id),
    clearInterval: (id) => g.clearInterval(id),
    now: () => Date.now(),
    monotonic: monotonicNow,
    random: Math.random,
  };
}

/** The protocol's fields the session shows, read-only. */
const MIRRORED = [
  "id",
  "info",
  "config",
  "warning",
  "status",
  "transport",
  "heartbeatIntervalS",
  "maxMessageBytes",
  "lastSeq",
  "endedDetail",
  "replies",
  "observing",
];

/**
 * One tether session seen from the browser. Extends EventTarget: listen with
 * `addEventListener(name, e => e.detail)` or `on(name, detail => ...)`.
 * Events: started, status, config, warning, active, message, reply.delta,
 * app, frame (every server frame as sent), ended, error.
 */
export class TetherSession extends EventTarget {
  constructor(options = {}) {
    super();
    if (options.token === undefined || options.token === null || options.token === "") {
      throw new TypeError("tether: a token (string or function returning one) is required");
    }
    const env = { ...defaultEnv(), ...(options.env ?? {}) };
    this.env = env;
    this.options = options;
    if (options.url === undefined && !(env.location && env.location.origin)) {
      throw new TypeError("tether: pass `url`: there is no page location to derive it from");
    }
    this.base = apiBase(options.url, env.location);
    this.wsUrl = options.wsUrl ?? endpoints(this.base).ws;
    this.endOnHide = options.endOnHide ?? DEFAULTS.endOnHide;
    if (this.endOnHide !== "grace" && this.endOnHide !== "end") {
      throw new TypeError(`tether: endOnHide must be "grace" or "end" (got ${this.endOnHide})`);
    }
    this.persistKey = options.persistKey ?? null;
    /** The sans-I/O protocol this session drives (its `state` is a State). */
    this.protocol = new TetherProtocol({
      ...options,
      storedId: (options.sessionId ?? null) === null ? this._storage("get") : null,
      token: typeof options.token === "string" ? options.token : null,
      tokenRenewable: typeof options.token === "function",
      canWebSocket: typeof env.WebSocket === "function",
      canEventSource: typeof env.EventSource === "function",
      now: env.now,
      random: env.random ?? Math.random,
    });

    this._socket = null;
    this._stream = null;
    this._timers = new Map();
    this._listeners = [];
    this._beaconSent = false;
    this._holdings = new Holdings(env, (exc) =>
      this.dispatchEvent(
        new CustomEvent("error", { detail: { code: "release_failed", message: String(exc?.message ?? exc) } }),
      ),
    );
    const activity = options.activity ?? {};
    // An observer never counts as activity: no tracker at all.
    const activityOn = activity !== false && activity.enabled !== false && this.protocol.observing === null;
    this.activityTracker = activityOn
      ? new ActivityTracker(activity.target ?? env.window, () => this.activity({ fromUser: true }), {
          events: activity.events,
          throttleMs: activity.throttleMs,
          now: activity.now ?? env.monotonic,
        })
      : null;
    /** Resolves with the session view once attached; rejects if it never is. */
    this.ready = new Promise((resolve, reject) => {
      this._resolveReady = resolve;
      this._rejectReady = reject;
    });
    this.ready.catch(() => {});
    /** Resolves when the client is done: with the `ended` detail, or null after disconnect(). */
    this.closed = new Promise((resolve) => {
      this._resolveClosed = resolve;
    });
  }

  // -- public API -----------------------------------------------------------------------

  /** Start connecting (idempotent). Returns this. */
  open() {
    if (this.protocol.state !== State.IDLE) return this;
    this._installPageHooks();
    this.activityTracker?.start();
    this._feed((p) => p.open());
    return this;
  }

  /** Listen for `name`; `fn` gets the event's detail. Returns a function that unsubscribes. */
  on(name, fn) {
    const listener = (event) => fn(event.detail);
    this.addEventListener(name, listener);
    return () => this.removeEventListener(name, listener);
  }

  /** The warning's seconds left right now (live), or null without a warning. */
  secondsLeft() {
    return this.protocol.secondsLeft();
  }

  /**
   * Hand over something the page holds for this session (a MediaStream, a
   * track, an AudioContext, a recorder, a timer id, a cleanup function): every
   * end releases it (tracks stopped, context closed, timer cleared, function
   * called once), and so does the page going away. Returns a function that
   * releases it now. Once the client is closed, it is released at once.
   */
  hold(thing) {
    return this._holdings.hold(thing);
  }

  /**
   * Tell the server the user is engaged. User events call this throttled;
   * a direct call (a "Continue" button) always goes out.
   */
  activity(options = {}) {
    if (this.protocol.state === State.CLOSED) return;
    if (!options.fromUser) this.activityTracker?.throttle.mark();
    this._feed((p) => p.activity());
  }

  /** Append a message to the transcript; the `message` event is the acknowledgement. */
  sendMessage(content, options = {}) {
    this._feed((p) => p.sendMessage(content, options));
  }

  /** Replace the session's config; every attached client gets a `config` event. */
  setConfig(config) {
    this._feed((p) => p.setConfig(config));
  }

  /**
   * End the session (`client_ended`). Resolves with the `ended` detail. Before
   * anything reached the server, it just cancels.
   */
  end() {
    this._feed((p) => p.end());
    return this.closed;
  }

  /**
   * Stop this client without ending the session: the server's presence
   * timeout ends it unless someone resumes it in time.
   */
  disconnect() {
    this._feed((p) => p.disconnect());
  }

  /**
   * End the session with navigator.sendBeacon (the raw token as text/plain),
   * falling back to fetch with keepalive. For page exits; returns whether the
   * request was handed to the browser.
   */
  endWithBeacon() {
    if (this._beaconSent) return true;
    if (!this.protocol.endByBeacon()) return false;
    const { url, body, contentType } = beaconRequest(this.base, this.id, this.protocol.token);
    let queued = false;
    const nav = this.env.navigator;
    if (nav && typeof nav.sendBeacon === "function") {
      try {
        queued = nav.sendBeacon(url, new Blob([body], { type: contentType })) === true;
      } catch {
        queued = false;
      }
    }
    if (!queued && typeof this.env.fetch === "function") {
      try {
        const init = { method: "POST", body, headers: { "Content-Type": contentType } };
        this.env.fetch(url, { ...init, keepalive: true }).catch(() => {});
        queued = true;
      } catch {
        queued = false;
      }
    }
    this._beaconSent = queued;
    return queued;
  }

  // -- driving the protocol -------------------------------------------------------------

  /** Give the protocol one input, then carry out what it decided (even if it threw). */
  _feed(input) {
    try {
      return input(this.protocol);
    } finally {
      for (let actions = this.protocol.take(); actions.length; actions = this.protocol.take()) {
        for (const action of actions) this._perform(action);
      }
    }
  }

  // One flat dispatch over the action types; each arm is a line or two.
  _perform(action) {
    switch (action.type) {
      case "emit":
        this.dispatchEvent(new CustomEvent(action.name, { detail: action.detail }));
        break;
      case "token":
        this._resolveToken();
        break;
      case "openSocket":
        this._openSocket();
        break;
      case "send":
        this._socket?.send(action.text);
        break;
      case "closeSocket":
        this._socket?.close();
        this._socket = null;
        break;
      case "openStream":
        this._openStream(action.after);
        break;
      case "rest":
        this._rest(action.call, action.body);
        break;
      case "timer":
        this._later(action.name, action.ms);
        break;
      case "cancelTimer":
        this._clearTimer(action.name);
        break;
      case "store":
      case "forget":
        this._storage(action.type);
        break;
      case "ready":
        this._resolveReady(action.session);
        break;
      case "resetThrottle":
        this.activityTracker?.reset();
        break;
      case "release":
        this._release();
        break;
      case "finish":
        this._rejectReady(new Error("tether: the session closed before it started"));
        this._resolveClosed(action.detail);
        break;
      default:
        throw new Error(`tether: unknown protocol action ${action.type}`);
    }
  }

  async _resolveToken() {
    let token;
    try {
      const source = this.options.token;
      token = typeof source === "function" ? await source() : await source;
      if (typeof token !== "string" || token === "") throw new TypeError("empty token");
    } catch (exc) {
      this._feed((p) => p.tokenFailed(exc));
      return;
    }
    this._feed((p) => p.tokenReady(token));
  }

  _openSocket() {
    try {
      this._socket = new WebSocketDriver(this.env.WebSocket, this.wsUrl, {
        opened: () => this._feed((p) => p.socketOpened()),
        message: (text) => this._feed((p) => p.receive(text)),
        closed: (code) => {
          this._socket = null;
          this._feed((p) => p.socketClosed(code));
        },
      });
    } catch (exc) {
      this._feed((p) => p.socketFailed(exc));
    }
  }

  _openStream(after) {
    const url = eventsUrl(this.base, this.id, this.protocol.token, after);
    try {
      this._stream = new SseDriver(this.env.EventSource, url, {
        opened: () => this._feed((p) => p.streamOpened()),
        message: (text) => this._feed((p) => p.receive(text)),
        failed: (permanent) => this._feed((p) => p.streamFailed(permanent)),
      });
    } catch (exc) {
      this._feed((p) => p.transportFailed(exc));
    }
  }

  _rest(call, body) {
    restCall(this.env.fetch, this.base, this.id, this.protocol.token, call, body).then(
      (answer) => {
        if (answer !== null) this._feed((p) => p.restAnswered(call, answer));
      },
      (exc) => this._feed((p) => p.restFailed(call, exc)),
    );
  }

  _installPageHooks() {
    const { window: win, document: doc } = this.env;
    const listen = (target, name, fn) => {
      if (!target || typeof target.addEventListener !== "function") return;
      target.addEventListener(name, fn);
      this._listeners.push(() => target.removeEventListener(name, fn));
    };
    const wake = () => this._feed((p) => p.wake());
    listen(doc, "visibilitychange", () => {
      if (doc.visibilityState === "hidden") {
        if (this.endOnHide === "end") this.endWithBeacon();
      } else {
        wake(); // timers may have been throttled while hidden
      }
    });
    listen(win, "pagehide", () => {
      if (this.endOnHide === "end") this.endWithBeacon();
      this._holdings.releaseAll(); // the page is going: no microphone stays open behind it
    });
    listen(win, "pageshow", (event) => {
      if (event && event.persisted) wake(); // back from the bfcache
    });
    listen(win, "online", wake);
  }

  _release() {
    for (const id of this._timers.values()) this.env.clearTimeout(id);
    this._timers.clear();
    this.activityTracker?.stop();
    for (const remove of this._listeners.splice(0)) remove();
    this._socket?.close(1000);
    this._socket = null;
    this._stream?.close();
    this._stream = null;
    this._holdings.releaseAll({ final: true });
  }

  _later(name, ms) {
    this._clearTimer(name);
    const id = this.env.setTimeout(() => {
      if (this._timers.get(name) === id) this._timers.delete(name);
      this._feed((p) => p.timerFired(name));
    }, ms);
    this._timers.set(name, id);
  }

  _clearTimer(name) {
    const id = this._timers.get(name);
    if (id === undefined) return;
    this.env.clearTimeout(id);
    this._timers.delete(name);
  }

  _storage(op) {
    const storage = this.env.sessionStorage;
    if (this.persistKey === null || !storage) return null;
    try {
      if (op === "get") return storage.getItem(this.persistKey);
      if (op === "store" && this.id !== null) storage.setItem(this.persistKey, this.id);
      if (op === "forget") storage.removeItem(this.persistKey);
    } catch {
      // storage full or blocked: persistence is best effort
    }
    return null;
  }
}

for (const name of MIRRORED) {
  Object.defineProperty(TetherSession.prototype, name, {
    get() {
      return this.protocol[name];
    },
    enumerable: true,
    configurable: true,
  });
}

/** Create a TetherSession and start connecting. */
export function connect(options) {
  return new TetherSession(options).open();
}
