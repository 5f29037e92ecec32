// tether/protocol.js: the client's rulebook, sans I/O.
//
// TetherProtocol holds the client's state and decides everything: what to
// send, when to reconnect, when to fall back to SSE, when the session is over.
// It never touches a WebSocket, fetch, a timer or the DOM: the drivers feed it
// inputs (frames, closes, REST answers, fired timers, user commands) and carry
// out the actions it queues, which `take()` hands over in order:
//
//   {type: "token"}                       resolve the token, then tokenReady/tokenFailed
//   {type: "openSocket"}                  open a WebSocket; report socketOpened/socketClosed
//   {type: "send", text}                  send one text frame on the open socket
//   {type: "closeSocket"}                 drop the socket (its own close event is not reported)
//   {type: "openStream", after}           open the event stream after message `after`
//   {type: "rest", call, body?}           a REST call (drivers.js maps it); restAnswered/restFailed
//   {type: "timer", name, ms}             (re)arm the timer `name`; timerFired(name) when due
//   {type: "cancelTimer", name}
//   {type: "emit", name, detail}          dispatch a session event
//   {type: "store"} / {type: "forget"}    remember / forget the session id across reloads
//   {type: "ready", session}              the session is attached for the first time
//   {type: "resetThrottle"}               let the user's next move through at once
//   {type: "release"}                     stop everything: timers, socket, stream, page hooks
//   {type: "finish", detail}              the client is done: `closed` resolves with `detail`
import { DEFAULTS } from "./defaults.js";
import { backoffDelay } from "./timing.js";
import { TetherFrameError, clientFrames, closeInfo, parseServerFrame } from "./wire.js";

/**
 * Where the client's link to the session stands. `status` (the public field and
 * event) is what the user sees; this is what the rules decide on.
 */
export const State = Object.freeze({
  /** Built; open() not called yet. */
  IDLE: "idle",
  /** Making a link: the token, a socket that has not opened, a reconnect under way. */
  CONNECTING: "connecting",
  /** The link is up and start or resume was said (or the REST start/lookup asked, or the
   * stream is opening): waiting for the session to be named. */
  ATTACHING: "attaching",
  /** Attached: the session is named and frames flow both ways. */
  OPEN: "open",
  /** Between links: a reconnect timer is pending. */
  WAITING: "waiting",
  /** The end went out over REST; waiting for its answer and nothing else. */
  ENDING: "ending",
  /** Ended or stopped: inputs are ignored and commands throw. */
  CLOSED: "closed",
});

/** Whether the user asked to end the session, and whether the end was said. */
export const Ending = Object.freeze({
  NO: "no",
  /** Asked (end() before the session was named, or a page-exit beacon) but not said here. */
  ASKED: "asked",
  /** Said: an end frame or the REST end went out. */
  SENT: "sent",
});

const REACHED = new Set([State.ATTACHING, State.OPEN]);

/** The sans-I/O tether client: inputs in, actions out (see the module comment). */
export class TetherProtocol {
  /**
   * `options`: kind, config, sessionId, storedId (an id from a previous page),
   * token (a string, or null until tokenReady), tokenRenewable (the token is a
   * function: an auth refusal is worth one retry), transport ("auto" |
   * "websocket" | "sse"), canWebSocket, canEventSource, backoff {base, cap},
   * maxReconnectAttempts, wsFailuresBeforeSse, connectTimeoutMs, missedPongs,
   * and the injected now() (ms) and random().
   */
  constructor(options = {}) {
    this.kind = options.kind;
    this.initialConfig = options.config;
    this.transportChoice = options.transport ?? "auto";
    this.canWebSocket = options.canWebSocket ?? true;
    this.canEventSource = options.canEventSource ?? true;
    this.tokenRenewable = options.tokenRenewable ?? false;
    this.backoff = {
      base: options.backoff?.base ?? DEFAULTS.backoffBaseMs,
      cap: options.backoff?.cap ?? DEFAULTS.backoffCapMs,
    };
    this.maxReconnectAttempts = options.maxReconnectAttempts ?? Infinity;
    this.wsFailuresBeforeSse = options.wsFailuresBeforeSse ?? DEFAULTS.wsFailuresBeforeSse;
    this.connectTimeoutMs = options.connectTimeoutMs ?? DEFAULTS.connectTimeoutMs;
    this.missedPongsLimit = options.missedPongs ?? DEFAULTS.missedPongs;
    this.now = options.now ?? (() => Date.now());
    this.random = options.random ?? Math.random;
    this.token = options.token ?? null;

    this.state = State.IDLE;
    this.ending = Ending.NO;
    this.id = options.sessionId ?? null;
    /** The id came from storage and the server has not confirmed it yet. */
    this.idFromStorage = false;
    if (this.id === null && options.storedId !== undefined && options.storedId !== null) {
      this.id = options.storedId;
      this.idFromStorage = true;
    }
    this.info = null;
    this.config = null;
    this.warning = null;
    this.status = "idle";
    this.transport = null;
    this.heartbeatIntervalS = DEFAULTS.heartbeatIntervalS;
    this.maxMessageBytes = null;
    this.lastSeq = 0;
    this.endedDetail = null;

    this.attempt = 0;
    this.wsFailures = 0;
    this.wsWorked = false;
    this.authRetried = false;
    this.unanswered = 0;
    this.pending = [];
    this.pendingActivity = false;
    this.lastError = null;
    this.actions = [];
  }

  /** The actions queued since the last call, in order. */
  take() {
    const out = this.actions;
    this.actions = [];
    return out;
  }

  /** The warning's seconds left right now, or null without a warning. */
  secondsLeft() {
    if (this.warning === null) return null;
    return Math.max(0, (this.warning.deadline - this.now()) / 1000);
  }

  // -- commands -------------------------------------------------------------------------

  /** Start connecting (once). */
  open() {
    if (this.state === State.IDLE) this._connect();
  }

  /** The user is engaged: an activity frame now, or as soon as the link is back. */
  activity() {
    if (this.state === State.CLOSED) return;
    if (this.transport === "sse" && this.id !== null) {
      this._do("rest", { call: "activity" });
      return;
    }
    if (!this._sendNow(clientFrames.activity())) this.pendingActivity = true;
  }

  /** Append a message (throws RangeError if larger than the server takes). */
  sendMessage(content, options = {}) {
    const frame = clientFrames.message(options.role ?? "user", content, options.metadata);
    const body = { role: frame.role, content: frame.content };
    if (frame.metadata) body.metadata = frame.metadata;
    this._command(frame, body);
  }

  /** Replace the session's config. */
  setConfig(config) {
    this._command(clientFrames.config(config), { config });
  }

  /** End the session; before anything reached the server, just stop. */
  end() {
    if (this.endedDetail !== null || this.state === State.CLOSED) return;
    if (this.ending === Ending.SENT) return;
    this.ending = Ending.ASKED;
    if (this.id !== null) {
      this._sendEnd();
    } else if (this.state !== State.ATTACHING) {
      this._shutdown(null); // no start went out: nothing to end
    } // else the end goes out as soon as session.started names the session
  }

  /** Stop without ending: the server's presence timeout decides. */
  disconnect() {
    this._shutdown(null);
  }

  /** Whether a page-exit beacon may end the session now (and remember that it was asked). */
  endByBeacon() {
    if (this.id === null || this.endedDetail !== null || this.token === null) return false;
    if (this.ending === Ending.NO) this.ending = Ending.ASKED;
    return true;
  }

  /** The page is back (online, visible, restored): reconnect now instead of waiting. */
  wake() {
    if (this.state !== State.WAITING) return;
    this._cancel("reconnect");
    this._connect();
  }

  // -- link events ----------------------------------------------------------------------

  /** The token for this connect is known. */
  tokenReady(token) {
    if (this.state !== State.CONNECTING) return; // stopped or ending meanwhile
    this.token = token;
    if (this._useSse()) {
      this._connectSse();
      return;
    }
    this.transport = "websocket";
    this._timer("connect", this.connectTimeoutMs);
    this._do("openSocket");
  }

  /** The token could not be had. */
  tokenFailed(error) {
    this._emit("error", { code: "token_unavailable", message: String(error?.message ?? error) });
    this._scheduleReconnect();
  }

  /** Opening the transport threw. */
  transportFailed(error) {
    this._emit("error", { code: "transport_failed", message: String(error?.message ?? error) });
    this._scheduleReconnect();
  }

  /** `new WebSocket()` threw. */
  socketFailed(error) {
    this._cancel("connect");
    this._emit("error", { code: "websocket_failed", message: String(error?.message ?? error) });
    this._wsFailed();
  }

  /** The socket opened: everything the server needs goes out at once, no round trip. */
  socketOpened() {
    if (this.state !== State.CONNECTING) return;
    this.state = State.ATTACHING;
    this._send(clientFrames.hello(this.token));
    if (this.id !== null) {
      this._send(clientFrames.resume(this.id, this.lastSeq));
    } else {
      this._send(clientFrames.start(this.kind, this.initialConfig));
    }
  }

  /**
   * The socket closed with `code`. One decision per close, in this order: over
   * already; ending (never start a new session for someone who asked to end);
   * unknown session; an end announced by the code; one auth retry; refused;
   * a WebSocket that never worked; otherwise reconnect after a backoff.
   */
  // 60+ lines: one ordered rule list, clearer read top to bottom than split apart.
  socketClosed(code) {
    const before = this.state;
    const wasAttached = before === State.OPEN;
    const opened = REACHED.has(before);
    this._stopPings();
    this._cancel("connect");
    if (before === State.CLOSED || this.endedDetail !== null) {
      this._shutdown(this.endedDetail);
      return;
    }
    if (before !== State.ENDING) this.state = State.CONNECTING;
    const info = closeInfo(code);
    const lastError = this.lastError;
    this.lastError = null;
    if (this.ending !== Ending.NO && this.id === null) {
      this._shutdown(null);
      return;
    }
    if (this.ending !== Ending.NO && code !== 4404 && info.reason === null) {
      if (before !== State.ENDING) this._sendEnd(); // the end frame may be lost with the socket
      return;
    }
    if (code === 4404) {
      if (this._restartStoredId()) return;
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
    if (before === State.ENDING) return; // the REST end's answer decides
    if (code === 1008 && this.tokenRenewable && !this.authRetried) {
      this.authRetried = true; // maybe an expired token: one more try with a fresh one
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

  /** The event stream opened. */
  streamOpened() {
    if (this.state !== State.ATTACHING) return;
    this.attempt = 0;
    this.state = State.OPEN;
    this._setStatus("open");
    this._flushPending();
  }

  /** The event stream failed; `permanent`: EventSource gave up (the driver closed it). */
  streamFailed(permanent) {
    if (this.state === State.CLOSED || this.state === State.ENDING) return;
    if (!permanent) {
      this.state = State.ATTACHING;
      this._setStatus("reconnecting"); // the browser retries by itself
      return;
    }
    // 401, 404, 410 or a network failure: find out which.
    this.state = State.CONNECTING;
    this._do("rest", { call: "diagnose" });
  }

  /** A REST call answered: `{ok, status, body, retryAfterS}` (body null unless JSON). */
  restAnswered(call, answer) {
    if (call === "end") {
      this._ended({ reason: (answer.ok && answer.body?.reason) || "client_ended", archiveId: null });
      return;
    }
    if (this.state === State.CLOSED || !SSE_STEPS.has(call)) return;
    if (!this._restOk(answer)) return;
    const session = answer.body;
    if (call === "start") {
      this.id = session.id;
      if (this.ending !== Ending.NO) {
        this._sendEnd();
        return;
      }
    } else if (session.end_reason) {
      this._ended({ reason: session.end_reason, archiveId: null });
      return;
    }
    if (call === "diagnose") {
      this._scheduleReconnect();
      return;
    }
    this._attach(session, call === "lookup");
    this._openStream();
  }

  /** A REST call failed to reach the server (or its answer was not JSON). */
  restFailed(call, error) {
    if (call === "end") {
      // Could not reach the server: the presence timeout ends the session.
      this._ended({ reason: "client_ended", archiveId: null });
    } else if (call === "message" || call === "config") {
      this._emit("error", { code: "network", message: String(error) });
    } else if (call === "diagnose") {
      if (this.state !== State.CLOSED) this._scheduleReconnect();
    } else if (call !== "activity" && this.state !== State.CLOSED) {
      this._emit("error", { code: "network", message: String(error?.message ?? error) });
      this._scheduleReconnect();
    }
  }

  /** The timer `name` is due. */
  timerFired(name) {
    if (name === "reconnect" && this.state === State.WAITING) {
      this._connect();
    } else if (name === "ping") {
      this._beat();
    } else if (name === "connect" && this.transport === "websocket") {
      if (this.state === State.CONNECTING || this.state === State.ATTACHING) this._abandon();
    }
  }

  // -- frames in ------------------------------------------------------------------------

  /** One frame from the server (WebSocket text or an SSE data line). */
  receive(text) {
    this.unanswered = 0; // any frame answers a ping
    let frame;
    try {
      frame = parseServerFrame(text);
    } catch (exc) {
      if (exc instanceof TetherFrameError && exc.code === "unknown_type") return; // newer server
      this._emit("error", { code: "bad_server_frame", message: String(exc?.message ?? exc) });
      return;
    }
    const handler = FRAME_HANDLERS[frame.type];
    if (handler) handler(this, frame);
  }

  _onWelcome(frame) {
    this.heartbeatIntervalS = frame.heartbeatIntervalS;
    this.maxMessageBytes = frame.maxMessageBytes;
    this._stopPings();
    this.unanswered = 0;
    this._timer("ping", this.heartbeatIntervalS * 1000);
  }

  _onAttached(frame) {
    this._attach(frame.session, frame.type === "session.resumed");
    if (this.state !== State.ENDING) this.state = State.OPEN;
    this.wsWorked = this.wsWorked || this.transport === "websocket";
    this.authRetried = false;
    this.attempt = 0;
    this.wsFailures = 0;
    this._setStatus("open");
    for (const message of frame.transcriptTail ?? []) this._onMessage(message);
    if (this.ending === Ending.NO) {
      this._flushPending();
    } else if (this.state !== State.ENDING) {
      this._sendEnd(); // asked before the session was named, or by a page-exit beacon
    }
  }

  _onWarning(frame) {
    this.warning = {
      reason: frame.reason,
      secondsLeft: frame.secondsLeft,
      endsAt: frame.endsAt,
      deadline: this.now() + frame.secondsLeft * 1000,
    };
    this._do("resetThrottle"); // the user's next move goes out at once
    this._emit("warning", { ...this.warning });
  }

  _onMessage(message) {
    if (message.seq <= this.lastSeq) return; // already delivered (a replay overlap)
    this.lastSeq = message.seq;
    this._emit("message", { message });
  }

  _attach(session, resumed) {
    const first = this.info === null;
    this.id = session.id;
    this.idFromStorage = false;
    this.info = session;
    if (session.config) this.config = session.config;
    this._do("store");
    if (first) {
      this._do("ready", { session });
      this._emit("started", { session, resumed });
    }
  }

  // -- connecting -----------------------------------------------------------------------

  _connect() {
    this.state = State.CONNECTING;
    this._setStatus(this.info !== null ? "reconnecting" : "connecting");
    this._do("token");
  }

  _useSse() {
    if (this.transportChoice === "sse") return true;
    if (this.transportChoice === "websocket") return false;
    return !this.canWebSocket || this.transport === "sse";
  }

  _connectSse() {
    this.transport = "sse";
    if (this.id === null) {
      this.state = State.ATTACHING; // a start is asked for: end() now waits for its answer
      const body = {};
      if (this.kind !== undefined) body.kind = this.kind;
      if (this.initialConfig !== undefined) body.config = this.initialConfig;
      this._do("rest", { call: "start", body });
    } else if (this.info === null) {
      this.state = State.ATTACHING;
      this._do("rest", { call: "lookup" });
    } else {
      this._openStream();
    }
  }

  _openStream() {
    this.state = State.ATTACHING;
    this._do("openStream", { after: this.lastSeq });
  }

  /** A stored id the server no longer knows (a reload after the end): start afresh. */
  _restartStoredId() {
    if (!(this.idFromStorage && this.info === null)) return false;
    this.idFromStorage = false;
    this.id = null;
    this._do("forget");
    this.attempt = 0;
    this._connect();
    return true;
  }

  _wsFailed() {
    this.wsFailures += 1;
    if (
      this.transportChoice === "auto" &&
      !this.wsWorked &&
      this.wsFailures >= this.wsFailuresBeforeSse &&
      this.canEventSource
    ) {
      this.transport = "sse";
      this._emit("error", {
        code: "websocket_unavailable",
        message: `WebSocket failed ${this.wsFailures} times; using Server-Sent Events and REST`,
      });
    }
    this._scheduleReconnect();
  }

  _scheduleReconnect(minimumMs = 0) {
    if (this.state === State.CLOSED) return;
    if (this.attempt >= this.maxReconnectAttempts) {
      this._emit("error", { code: "gave_up", message: "too many reconnect attempts" });
      this._shutdown(null);
      return;
    }
    const delay = Math.max(minimumMs, backoffDelay(this.attempt, this.backoff, this.random));
    this.attempt += 1;
    this.state = State.WAITING;
    this._setStatus(this.info !== null ? "reconnecting" : "connecting", {
      attempt: this.attempt,
      delayMs: delay,
    });
    this._timer("reconnect", delay);
  }

  /** A socket we give up on (no open in time, or no answer to pings). */
  _abandon() {
    this._do("closeSocket");
    this.socketClosed(1006);
  }

  /** true if `answer` is a success; otherwise acts on it (ended, refused, retry) and false. */
  _restOk(answer) {
    if (answer.ok) return true;
    const error = answer.body?.error ?? {};
    const status = answer.status;
    if (status === 410) {
      this._ended({ reason: error.reason ?? "unknown_session", archiveId: null });
    } else if (status === 404) {
      if (!this._restartStoredId()) {
        this._ended({ reason: "unknown_session", archiveId: null, code: 404 });
      }
    } else if (status === 401 && this.tokenRenewable && !this.authRetried) {
      this.authRetried = true;
      this._scheduleReconnect();
    } else if (status === 401 || status === 403 || status === 422) {
      this._emit("error", {
        code: error.code ?? "refused",
        message: error.message ?? `HTTP ${status}`,
        status,
      });
      this._shutdown(null);
    } else {
      const retryAfter = answer.retryAfterS;
      this._scheduleReconnect(Number.isFinite(retryAfter) ? retryAfter * 1000 : 0);
    }
    return false;
  }

  // -- frames out -----------------------------------------------------------------------

  _send(frame) {
    const text = JSON.stringify(frame);
    if (this.maxMessageBytes !== null && new TextEncoder().encode(text).length > this.maxMessageBytes) {
      // The server would close the connection with 1009 and the session with it.
      throw new RangeError(`tether: frame larger than the server's ${this.maxMessageBytes} bytes`);
    }
    this._do("send", { text });
  }

  _sendNow(frame) {
    if (!(this.state === State.OPEN && this.transport === "websocket")) return false;
    this._send(frame);
    return true;
  }

  _command(frame, body) {
    if (this.state === State.CLOSED || this.endedDetail !== null) {
      throw new Error("tether: the session is over");
    }
    if (this.transport === "sse" && this.id !== null) {
      this._do("rest", { call: frame.type, body });
      return;
    }
    if (!this._sendNow(frame)) this.pending.push(frame);
  }

  _flushPending() {
    const pending = this.pending;
    this.pending = [];
    if (this.transport === "sse") {
      if (this.pendingActivity) this.activity();
      for (const frame of pending) {
        if (frame.type === "message") this.sendMessage(frame.content, frame);
        else if (frame.type === "config") this.setConfig(frame.config);
      }
    } else {
      try {
        if (this.pendingActivity) this._sendNow(clientFrames.activity());
        for (const frame of pending) this._sendNow(frame);
      } catch (exc) {
        this._emit("error", { code: "too_large", message: String(exc?.message ?? exc) });
      }
    }
    this.pendingActivity = false;
  }

  _sendEnd() {
    this.ending = Ending.SENT;
    if (this._sendNow(clientFrames.end())) return; // session.ended and close 1000 follow
    this._cancel("reconnect");
    this.state = State.ENDING;
    this._do("rest", { call: "end" });
  }

  // -- heartbeats -----------------------------------------------------------------------

  _beat() {
    if (!(this.transport === "websocket" && REACHED.has(this.state))) return;
    if (this.unanswered >= this.missedPongsLimit) {
      // Nothing heard for several intervals: a half-open socket. Reconnect and
      // resume; presence never depended on this timer being on time.
      this._abandon();
      return;
    }
    this.unanswered += 1;
    this._do("send", { text: JSON.stringify(clientFrames.ping()) });
    this._timer("ping", this.heartbeatIntervalS * 1000);
  }

  _stopPings() {
    this._cancel("ping");
  }

  // -- endings --------------------------------------------------------------------------

  _ended(detail) {
    if (this.endedDetail !== null) return;
    const clean = { reason: detail.reason, archiveId: detail.archiveId ?? null };
    if (detail.code !== undefined) clean.code = detail.code;
    this.endedDetail = clean;
    this.warning = null;
    this._do("forget");
    this._emit("ended", { ...clean });
    this._shutdown(clean);
  }

  _shutdown(endedDetail) {
    const wasClosed = this.state === State.CLOSED;
    this.state = State.CLOSED;
    this._do("release");
    if (wasClosed && this.status === "closed") return;
    this._setStatus("closed");
    this._do("finish", { detail: endedDetail });
  }

  // -- plumbing -------------------------------------------------------------------------

  _setStatus(status, extra = {}) {
    if (this.status === status && !("attempt" in extra)) return;
    const previous = this.status;
    this.status = status;
    this._emit("status", { status, previous, transport: this.transport, ...extra });
  }

  _emit(name, detail) {
    this._do("emit", { name, detail });
  }

  _timer(name, ms) {
    this._do("timer", { name, ms });
  }

  _cancel(name) {
    this._do("cancelTimer", { name });
  }

  _do(type, fields = {}) {
    this.actions.push({ type, ...fields });
  }
}

/** The REST calls that make or check the SSE link (their answers are acted on). */
const SSE_STEPS = new Set(["start", "lookup", "diagnose"]);

const FRAME_HANDLERS = {
  welcome: (p, f) => p._onWelcome(f),
  "session.started": (p, f) => p._onAttached(f),
  "session.resumed": (p, f) => p._onAttached(f),
  "session.config": (p, f) => {
    p.config = f.config;
    p._emit("config", { config: f.config });
  },
  "session.warning": (p, f) => p._onWarning(f),
  "session.active": (p) => {
    p.warning = null;
    p._emit("active", {});
  },
  "session.ended": (p, f) => p._ended({ reason: f.reason, archiveId: f.archiveId }),
  "transcript.message": (p, f) => p._onMessage(f.message),
  pong: () => {},
  error: (p, f) => {
    p.lastError = f;
    p._emit("error", { code: f.code, message: f.message, reason: f.reason, retryAfterS: f.retryAfterS });
  },
};
