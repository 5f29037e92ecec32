// tether/states.js: the protocol's two state enums.

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
