// tether/protocol-ws.js: TetherProtocol's rules for the WebSocket link: the
// socket's open and close, the ping watchdog, the fallback after failures.
// Methods of TetherProtocol (mixed in by protocol.js), sans I/O like it.
import { Ending, State } from "./states.js";
import { clientFrames, closeInfo } from "./wire.js";

/** The states in which the socket is open. */
const REACHED = new Set([State.ATTACHING, State.OPEN]);

export class WebSocketRules {
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
    this._newLink();
    this._send(clientFrames.hello(this.token));
    if (this.observing !== null) {
      this._send(this._observeFrame());
    } else if (this.id !== null) {
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

  /** A socket we give up on (no open in time, or no answer to pings). */
  _abandon() {
    this._do("closeSocket");
    this.socketClosed(1006);
  }

  _onWelcome(frame) {
    this.heartbeatIntervalS = frame.heartbeatIntervalS;
    this.maxMessageBytes = frame.maxMessageBytes;
    this._stopPings();
    this.unanswered = 0;
    this._timer("ping", this.heartbeatIntervalS * 1000);
    if (this._awaitingSession()) {
      // Connected: the wait for the user's next session may be long, and is no failure.
      this._cancel("connect");
      this._setStatus("awaiting");
    }
  }

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
}
