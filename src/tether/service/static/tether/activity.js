// tether/activity.js: user activity from DOM events, throttled.
import { DEFAULTS } from "./defaults.js";
import { Throttle } from "./timing.js";


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
