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
//
// The rules of each link live beside this module as methods mixed into the
// class: protocol-ws.js (the WebSocket) and protocol-sse.js (SSE + REST); those
// of the conversation (replies, app events, observing) in
// protocol-conversation.js; the state enums in states.js.
import { DEFAULTS } from "./defaults.js";
import { ConversationRules, observeTarget } from "./protocol-conversation.js";
import { SseRules } from "./protocol-sse.js";
import { WebSocketRules } from "./protocol-ws.js";
import { Ending, State } from "./states.js";
import { backoffDelay } from "./timing.js";
import { TetherFrameError, clientFrames, decodeServerFrame, parseFrameJson } from "./wire.js";

export { Ending, State };

/** The sans-I/O tether client: inputs in, actions out (see the module comment). */
export class TetherProtocol {
  /**
   * `options`: kind, config, sessionId, storedId (an id from a previous page),
   * token (a string, or null until tokenReady), tokenRenewable (the token is a
   * function: an auth refusal is worth one retry), transport ("auto" |
   * "websocket" | "sse"), canWebSocket, canEventSource, backoff {base, cap},
   * maxReconnectAttempts, wsFailuresBeforeSse, connectTimeoutMs, missedPongs,
   * observe (watch a session instead of taking part: see observeTarget), and
   * the injected now() (ms) and random().
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
    /** What this client watches ({sessionId} or {user, waitS}), or null: it takes part. */
    this.observing = observeTarget(options.observe, options.sessionId);
    /** When the wait for the next session runs out (now() ms), once it was first asked. */
    this.observeDeadline = null;
    this.id = options.sessionId ?? this.observing?.sessionId ?? null;
    /** The id came from storage and the server has not confirmed it yet. */
    this.idFromStorage = false;
    const mayRestore = this.id === null && this.observing === null;
    if (mayRestore && options.storedId !== undefined && options.storedId !== null) {
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
    /** The replies streaming now: reply_id -> {reply_id, role, content} (the text so far). */
    this.replies = new Map();

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
    if (this.observing !== null) return; // an observer never counts as activity
    if (this.transport === "sse" && this.id !== null) {
      this._do("rest", { call: "activity" });
      return;
    }
    if (!this._sendNow(clientFrames.activity())) this.pendingActivity = true;
  }

  /** Append a message (throws RangeError if larger than the server takes). */
  sendMessage(content, options = {}) {
    if (this.observing !== null) throw new Error("tether: an observer cannot send messages");
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
    if (this._awaitingSession()) {
      this._shutdown(null); // stop waiting; never end the session the user starts next
      return;
    }
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
      if (this._awaitingSession()) {
        this._refuseObserveOverSse();
        return;
      }
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

  /** The timer `name` is due. */
  timerFired(name) {
    if (name === "reconnect" && this.state === State.WAITING) {
      this._connect();
    } else if (name === "ping") {
      this._beat();
    } else if (name === "connect" && this.transport === "websocket" && this.status !== "awaiting") {
      if (this.state === State.CONNECTING || this.state === State.ATTACHING) this._abandon();
    }
  }

  // -- frames in ------------------------------------------------------------------------

  /** One frame from the server (WebSocket text or an SSE data line). */
  receive(text) {
    if (this.state === State.CLOSED) return; // a late frame of a link already let go
    this.unanswered = 0; // any frame answers a ping
    let frame;
    try {
      const data = parseFrameJson(text);
      this._emit("frame", data); // every frame as sent, a type this client does not know too
      frame = decodeServerFrame(data);
    } catch (exc) {
      if (exc instanceof TetherFrameError && exc.code === "unknown_type") return; // newer server
      this._emit("error", { code: "bad_server_frame", message: String(exc?.message ?? exc) });
      return;
    }
    const handler = FRAME_HANDLERS[frame.type];
    if (handler) handler(this, frame);
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
    this._finishReply(message);
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

  /** A stored id the server no longer knows (a reload after the end): start afresh. */
  _restartStoredId() {
    if (!(this.idFromStorage && this.info === null) || this.observing !== null) return false;
    this.idFromStorage = false;
    this.id = null;
    this._do("forget");
    this.attempt = 0;
    this._connect();
    return true;
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

  // -- endings --------------------------------------------------------------------------

  _ended(detail) {
    if (this.endedDetail !== null) return;
    const clean = { reason: detail.reason, archiveId: detail.archiveId ?? null };
    if (detail.code !== undefined) clean.code = detail.code;
    this.endedDetail = clean;
    this.warning = null;
    this.replies.clear();
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
  "reply.delta": (p, f) => p._onReplyDelta(f),
  app: (p, f) => p._onApp(f),
  pong: () => {},
  error: (p, f) => {
    p.lastError = f;
    p._emit("error", { code: f.code, message: f.message, reason: f.reason, retryAfterS: f.retryAfterS });
    if (f.code === "observe_timeout") p._onObserveTimeout();
  },
};

// The link rules are methods of TetherProtocol, kept in their own modules.
for (const rules of [WebSocketRules, SseRules, ConversationRules]) {
  for (const name of Object.getOwnPropertyNames(rules.prototype)) {
    if (name === "constructor") continue;
    Object.defineProperty(TetherProtocol.prototype, name, Object.getOwnPropertyDescriptor(rules.prototype, name));
  }
}
