// tether.js: the browser client for tether's session protocol (v1).
//
// Dependency-free native ES modules for modern browsers; no build step. This
// entry module re-exports the client's public API from its parts under tether/:
//
//   protocol.js  the sans-I/O rulebook: a State enum, inputs in, actions out
//                (its link rules in protocol-ws.js and protocol-sse.js, the
//                conversation's: replies, app events, observing, in
//                protocol-conversation.js)
//   session.js   TetherSession: drives the protocol, owns timers, storage, the page
//   holdings.js  what the page holds for a session (media, timers), released at its end
//   drivers.js   the thin WebSocket, EventSource and REST edges
//   wire.js      close codes, server frames checked, client frames built
//   urls.js      every URL the client uses
//   timing.js    full-jitter backoff, the throttle, the countdown text
//   activity.js  user activity from DOM events
//   dialog.js    the accessible warning dialog
//   defaults.js  the tunables
//
// It speaks the WebSocket protocol of docs/protocol.md (hello, then start or
// resume at once), falls back to Server-Sent Events plus REST when WebSockets
// do not get through, tracks user activity, keeps presence, reconnects with
// full-jitter backoff, ends the session with navigator.sendBeacon when asked
// to, and ships an accessible warning dialog. docs/browser.md is the guide;
// tether.d.ts the types.

export { DEFAULTS } from "./tether/defaults.js";
export { backoffDelay, Throttle, formatCountdown } from "./tether/timing.js";
export {
  PROTOCOL_VERSION,
  CLOSE_CODES,
  closeInfo,
  shouldReconnect,
  TetherFrameError,
  SERVER_FRAME_TYPES,
  parseServerFrame,
  clientFrames,
} from "./tether/wire.js";
export { apiBase, endpoints, eventsUrl, beaconRequest } from "./tether/urls.js";
export { ActivityTracker } from "./tether/activity.js";
export { State, Ending, TetherProtocol } from "./tether/protocol.js";
export { observeTarget } from "./tether/protocol-conversation.js";
export { TetherSession, connect } from "./tether/session.js";
export { Holdings } from "./tether/holdings.js";
export { DIALOG_CSS, TetherWarningDialog, showWarningDialog } from "./tether/dialog.js";
