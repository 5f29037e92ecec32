// tether/holdings.js: what the page holds for a session, released when it ends.
//
// Seed 000: "clean up media streams". A page that opens a microphone, an
// AudioContext or a timer for a session hands it to `session.hold(...)`, and
// every way the session can end (the server ends it, the client ends it, idle
// timeout, replaced, disconnect, the page going away) releases it: no live
// microphone light after the call is over, whichever way it ended.

/**
 * How one thing is released, by what it is:
 *   MediaStream (getTracks)       every track stopped
 *   MediaStreamTrack, MediaRecorder, AudioScheduledSourceNode (stop)
 *                                 stopped (a recorder only while it records)
 *   AudioContext, WebSocket, RTCPeerConnection, EventSource, ... (close)
 *                                 closed (an AudioContext only if not closed yet)
 *   a function                    called once
 *   a number                      a timer id: clearTimeout and clearInterval
 * Anything else is refused with a TypeError when it is handed over.
 */
function releaserFor(thing, clearTimeout, clearInterval) {
  if (typeof thing === "function") return () => thing();
  if (typeof thing === "number") {
    return () => {
      clearTimeout(thing);
      clearInterval(thing); // timer ids share one pool in browsers; either may be the one
    };
  }
  if (thing === null || typeof thing !== "object") return null;
  if (typeof thing.getTracks === "function") {
    return () => {
      for (const track of thing.getTracks()) track.stop();
    };
  }
  if (typeof thing.close === "function") {
    return () => {
      if (thing.state === "closed") return; // an AudioContext closed by the page itself
      const done = thing.close();
      if (done && typeof done.catch === "function") done.catch(() => {});
    };
  }
  if (typeof thing.stop === "function") {
    return () => {
      if (thing.state === "inactive") return; // a MediaRecorder that is not recording
      thing.stop();
    };
  }
  return null;
}

/** The things held for one session; each is released exactly once. */
export class Holdings {
  /** `env`: clearTimeout and clearInterval (the page's); `onError(error, thing)`. */
  constructor(env = {}, onError = () => {}) {
    this.clearTimeout = env.clearTimeout ?? ((id) => globalThis.clearTimeout(id));
    this.clearInterval = env.clearInterval ?? ((id) => globalThis.clearInterval(id));
    this.onError = onError;
    /** thing -> its release function, in the order they were handed over. */
    this.held = new Map();
    /** Released for good: anything handed over from now on is released at once. */
    this.done = false;
  }

  /** How many things are held now. */
  get size() {
    return this.held.size;
  }

  /**
   * Hold `thing` until the session is over; returns a function that releases
   * it now (and forgets it). After the end, `thing` is released at once.
   */
  hold(thing) {
    const release = releaserFor(thing, this.clearTimeout, this.clearInterval);
    if (release === null) {
      throw new TypeError(
        "tether: hold() takes a MediaStream, a track, an AudioContext, something with close() or stop(), a timer id or a function",
      );
    }
    if (this.done) {
      this._run(thing, release);
      return () => {};
    }
    if (!this.held.has(thing)) this.held.set(thing, release);
    return () => this.release(thing);
  }

  /** Release one thing now, if it is still held. */
  release(thing) {
    const release = this.held.get(thing);
    if (release === undefined) return;
    this.held.delete(thing);
    this._run(thing, release);
  }

  /** Release everything held, newest first (a recorder before the stream it records). */
  releaseAll({ final = false } = {}) {
    if (final) this.done = true;
    const all = [...this.held].reverse();
    this.held.clear();
    for (const [thing, release] of all) this._run(thing, release);
  }

  _run(thing, release) {
    try {
      release();
    } catch (exc) {
      this.onError(exc, thing); // one failure must not keep the rest alive
    }
  }
}
