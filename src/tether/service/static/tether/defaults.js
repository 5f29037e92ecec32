// tether/defaults.js: the client's tunables.

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
  /** How long `observe: {user}` waits for the user's next session (the server's default too). */
  observeWaitS: 30,
});
