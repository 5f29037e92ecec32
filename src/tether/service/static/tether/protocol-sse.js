// tether/protocol-sse.js: TetherProtocol's rules for the Server-Sent Events +
// REST link: the REST start or lookup, the stream, and what REST answers mean.
// Methods of TetherProtocol (mixed in by protocol.js), sans I/O like it.
import { Ending, State } from "./states.js";

/** The REST calls that make or check the SSE link (their answers are acted on). */
const SSE_STEPS = new Set(["start", "lookup", "diagnose"]);

export class SseRules {
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

  /** The event stream opened. */
  streamOpened() {
    if (this.state !== State.ATTACHING) return;
    this._newLink();
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
}
