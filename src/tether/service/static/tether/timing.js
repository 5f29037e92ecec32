// tether/timing.js: pure timing helpers (full-jitter backoff, a leading-edge
// throttle, the countdown text). No timers of their own: the clock is injected.
import { DEFAULTS } from "./defaults.js";


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

export const monotonicNow = () =>
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
