// tether/protocol-conversation.js: TetherProtocol's rules for the conversation
// itself (docs/protocol.md, "Conversations"): streamed replies, app events, the
// raw frames, and observing a session instead of taking part in it. Methods of
// TetherProtocol (mixed in by protocol.js), sans I/O like it.
import { DEFAULTS } from "./defaults.js";
import { clientFrames } from "./wire.js";

/**
 * The `observe` option as `{sessionId}` (watch that session), `{user, waitS}`
 * (watch `user`'s next session; "me" for the caller's own) or null (take part).
 * `true` observes `sessionId` when one is given, else the caller's next session.
 */
export function observeTarget(observe, sessionId) {
  if (observe === undefined || observe === null || observe === false) return null;
  if (observe === true) {
    return sessionId ? { sessionId } : { user: "me", waitS: DEFAULTS.observeWaitS };
  }
  if (typeof observe !== "object") {
    throw new TypeError("tether: observe must be true, {sessionId} or {user, waitS}");
  }
  const id = observe.sessionId ?? observe.session_id ?? null;
  if (id !== null) {
    if (typeof id !== "string" || id === "") throw new TypeError("tether: observe.sessionId must be a string");
    return { sessionId: id };
  }
  const user = observe.user ?? "me";
  const waitS = observe.waitS ?? observe.wait_s ?? DEFAULTS.observeWaitS;
  if (typeof user !== "string" || user === "") throw new TypeError("tether: observe.user must be a string");
  if (!(typeof waitS === "number" && Number.isFinite(waitS) && waitS >= 0)) {
    throw new TypeError("tether: observe.waitS must be a number of seconds >= 0");
  }
  return { user, waitS };
}

export class ConversationRules {
  /** Observing and no session named yet: waiting for the user's next one to start. */
  _awaitingSession() {
    return this.observing !== null && this.id === null;
  }

  /**
   * The `observe` frame for this link: the session once it is known (a
   * reconnect watches the same one), else the next session, waiting only for
   * what is left of `waitS` since the first ask.
   */
  _observeFrame() {
    if (this.id !== null) return clientFrames.observe({ sessionId: this.id });
    const { user, waitS } = this.observing;
    if (this.observeDeadline === null) this.observeDeadline = this.now() + waitS * 1000;
    const left = Math.max(0, (this.observeDeadline - this.now()) / 1000);
    return clientFrames.observe({ user, waitS: left });
  }

  /** A new link: the server replays every open reply's text so far, so start them afresh. */
  _newLink() {
    this.replies.clear();
  }

  /** A piece of a streamed reply: kept with the text so far, handed to on("reply.delta"). */
  _onReplyDelta(frame) {
    let reply = this.replies.get(frame.replyId);
    if (reply === undefined) {
      reply = { reply_id: frame.replyId, role: frame.role, content: "" };
      this.replies.set(frame.replyId, reply);
    }
    reply.content += frame.text;
    this._emit("reply.delta", {
      reply_id: frame.replyId,
      role: frame.role,
      text: frame.text,
      content: reply.content,
    });
  }

  /** A transcript message that completes a reply: the reply is no longer building. */
  _finishReply(message) {
    const id = message.reply_id;
    if (typeof id === "string") this.replies.delete(id);
  }

  _onApp(frame) {
    this._emit("app", { name: frame.name, data: frame.data });
  }

  _onObserveTimeout() {
    // The user started no session within waitS: this observer is done.
    if (this._awaitingSession()) this._shutdown(null);
  }

  _refuseObserveOverSse() {
    this._emit("error", {
      code: "observe_unsupported",
      message: "waiting for the next session needs a WebSocket; observe a session id over SSE",
    });
    this._shutdown(null);
  }
}
