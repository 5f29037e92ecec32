// tether.js: the browser client for tether's session protocol (v1).
//
// A dependency-free ES module for modern browsers; no build step. It speaks the
// WebSocket protocol of docs/protocol.md (hello, then start or resume at once),
// falls back to Server-Sent Events plus REST when WebSockets do not get
// through, tracks user activity, keeps presence, reconnects with full-jitter
// backoff, ends the session with navigator.sendBeacon when asked to, and ships
// an accessible warning dialog. docs/browser.md is the guide; tether.d.ts the
// types. The pure parts (backoffDelay, Throttle, parseServerFrame,
// shouldReconnect, formatCountdown, ...) are exported for tests and for apps
// that build their own client.

export const PROTOCOL_VERSION = 1;

/** Defaults, in the units their names say. tests/fixtures/client/defaults.json mirrors them. */
export const DEFAULTS = Object.freeze({
  /** Used until the server's `welcome` says otherwise (TETHER_HEARTBEAT_INTERVAL). */
  heartbeatIntervalS: 25,
  /** The server's default grace for a lost connection (TETHER_PRESENCE_TIMEOUT). */
  presenceTimeoutS: 60,
  /** At most one `activity` frame per this many milliseconds. */
  activityThrottleMs: 5000,
  /** DOM events that count as the user being engaged. */
  activityEvents: Object.freeze([
    "pointerdown",
    "mousedown",
    "mousemove",
    "keydown",
    "touchstart",
    "scroll",
    "wheel",
    "focus",
  ]),
  /** Full-jitter backoff: random() * min(cap, base * 2 ** attempt), in ms. */
  backoffBaseMs: 500,
  backoffCapMs: 10000,
  /** Consecutive WebSocket failures (never reaching the session) before SSE + REST. */
  wsFailuresBeforeSse: 3,
  /** A WebSocket that neither opens nor fails within this long is given up on. */
  connectTimeoutMs: 10000,
  /** Unanswered pings (one per heartbeat interval) before the socket is presumed dead. */
  missedPongs: 2,
  /** What hiding or leaving the page does: "grace" leaves it to the presence timeout. */
  endOnHide: "grace",
});

// -- pure helpers -----------------------------------------------------------------------

/**
 * Full-jitter exponential backoff: `floor(random() * min(cap, base * 2 ** attempt))` ms.
 * `attempt` counts from 0; `random` returns a number in [0, 1).
 */
export function backoffDelay(attempt, options = {}, random = Math.random) {
  const base = options.base ?? DEFAULTS.backoffBaseMs;
  const cap = options.cap ?? DEFAULTS.backoffCapMs;
  if (!(Number.isFinite(base) && base >= 0 && Number.isFinite(cap) && cap >= 0)) {
    throw new RangeError(`backoff base and cap must be finite and >= 0 (got ${base}, ${cap})`);
  }
  const n = Number.isFinite(attempt) && attempt > 0 ? Math.floor(attempt) : 0;
  const ceiling = base === 0 ? 0 : Math.min(cap, base * 2 ** Math.min(n, 1024));
  const r = Number(random());
  const jitter = Number.isFinite(r) ? Math.min(Math.max(r, 0), 1) : 0;
  return Math.floor(jitter * ceiling);
}

const monotonicNow = () =>
  typeof performance !== "undefined" && typeof performance.now === "function"
    ? performance.now()
    : Date.now();

/**
 * Lets something happen at most once per `intervalMs` (leading edge), measured
 * by `now()` in milliseconds. A clock that jumps backwards lets the next one through.
 */
export class Throttle {
  constructor(intervalMs, now = monotonicNow) {
    if (!(Number.isFinite(intervalMs) && intervalMs >= 0)) {
      throw new RangeError(`throttle interval must be finite and >= 0 (got ${intervalMs})`);
    }
    this.intervalMs = intervalMs;
    this.now = now;
    this.last = null;
  }

  /** Whether `take()` would succeed now. */
  ready() {
    if (this.last === null) return true;
    const elapsed = this.now() - this.last;
    return elapsed < 0 || elapsed >= this.intervalMs;
  }

  /** True (and the window restarts) if allowed now; false if still inside the window. */
  take() {
    if (!this.ready()) return false;
    this.last = this.now();
    return true;
  }

  /** Milliseconds until `take()` succeeds again (0 if it would now). */
  remainingMs() {
    if (this.ready()) return 0;
    return this.intervalMs - (this.now() - this.last);
  }

  /** Record one now, allowed or not: the window restarts. */
  mark() {
    this.last = this.now();
  }

  /** Forget the last one: the next `take()` succeeds. */
  reset() {
    this.last = null;
  }
}

/** Seconds as a countdown: "m:ss", or "h:mm:ss" from an hour; rounds up; 0:00 at or below 0. */
export function formatCountdown(seconds) {
  const s = Number.isFinite(seconds) && seconds > 0 ? Math.ceil(seconds - 1e-9) : 0;
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const ss = String(s % 60).padStart(2, "0");
  return h > 0 ? `${h}:${String(m).padStart(2, "0")}:${ss}` : `${m}:${ss}`;
}

/**
 * Every close code a tether client can see and what to do about it: "yes"
 * reconnect (and resume), "pause" reconnect after the server's retry_after_s,
 * "no" never. `reason` is the session's end reason where the code announces one.
 */
export const CLOSE_CODES = Object.freeze({
  1000: Object.freeze({ reconnect: "no", reason: "client_ended" }),
  1001: Object.freeze({ reconnect: "yes", reason: "server_shutdown" }),
  1002: Object.freeze({ reconnect: "no", reason: null }),
  1003: Object.freeze({ reconnect: "no", reason: null }),
  1005: Object.freeze({ reconnect: "yes", reason: null }),
  1006: Object.freeze({ reconnect: "yes", reason: null }),
  1007: Object.freeze({ reconnect: "no", reason: null }),
  1008: Object.freeze({ reconnect: "no", reason: null }),
  1009: Object.freeze({ reconnect: "no", reason: null }),
  1010: Object.freeze({ reconnect: "no", reason: null }),
  1011: Object.freeze({ reconnect: "yes", reason: "error" }),
  1012: Object.freeze({ reconnect: "yes", reason: null }),
  1013: Object.freeze({ reconnect: "pause", reason: null }),
  1014: Object.freeze({ reconnect: "yes", reason: null }),
  1015: Object.freeze({ reconnect: "no", reason: null }),
  4001: Object.freeze({ reconnect: "no", reason: "idle_timeout" }),
  4002: Object.freeze({ reconnect: "no", reason: "max_duration" }),
  4003: Object.freeze({ reconnect: "no", reason: "replaced" }),
  4004: Object.freeze({ reconnect: "no", reason: "admin" }),
  4029: Object.freeze({ reconnect: "pause", reason: null }),
  4404: Object.freeze({ reconnect: "no", reason: null }),
});

const UNKNOWN_CLOSE = Object.freeze({ reconnect: "no", reason: null });

/** What a close code means for the client: `{reconnect: "yes" | "pause" | "no", reason}`. */
export function closeInfo(code) {
  return Object.hasOwn(CLOSE_CODES, code) ? CLOSE_CODES[code] : UNKNOWN_CLOSE;
}

/** Whether to reconnect (and resume) after a close with `code`; unknown codes: no. */
export function shouldReconnect(code) {
  return closeInfo(code).reconnect !== "no";
}

/** A server frame the client cannot use; `code` is bad_json, unknown_type or invalid_frame. */
export class TetherFrameError extends Error {
  constructor(code, message, frameType = null) {
    super(message);
    this.name = "TetherFrameError";
    this.code = code;
    this.frameType = frameType;
  }
}

const isObject = (v) => typeof v === "object" && v !== null && !Array.isArray(v);
const isNumber = (v) => typeof v === "number" && Number.isFinite(v);

function field(frame, name, check, what) {
  const value = frame[name];
  if (!check(value)) {
    const got = value === undefined ? "missing" : `got ${JSON.stringify(value)}`;
    throw new TetherFrameError(
      "invalid_frame",
      `${frame.type}: ${name} must be ${what} (${got})`,
      frame.type,
    );
  }
  return value;
}

const nonEmptyString = [(v) => typeof v === "string" && v.length > 0, "a non-empty string"];
const anyString = [(v) => typeof v === "string", "a string"];
const finiteNumber = [isNumber, "a finite number"];
const positiveNumber = [(v) => isNumber(v) && v > 0, "a positive number"];
const nonNegative = [(v) => isNumber(v) && v >= 0, "a number >= 0"];
const jsonObject = [isObject, "an object"];

function checkSession(frame, session) {
  field(frame, "session", ...jsonObject);
  const where = { type: `${frame.type}.session`, ...session };
  field(where, "id", ...nonEmptyString);
  field(where, "state", ...nonEmptyString);
  return session;
}

function checkMessage(type, message, name = "message") {
  field({ type, [name]: message }, name, ...jsonObject);
  const where = { type: `${type}.${name}`, ...message };
  field(where, "seq", (v) => Number.isInteger(v) && v >= 1, "an integer >= 1");
  field(where, "role", ...nonEmptyString);
  field(where, "content", ...anyString);
  field(where, "ts", ...finiteNumber);
  return message;
}

const SERVER_FRAMES = {
  welcome: (f) => ({
    type: f.type,
    v: field(f, "v", Number.isInteger, "an integer"),
    heartbeatIntervalS: field(f, "heartbeat_interval_s", ...positiveNumber),
    maxMessageBytes:
      f.max_message_bytes === undefined
        ? null
        : field(f, "max_message_bytes", (v) => Number.isInteger(v) && v > 0, "a positive integer"),
  }),
  "session.started": (f) => ({ type: f.type, session: checkSession(f, f.session) }),
  "session.resumed": (f) => {
    const session = checkSession(f, f.session);
    const tail = field(f, "transcript_tail", Array.isArray, "an array");
    return {
      type: f.type,
      session,
      transcriptTail: tail.map((m, i) => checkMessage(f.type, m, `transcript_tail[${i}]`)),
    };
  },
  "session.config": (f) => ({ type: f.type, config: field(f, "config", ...jsonObject) }),
  "session.warning": (f) => ({
    type: f.type,
    reason: field(f, "reason", ...nonEmptyString),
    secondsLeft: field(f, "seconds_left", ...nonNegative),
    endsAt: field(f, "ends_at", ...finiteNumber),
  }),
  "session.active": (f) => ({ type: f.type }),
  "session.ended": (f) => ({
    type: f.type,
    reason: field(f, "reason", ...nonEmptyString),
    archiveId:
      f.archive_id === undefined || f.archive_id === null
        ? null
        : field(f, "archive_id", ...nonEmptyString),
  }),
  "transcript.message": (f) => ({ type: f.type, message: checkMessage(f.type, f.message) }),
  pong: (f) => ({ type: f.type }),
  error: (f) => ({
    type: f.type,
    code: field(f, "code", ...nonEmptyString),
    message: field(f, "message", ...anyString),
    reason: typeof f.reason === "string" ? f.reason : null,
    retryAfterS: isNumber(f.retry_after_s) && f.retry_after_s >= 0 ? f.retry_after_s : null,
  }),
};

/** The frame types a tether server sends. */
export const SERVER_FRAME_TYPES = Object.freeze(Object.keys(SERVER_FRAMES));

/**
 * Decode and check one server frame (WebSocket text or an SSE `data:` line).
 * Returns `{type, ...}` with camelCase fields (nested session and message
 * objects keep the wire's names); unknown fields are ignored. Throws
 * TetherFrameError for anything else: bad_json (not a JSON object),
 * unknown_type (missing or unknown `type`), invalid_frame (a field is wrong).
 */
export function parseServerFrame(text) {
  if (typeof text !== "string") {
    throw new TetherFrameError("bad_json", "server frames are JSON text");
  }
  let data;
  try {
    data = JSON.parse(text);
  } catch (exc) {
    throw new TetherFrameError("bad_json", `server frame is not JSON: ${exc.message}`);
  }
  if (!isObject(data)) {
    throw new TetherFrameError("bad_json", "server frame is not a JSON object");
  }
  const type = data.type;
  if (typeof type !== "string" || !Object.hasOwn(SERVER_FRAMES, type)) {
    const shown = type === undefined ? "missing" : JSON.stringify(type);
    throw new TetherFrameError("unknown_type", `unknown server frame type (${shown})`);
  }
  return SERVER_FRAMES[type](data);
}

/** Client frames exactly as the server's models (src/tether/service/frames.py) take them. */
export const clientFrames = Object.freeze({
  hello: (token) => ({ type: "hello", token, v: PROTOCOL_VERSION }),
  start: (kind, config) => {
    const frame = { type: "start" };
    if (kind !== undefined && kind !== null) frame.kind = kind;
    if (config !== undefined && config !== null) frame.config = config;
    return frame;
  },
  resume: (sessionId, after) =>
    Number.isInteger(after) && after > 0
      ? { type: "resume", session_id: sessionId, after }
      : { type: "resume", session_id: sessionId },
  activity: () => ({ type: "activity" }),
  ping: () => ({ type: "ping" }),
  message: (role, content, metadata) =>
    metadata === undefined || metadata === null
      ? { type: "message", role, content }
      : { type: "message", role, content, metadata },
  config: (config) => ({ type: "config", config }),
  end: () => ({ type: "end" }),
});

/** The server's API root as an absolute URL ending in "/". */
export function apiBase(url, location = globalThis.location) {
  const fallback = location && location.origin ? `${location.origin}/` : undefined;
  const resolved = new URL(url ?? fallback ?? "", location ? location.href : undefined);
  if (!resolved.pathname.endsWith("/")) resolved.pathname += "/";
  resolved.search = "";
  resolved.hash = "";
  return resolved.href;
}

/** Every URL the client uses, for the server at `base` and (optionally) one session. */
export function endpoints(base, sessionId) {
  const root = apiBase(base, null);
  const ws = new URL("ws", root);
  ws.protocol = ws.protocol === "https:" ? "wss:" : "ws:";
  const out = { ws: ws.href, sessions: new URL("api/v1/sessions", root).href };
  if (sessionId !== undefined && sessionId !== null) {
    const session = `${out.sessions}/${encodeURIComponent(sessionId)}`;
    Object.assign(out, {
      session,
      events: `${session}/events`,
      end: `${session}/end`,
      activity: `${session}/activity`,
      heartbeat: `${session}/heartbeat`,
      messages: `${session}/messages`,
      config: `${session}/config`,
    });
  }
  return out;
}

/** The event-stream URL: EventSource cannot send headers, so the token rides as ?token=. */
export function eventsUrl(base, sessionId, token, lastEventId = 0) {
  const url = new URL(endpoints(base, sessionId).events);
  url.searchParams.set("token", token);
  if (Number.isInteger(lastEventId) && lastEventId > 0) {
    url.searchParams.set("last_event_id", String(lastEventId));
  }
  return url.href;
}

/** What `navigator.sendBeacon` sends to end a session: the raw token as text/plain. */
export function beaconRequest(base, sessionId, token) {
  return { url: endpoints(base, sessionId).end, body: token, contentType: "text/plain" };
}

// -- activity ---------------------------------------------------------------------------

/**
 * Listens for user events on `target` (capturing, passive) and calls
 * `onActivity()` at most once per `throttleMs`.
 */
export class ActivityTracker {
  constructor(target, onActivity, options = {}) {
    this.target = target;
    this.onActivity = onActivity;
    this.events = [...(options.events ?? DEFAULTS.activityEvents)];
    this.throttle = new Throttle(options.throttleMs ?? DEFAULTS.activityThrottleMs, options.now);
    this.running = false;
    this.handler = (event) => {
      // `focus` counts when the window itself gets it (the user came back to
      // the tab), not when focus moves inside the page: scripts do that too,
      // the warning dialog included, and it must not clear its own warning.
      if (event && event.type === "focus" && event.target !== this.target) return;
      if (this.throttle.take()) this.onActivity();
    };
  }

  start() {
    if (this.running || !this.target) return;
    for (const name of this.events) {
      this.target.addEventListener(name, this.handler, { capture: true, passive: true });
    }
    this.running = true;
  }

  stop() {
    if (!this.running) return;
    for (const name of this.events) {
      this.target.removeEventListener(name, this.handler, { capture: true });
    }
    this.running = false;
  }

  /** Let the next user event through at once (a warning is showing). */
  reset() {
    this.throttle.reset();
  }
}

// -- the session ------------------------------------------------------------------------

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
    now: () => Date.now(),
    monotonic: monotonicNow,
    random: Math.random,
  };
}

const WS_OPEN = 1;
const ES_CLOSED = 2;

/**
 * One tether session seen from the browser. Extends EventTarget: listen with
 * `addEventListener(name, e => e.detail)` or `on(name, detail => ...)`.
 * Events: started, status, config, warning, active, message, ended, error.
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
    this.kind = options.kind;
    this.initialConfig = options.config;
    this.endOnHide = options.endOnHide ?? DEFAULTS.endOnHide;
    if (this.endOnHide !== "grace" && this.endOnHide !== "end") {
      throw new TypeError(`tether: endOnHide must be "grace" or "end" (got ${this.endOnHide})`);
    }
    this.backoff = {
      base: options.backoff?.base ?? DEFAULTS.backoffBaseMs,
      cap: options.backoff?.cap ?? DEFAULTS.backoffCapMs,
    };
    this.maxReconnectAttempts = options.maxReconnectAttempts ?? Infinity;
    this.transportChoice = options.transport ?? "auto";
    this.wsFailuresBeforeSse = options.wsFailuresBeforeSse ?? DEFAULTS.wsFailuresBeforeSse;
    this.connectTimeoutMs = options.connectTimeoutMs ?? DEFAULTS.connectTimeoutMs;
    this.missedPongsLimit = options.missedPongs ?? DEFAULTS.missedPongs;
    this.persistKey = options.persistKey ?? null;

    /** The session id once known. */
    this.id = options.sessionId ?? null;
    this.resumingStored = false;
    if (this.id === null && this.persistKey !== null) {
      this.id = this._storage("get");
      this.resumingStored = this.id !== null;
    }
    /** The latest session view (docs/protocol.md), or null. */
    this.info = null;
    this.config = null;
    /** The warning in force: {reason, secondsLeft, endsAt, deadline} or null. */
    this.warning = null;
    this.status = "idle";
    this.transport = null;
    this.heartbeatIntervalS = DEFAULTS.heartbeatIntervalS;
    this.maxMessageBytes = null;
    this.lastSeq = 0;
    this.endedDetail = null;

    this._ws = null;
    this._es = null;
    this._token = typeof options.token === "string" ? options.token : null;
    this._attempt = 0;
    this._wsFailures = 0;
    this._wsWorked = false;
    this._startInFlight = false;
    this._beaconSent = false;
    this._timers = new Set();
    this._reconnectTimer = null;
    this._pingTimer = null;
    this._unanswered = 0;
    this._attached = false;
    this._everAttached = false;
    this._stopped = false;
    this._endRequested = false;
    this._endSent = false;
    this._pending = [];
    this._pendingActivity = false;
    this._lastError = null;
    this._retriedAuth = false;
    this._listeners = [];

    const activity = options.activity ?? {};
    const activityOn = activity !== false && activity.enabled !== false;
    this.activityTracker = activityOn
      ? new ActivityTracker(activity.target ?? env.window, () => this.activity({ fromUser: true }), {
          events: activity.events,
          throttleMs: activity.throttleMs,
          now: activity.now ?? env.monotonic,
        })
      : null;

    let resolveReady;
    let rejectReady;
    /** Resolves with the session view once attached; rejects if it never is. */
    this.ready = new Promise((resolve, reject) => {
      resolveReady = resolve;
      rejectReady = reject;
    });
    this.ready.catch(() => {});
    this._resolveReady = resolveReady;
    this._rejectReady = rejectReady;
    let resolveClosed;
    /** Resolves when the client is done: with the `ended` detail, or null after disconnect(). */
    this.closed = new Promise((resolve) => {
      resolveClosed = resolve;
    });
    this._resolveClosed = resolveClosed;
  }

  // -- public API -----------------------------------------------------------------------

  /** Start connecting (idempotent). Returns this. */
  open() {
    if (this.status !== "idle") return this;
    this._installPageHooks();
    this.activityTracker?.start();
    this._connect();
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
    if (this.warning === null) return null;
    return Math.max(0, (this.warning.deadline - this.env.now()) / 1000);
  }

  /**
   * Tell the server the user is engaged. User events call this throttled;
   * a direct call (a "Continue" button) always goes out.
   */
  activity(options = {}) {
    if (this._stopped) return;
    if (!options.fromUser) this.activityTracker?.throttle.mark();
    if (this.transport === "sse" && this.id !== null) {
      this._rest("POST", endpoints(this.base, this.id).activity).catch(() => {});
      return;
    }
    if (!this._sendNow(clientFrames.activity())) this._pendingActivity = true;
  }

  /** Append a message to the transcript; the `message` event is the acknowledgement. */
  sendMessage(content, options = {}) {
    const frame = clientFrames.message(options.role ?? "user", content, options.metadata);
    this._command(frame, () =>
      this._rest("POST", endpoints(this.base, this.id).messages, {
        role: frame.role,
        content: frame.content,
        ...(frame.metadata ? { metadata: frame.metadata } : {}),
      }),
    );
  }

  /** Replace the session's config; every attached client gets a `config` event. */
  setConfig(config) {
    this._command(clientFrames.config(config), () =>
      this._rest("PUT", endpoints(this.base, this.id).config, { config }),
    );
  }

  /**
   * End the session (`client_ended`). Resolves with the `ended` detail. Before
   * anything reached the server, it just cancels.
   */
  end() {
    if (this.endedDetail !== null || this._stopped) return this.closed;
    this._endRequested = true;
    if (this.id === null) {
      const ws = this._ws;
      const startSent = (ws !== null && ws.readyState === WS_OPEN) || this._startInFlight;
      if (!startSent) this._shutdown(null);
      // else: the end goes out as soon as session.started names the session.
      return this.closed;
    }
    this._sendEnd();
    return this.closed;
  }

  /**
   * Stop this client without ending the session: the server's presence
   * timeout ends it unless someone resumes it in time.
   */
  disconnect() {
    this._shutdown(null);
  }

  /**
   * End the session with navigator.sendBeacon (the raw token as text/plain),
   * falling back to fetch with keepalive. For page exits; returns whether the
   * request was handed to the browser.
   */
  endWithBeacon() {
    if (this._beaconSent) return true;
    if (this.id === null || this.endedDetail !== null || this._token === null) return false;
    const { url, body, contentType } = beaconRequest(this.base, this.id, this._token);
    this._endRequested = true;
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
        this.env
          .fetch(url, {
            method: "POST",
            body,
            headers: { "Content-Type": contentType },
            keepalive: true,
          })
          .catch(() => {});
        queued = true;
      } catch {
        queued = false;
      }
    }
    this._beaconSent = queued;
    return queued;
  }

  // -- connecting -----------------------------------------------------------------------

  _useSse() {
    if (this.transportChoice === "sse") return true;
    if (this.transportChoice === "websocket") return false;
    return typeof this.env.WebSocket !== "function" || this.transport === "sse";
  }

  async _connect() {
    this._setStatus(this._everAttached ? "reconnecting" : "connecting");
    let token;
    try {
      token = await this._resolveToken();
    } catch (exc) {
      this._emit("error", { code: "token_unavailable", message: String(exc?.message ?? exc) });
      this._scheduleReconnect();
      return;
    }
    if (this._stopped) return;
    try {
      if (this._useSse()) {
        await this._connectSse(token);
      } else {
        this._connectWs(token);
      }
    } catch (exc) {
      this._emit("error", { code: "transport_failed", message: String(exc?.message ?? exc) });
      this._scheduleReconnect();
    }
  }

  async _resolveToken() {
    const source = this.options.token;
    const token = typeof source === "function" ? await source() : source;
    if (typeof token !== "string" || token === "") throw new TypeError("empty token");
    this._token = token;
    return token;
  }

  _connectWs(token) {
    this.transport = "websocket";
    let ws;
    try {
      ws = new this.env.WebSocket(this.wsUrl);
    } catch (exc) {
      this._emit("error", { code: "websocket_failed", message: String(exc?.message ?? exc) });
      this._wsFailed();
      return;
    }
    this._ws = ws;
    let opened = false;
    const timeout = this._later(this.connectTimeoutMs, () => {
      if (this._ws === ws && !this._attached) this._abandonWs(ws, 1006, opened);
    });
    ws.onopen = () => {
      if (this._ws !== ws) return;
      opened = true;
      // Seed 001: everything the server needs goes out at once, no round trip.
      this._rawSend(ws, clientFrames.hello(token));
      if (this.id !== null) {
        this._rawSend(ws, clientFrames.resume(this.id, this.lastSeq));
      } else {
        this._rawSend(ws, clientFrames.start(this.kind, this.initialConfig));
      }
    };
    ws.onmessage = (event) => {
      if (this._ws !== ws) return;
      this._unanswered = 0;
      this._receive(event.data);
    };
    ws.onerror = () => {}; // a close event always follows
    ws.onclose = (event) => {
      this._clearTimer(timeout);
      if (this._ws !== ws) return;
      this._ws = null;
      this._transportClosed(event.code, { opened });
    };
  }

  _abandonWs(ws, code, opened = true) {
    // A socket we give up on: detach it first so its own close event is ignored.
    this._ws = null;
    try {
      ws.close();
    } catch {
      // already closing
    }
    this._transportClosed(code, { opened });
  }

  _wsFailed() {
    this._wsFailures += 1;
    if (
      this.transportChoice === "auto" &&
      !this._wsWorked &&
      this._wsFailures >= this.wsFailuresBeforeSse &&
      typeof this.env.EventSource === "function"
    ) {
      this.transport = "sse";
      this._emit("error", {
        code: "websocket_unavailable",
        message: `WebSocket failed ${this._wsFailures} times; using Server-Sent Events and REST`,
      });
    }
    this._scheduleReconnect();
  }

  _transportClosed(code, { opened }) {
    const wasAttached = this._attached;
    this._attached = false;
    this._stopPings();
    if (this._stopped || this.endedDetail !== null) {
      this._shutdown(this.endedDetail);
      return;
    }
    const info = closeInfo(code);
    const lastError = this._lastError;
    this._lastError = null;
    if (this._endRequested && this.id === null) {
      this._shutdown(null); // never start a new session for someone who asked to end
      return;
    }
    if (this._endRequested && code !== 4404 && info.reason === null) {
      this._endSent = false; // the end frame may be lost with the socket: say it over REST
      this._sendEnd();
      return;
    }
    if (code === 4404) {
      if (this.resumingStored && !this._everAttached) {
        // A stored id that has ended meanwhile: start afresh (a reload after the end).
        this.resumingStored = false;
        this.id = null;
        this._storage("remove");
        this._attempt = 0;
        this._connect();
        return;
      }
      this._ended({ reason: lastError?.reason ?? "unknown_session", archiveId: null, code });
      return;
    }
    if (info.reason !== null && info.reconnect === "no") {
      // 1000 and 4001-4004: the session ended, even if session.ended got lost.
      if (this.id !== null || wasAttached) {
        this._ended({ reason: info.reason, archiveId: null, code });
      } else {
        this._shutdown(null);
      }
      return;
    }
    if (code === 1008 && typeof this.options.token === "function" && !this._retriedAuth) {
      this._retriedAuth = true; // maybe an expired token: one more try with a fresh one
      this._scheduleReconnect();
      return;
    }
    if (info.reconnect === "no") {
      this._emit("error", {
        code: lastError?.code ?? "closed",
        message: lastError?.message ?? `the server closed the connection (${code})`,
        closeCode: code,
      });
      this._shutdown(null);
      return;
    }
    if (!wasAttached && this.transport === "websocket" && (!opened || code === 1006)) {
      this._wsFailed();
      return;
    }
    const pause = info.reconnect === "pause" ? (lastError?.retryAfterS ?? 0) * 1000 : 0;
    this._scheduleReconnect(info.reconnect === "pause" ? Math.max(pause, this.backoff.cap) : 0);
  }

  _scheduleReconnect(minimumMs = 0) {
    if (this._stopped) return;
    if (this._attempt >= this.maxReconnectAttempts) {
      this._emit("error", { code: "gave_up", message: "too many reconnect attempts" });
      this._shutdown(null);
      return;
    }
    const delay = Math.max(
      minimumMs,
      backoffDelay(this._attempt, this.backoff, this.env.random ?? Math.random),
    );
    this._attempt += 1;
    this._setStatus(this._everAttached ? "reconnecting" : "connecting", {
      attempt: this._attempt,
      delayMs: delay,
    });
    this._clearTimer(this._reconnectTimer);
    this._reconnectTimer = this._later(delay, () => {
      this._reconnectTimer = null;
      this._connect();
    });
  }

  /** Reconnect now instead of waiting out the backoff (back online, tab visible again). */
  _reconnectSoon() {
    if (this._reconnectTimer === null || this._stopped) return;
    this._clearTimer(this._reconnectTimer);
    this._reconnectTimer = null;
    this._connect();
  }

  // -- Server-Sent Events + REST --------------------------------------------------------

  async _connectSse(token) {
    this.transport = "sse";
    try {
      if (this.id === null) {
        this._startInFlight = true;
        let response;
        try {
          response = await this._rest("POST", endpoints(this.base).sessions, {
            ...(this.kind !== undefined ? { kind: this.kind } : {}),
            ...(this.initialConfig !== undefined ? { config: this.initialConfig } : {}),
          });
        } finally {
          this._startInFlight = false;
        }
        if (this._stopped) return;
        if (!(await this._restOutcome(response))) return;
        const session = await response.json();
        this.id = session.id;
        if (this._endRequested) {
          this._sendEnd();
          return;
        }
        this._onAttachedSession(session, false);
      } else if (!this._everAttached) {
        const response = await this._rest("GET", endpoints(this.base, this.id).session);
        if (this._stopped) return;
        if (!(await this._restOutcome(response))) return;
        const session = await response.json();
        if (session.end_reason) {
          this._ended({ reason: session.end_reason, archiveId: null });
          return;
        }
        this._onAttachedSession(session, true);
      }
    } catch (exc) {
      if (this._stopped) return;
      this._emit("error", { code: "network", message: String(exc?.message ?? exc) });
      this._scheduleReconnect();
      return;
    }
    if (this._stopped || this.endedDetail !== null) return;
    const es = new this.env.EventSource(eventsUrl(this.base, this.id, token, this.lastSeq));
    this._es = es;
    es.onopen = () => {
      if (this._es !== es) return;
      this._attempt = 0;
      this._attached = true;
      this._setStatus("open");
      this._flushPending();
    };
    es.onmessage = (event) => {
      if (this._es === es) this._receive(event.data);
    };
    es.onerror = () => {
      if (this._es !== es) return;
      this._attached = false;
      if (es.readyState === ES_CLOSED) {
        // EventSource gave up (401, 404, 410 or a network failure): find out which.
        this._es = null;
        es.close();
        this._diagnoseSse();
      } else {
        this._setStatus("reconnecting"); // the browser retries by itself
      }
    };
  }

  async _diagnoseSse() {
    if (this._stopped || this.endedDetail !== null) return;
    try {
      const response = await this._rest("GET", endpoints(this.base, this.id).session);
      if (!(await this._restOutcome(response))) return;
      const session = await response.json();
      if (session.end_reason) {
        this._ended({ reason: session.end_reason, archiveId: null });
        return;
      }
    } catch {
      // network trouble: retry below
    }
    this._scheduleReconnect();
  }

  /** true if `response` is a success; otherwise acts on it (ended, refused, retry) and false. */
  async _restOutcome(response) {
    if (response.ok) return true;
    let body = null;
    try {
      body = await response.json();
    } catch {
      body = null;
    }
    const error = body?.error ?? {};
    if (response.status === 410) {
      this._ended({ reason: error.reason ?? "unknown_session", archiveId: null });
    } else if (response.status === 404) {
      if (this.resumingStored && !this._everAttached) {
        this.resumingStored = false;
        this.id = null;
        this._storage("remove");
        this._connect();
      } else {
        this._ended({ reason: "unknown_session", archiveId: null, code: 404 });
      }
    } else if (response.status === 401 || response.status === 403 || response.status === 422) {
      if (response.status === 401 && typeof this.options.token === "function" && !this._retriedAuth) {
        this._retriedAuth = true;
        this._scheduleReconnect();
        return false;
      }
      this._emit("error", {
        code: error.code ?? "refused",
        message: error.message ?? `HTTP ${response.status}`,
        status: response.status,
      });
      this._shutdown(null);
    } else {
      const retryAfter = Number(response.headers?.get?.("Retry-After"));
      this._scheduleReconnect(Number.isFinite(retryAfter) ? retryAfter * 1000 : 0);
    }
    return false;
  }

  _rest(method, url, body) {
    if (typeof this.env.fetch !== "function") {
      return Promise.reject(new Error("fetch is not available"));
    }
    const headers = { Authorization: `Bearer ${this._token}` };
    const init = { method, headers };
    if (body !== undefined) {
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    return this.env.fetch(url, init);
  }

  // -- frames in ------------------------------------------------------------------------

  _receive(text) {
    let frame;
    try {
      frame = parseServerFrame(text);
    } catch (exc) {
      if (exc instanceof TetherFrameError && exc.code === "unknown_type") return; // newer server
      this._emit("error", { code: "bad_server_frame", message: String(exc?.message ?? exc) });
      return;
    }
    switch (frame.type) {
      case "welcome":
        this.heartbeatIntervalS = frame.heartbeatIntervalS;
        this.maxMessageBytes = frame.maxMessageBytes;
        this._startPings();
        break;
      case "session.started":
      case "session.resumed":
        this._onAttachedSession(frame.session, frame.type === "session.resumed");
        this._attached = true;
        this._wsWorked = this._wsWorked || this.transport === "websocket";
        this._retriedAuth = false;
        this._attempt = 0;
        this._wsFailures = 0;
        this._setStatus("open");
        for (const message of frame.transcriptTail ?? []) this._onMessage(message);
        if (this._endRequested) {
          this._sendEnd();
        } else {
          this._flushPending();
        }
        break;
      case "session.config":
        this.config = frame.config;
        this._emit("config", { config: frame.config });
        break;
      case "session.warning":
        this.warning = {
          reason: frame.reason,
          secondsLeft: frame.secondsLeft,
          endsAt: frame.endsAt,
          deadline: this.env.now() + frame.secondsLeft * 1000,
        };
        this.activityTracker?.reset(); // the user's next move goes out at once
        this._emit("warning", { ...this.warning });
        break;
      case "session.active":
        this.warning = null;
        this._emit("active", {});
        break;
      case "session.ended":
        this._ended({ reason: frame.reason, archiveId: frame.archiveId });
        break;
      case "transcript.message":
        this._onMessage(frame.message);
        break;
      case "pong":
        break;
      case "error":
        this._lastError = frame;
        this._emit("error", {
          code: frame.code,
          message: frame.message,
          reason: frame.reason,
          retryAfterS: frame.retryAfterS,
        });
        break;
      default:
        break;
    }
  }

  _onAttachedSession(session, resumed) {
    const first = !this._everAttached;
    this.id = session.id;
    this.info = session;
    if (session.config) this.config = session.config;
    this._everAttached = true;
    this._storage("set");
    if (first) {
      this._resolveReady(session);
      this._emit("started", { session, resumed });
    }
  }

  _onMessage(message) {
    if (message.seq <= this.lastSeq) return; // already delivered (a replay overlap)
    this.lastSeq = message.seq;
    this._emit("message", { message });
  }

  // -- frames out -----------------------------------------------------------------------

  _rawSend(ws, frame) {
    const text = JSON.stringify(frame);
    if (this.maxMessageBytes !== null && new TextEncoder().encode(text).length > this.maxMessageBytes) {
      // The server would close the connection with 1009 and the session with it.
      throw new RangeError(`tether: frame larger than the server's ${this.maxMessageBytes} bytes`);
    }
    ws.send(text);
  }

  _sendNow(frame) {
    const ws = this._ws;
    if (ws === null || ws.readyState !== WS_OPEN || !this._attached) return false;
    this._rawSend(ws, frame);
    return true;
  }

  _command(frame, viaRest) {
    if (this._stopped || this.endedDetail !== null) {
      throw new Error("tether: the session is over");
    }
    if (this.transport === "sse" && this.id !== null) {
      viaRest().catch((exc) => this._emit("error", { code: "network", message: String(exc) }));
      return;
    }
    if (!this._sendNow(frame)) this._pending.push(frame);
  }

  _flushPending() {
    const pending = this._pending;
    this._pending = [];
    if (this.transport === "sse") {
      if (this._pendingActivity) this.activity();
      for (const frame of pending) {
        if (frame.type === "message") this.sendMessage(frame.content, frame);
        else if (frame.type === "config") this.setConfig(frame.config);
      }
    } else {
      try {
        if (this._pendingActivity) this._sendNow(clientFrames.activity());
        for (const frame of pending) this._sendNow(frame);
      } catch (exc) {
        this._emit("error", { code: "too_large", message: String(exc?.message ?? exc) });
      }
    }
    this._pendingActivity = false;
  }

  _sendEnd() {
    if (this._endSent) return;
    this._endSent = true;
    if (this._sendNow(clientFrames.end())) return; // session.ended and close 1000 follow
    this._clearTimer(this._reconnectTimer);
    this._reconnectTimer = null;
    const request = this._rest("POST", endpoints(this.base, this.id).end);
    request
      .then(async (response) => {
        const body = response.ok ? await response.json() : null;
        this._ended({ reason: body?.reason ?? "client_ended", archiveId: null });
      })
      .catch(() => {
        // Could not reach the server: the presence timeout ends the session.
        this._ended({ reason: "client_ended", archiveId: null });
      });
  }

  // -- heartbeats -----------------------------------------------------------------------

  _startPings() {
    this._stopPings();
    this._unanswered = 0;
    const beat = () => {
      const ws = this._ws;
      if (ws === null || ws.readyState !== WS_OPEN) return;
      if (this._unanswered >= this.missedPongsLimit) {
        // Nothing heard for several intervals: a half-open socket. Reconnect and
        // resume; presence never depended on this timer being on time.
        this._abandonWs(ws, 1006, true);
        return;
      }
      this._unanswered += 1;
      ws.send(JSON.stringify(clientFrames.ping()));
      this._pingTimer = this._later(this.heartbeatIntervalS * 1000, beat);
    };
    this._pingTimer = this._later(this.heartbeatIntervalS * 1000, beat);
  }

  _stopPings() {
    this._clearTimer(this._pingTimer);
    this._pingTimer = null;
  }

  // -- the page -------------------------------------------------------------------------

  _installPageHooks() {
    const { window: win, document: doc } = this.env;
    const listen = (target, name, fn) => {
      if (!target || typeof target.addEventListener !== "function") return;
      target.addEventListener(name, fn);
      this._listeners.push(() => target.removeEventListener(name, fn));
    };
    listen(doc, "visibilitychange", () => {
      if (doc.visibilityState === "hidden") {
        if (this.endOnHide === "end") this.endWithBeacon();
      } else {
        this._reconnectSoon(); // timers may have been throttled while hidden
      }
    });
    listen(win, "pagehide", () => {
      if (this.endOnHide === "end") this.endWithBeacon();
    });
    listen(win, "pageshow", (event) => {
      if (event && event.persisted) this._reconnectSoon(); // back from the bfcache
    });
    listen(win, "online", () => this._reconnectSoon());
  }

  // -- endings --------------------------------------------------------------------------

  _ended(detail) {
    if (this.endedDetail !== null) return;
    const clean = { reason: detail.reason, archiveId: detail.archiveId ?? null };
    if (detail.code !== undefined) clean.code = detail.code;
    this.endedDetail = clean;
    this.warning = null;
    this._storage("remove");
    this._emit("ended", { ...clean });
    this._shutdown(clean);
  }

  _shutdown(endedDetail) {
    const wasStopped = this._stopped;
    this._stopped = true;
    this._attached = false;
    this._stopPings();
    for (const id of this._timers) this.env.clearTimeout(id);
    this._timers.clear();
    this._reconnectTimer = null;
    this.activityTracker?.stop();
    for (const remove of this._listeners.splice(0)) remove();
    const ws = this._ws;
    this._ws = null;
    if (ws !== null) {
      try {
        ws.close(1000);
      } catch {
        // already closed
      }
    }
    const es = this._es;
    this._es = null;
    if (es !== null) es.close();
    if (wasStopped && this.status === "closed") return;
    this._setStatus("closed");
    this._rejectReady(new Error("tether: the session closed before it started"));
    this._resolveClosed(endedDetail);
  }

  // -- plumbing -------------------------------------------------------------------------

  _setStatus(status, extra = {}) {
    if (this.status === status && !("attempt" in extra)) return;
    const previous = this.status;
    this.status = status;
    this._emit("status", { status, previous, transport: this.transport, ...extra });
  }

  _emit(name, detail) {
    this.dispatchEvent(new CustomEvent(name, { detail }));
  }

  _later(ms, fn) {
    const id = this.env.setTimeout(() => {
      this._timers.delete(id);
      fn();
    }, ms);
    this._timers.add(id);
    return id;
  }

  _clearTimer(id) {
    if (id === null || id === undefined) return;
    this.env.clearTimeout(id);
    this._timers.delete(id);
  }

  _storage(op) {
    const storage = this.env.sessionStorage;
    if (this.persistKey === null || !storage) return null;
    try {
      if (op === "get") return storage.getItem(this.persistKey);
      if (op === "set" && this.id !== null) storage.setItem(this.persistKey, this.id);
      if (op === "remove") storage.removeItem(this.persistKey);
    } catch {
      // storage full or blocked: persistence is best effort
    }
    return null;
  }
}

/** Create a TetherSession and start connecting. */
export function connect(options) {
  return new TetherSession(options).open();
}

// -- the warning dialog -----------------------------------------------------------------

/** The dialog's default look; tether-dialog.css holds the same rules for strict CSPs. */
export const DIALOG_CSS = `
.tether-dialog-backdrop{position:fixed;inset:0;display:flex;align-items:center;justify-content:center;background:rgba(0,0,0,.45);z-index:2147483000}
.tether-dialog-backdrop[hidden]{display:none}
.tether-dialog{max-width:28rem;margin:1rem;padding:1.25rem 1.5rem;border-radius:.5rem;background:#fff;color:#111;font:16px/1.45 system-ui,sans-serif;box-shadow:0 10px 30px rgba(0,0,0,.3)}
.tether-dialog h2{margin:0 0 .5rem;font-size:1.2rem}
.tether-dialog-countdown{font-variant-numeric:tabular-nums;font-weight:700}
.tether-dialog-actions{display:flex;gap:.5rem;justify-content:flex-end;margin-top:1rem}
.tether-dialog button{font:inherit;padding:.45rem .9rem;border-radius:.35rem;border:1px solid #888;background:#f4f4f4;cursor:pointer}
.tether-dialog button.tether-dialog-continue{background:#1a5fb4;border-color:#1a5fb4;color:#fff}
.tether-dialog button:focus-visible{outline:3px solid #f5c211;outline-offset:2px}
`.trim();

const DIALOG_TEXTS = Object.freeze({
  title: "Are you still there?",
  idle: "This session ends in {time} because nothing has happened for a while.",
  max_duration: "This session reaches its time limit in {time}.",
  continue: "Continue",
  dismiss: "OK",
  end: "End now",
});

let dialogCount = 0;

/**
 * The ready-made warning: shown on `warning`, hidden on `active` and `ended`.
 * A live countdown (from the warning's deadline, once a second); "Continue"
 * sends activity, "End now" ends the session. role=alertdialog, focus on
 * Continue, Escape continues, Tab stays inside, focus returns on close.
 */
export class TetherWarningDialog {
  constructor(session, options = {}) {
    this.session = session;
    this.document = options.document ?? globalThis.document;
    this.texts = { ...DIALOG_TEXTS, ...(options.texts ?? {}) };
    this.now = options.now ?? (() => session.env.now());
    this.setInterval = options.setInterval ?? ((fn, ms) => globalThis.setInterval(fn, ms));
    this.clearInterval = options.clearInterval ?? ((id) => globalThis.clearInterval(id));
    this.warning = null;
    this.ticker = null;
    this.returnFocus = null;
    const doc = this.document;
    if (options.injectStyles !== false) injectStyles(doc);
    const n = ++dialogCount;
    const el = (tag, props = {}, ...children) => {
      const node = doc.createElement(tag);
      for (const [key, value] of Object.entries(props)) {
        if (key === "className") node.className = value;
        else if (key === "text") node.textContent = value;
        else node.setAttribute(key, value);
      }
      for (const child of children) node.appendChild(child);
      return node;
    };
    this.titleEl = el("h2", { id: `tether-dialog-${n}-title`, text: this.texts.title });
    this.textEl = el("p", { id: `tether-dialog-${n}-text` });
    this.continueButton = el("button", { type: "button", className: "tether-dialog-continue" });
    this.endButton = el("button", { type: "button", className: "tether-dialog-end" });
    this.endButton.textContent = this.texts.end;
    this.dialog = el(
      "div",
      {
        className: "tether-dialog",
        role: "alertdialog",
        "aria-modal": "true",
        "aria-labelledby": this.titleEl.getAttribute("id"),
        "aria-describedby": this.textEl.getAttribute("id"),
      },
      this.titleEl,
      this.textEl,
      el("div", { className: "tether-dialog-actions" }, this.endButton, this.continueButton),
    );
    this.root = el("div", { className: "tether-dialog-backdrop" }, this.dialog);
    this.root.hidden = true;
    (options.parent ?? doc.body).appendChild(this.root);

    this.continueButton.addEventListener("click", () => this.onContinue());
    this.endButton.addEventListener("click", () => this.onEnd());
    this.dialog.addEventListener("keydown", (event) => this.onKey(event));
    this.unsubscribe = [
      session.on("warning", (warning) => this.show(warning)),
      session.on("active", () => this.hide()),
      session.on("ended", () => this.hide()),
    ];
    if (session.warning) this.show(session.warning);
  }

  get visible() {
    return !this.root.hidden;
  }

  /** Show (or update) for `warning` ({reason, deadline, ...}). */
  show(warning) {
    this.warning = warning;
    const idle = warning.reason !== "max_duration";
    this.continueButton.textContent = idle ? this.texts.continue : this.texts.dismiss;
    this.render();
    if (this.ticker === null) this.ticker = this.setInterval(() => this.render(), 1000);
    if (!this.visible) {
      this.returnFocus = this.document.activeElement ?? null;
      this.root.hidden = false;
    }
    this.continueButton.focus();
  }

  /** The text for the current second. */
  render() {
    if (this.warning === null) return;
    const left = Math.max(0, (this.warning.deadline - this.now()) / 1000);
    const template = this.warning.reason === "max_duration" ? this.texts.max_duration : this.texts.idle;
    const [before, after] = template.split("{time}");
    const time = this.document.createElement("span");
    time.className = "tether-dialog-countdown";
    time.textContent = formatCountdown(left);
    this.textEl.textContent = "";
    this.textEl.appendChild(this.document.createTextNode(before));
    this.textEl.appendChild(time);
    this.textEl.appendChild(this.document.createTextNode(after ?? ""));
    this.countdownText = time.textContent;
  }

  hide() {
    if (this.ticker !== null) this.clearInterval(this.ticker);
    this.ticker = null;
    const wasVisible = this.visible;
    this.warning = null;
    this.root.hidden = true;
    if (wasVisible && this.returnFocus && typeof this.returnFocus.focus === "function") {
      this.returnFocus.focus();
    }
    this.returnFocus = null;
  }

  onContinue() {
    const idle = this.warning === null || this.warning.reason !== "max_duration";
    this.hide();
    if (idle) this.session.activity();
  }

  onEnd() {
    this.hide();
    this.session.end();
  }

  onKey(event) {
    if (event.key === "Escape") {
      event.preventDefault();
      this.onContinue();
    } else if (event.key === "Tab") {
      // Two buttons: keep focus inside the dialog.
      event.preventDefault();
      const next =
        this.document.activeElement === this.continueButton ? this.endButton : this.continueButton;
      next.focus();
    }
  }

  /** Remove the dialog and stop listening. */
  destroy() {
    this.hide();
    for (const off of this.unsubscribe) off();
    this.root.remove();
  }
}

function injectStyles(doc) {
  if (!doc || !doc.head || doc.querySelector?.("style[data-tether-dialog]")) return;
  const style = doc.createElement("style");
  style.setAttribute("data-tether-dialog", "");
  style.textContent = DIALOG_CSS;
  doc.head.appendChild(style);
}

/** Attach the ready-made warning dialog to `session`; returns it (destroy() removes it). */
export function showWarningDialog(session, options) {
  return new TetherWarningDialog(session, options);
}
