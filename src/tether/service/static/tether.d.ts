// Types for tether.js, the browser client of tether's session protocol (v1): the entry
// module, which re-exports everything from its parts under tether/.
// docs/browser.md is the guide; docs/protocol.md the wire contract.

export declare const PROTOCOL_VERSION: 1;

export declare const DEFAULTS: Readonly<{
  heartbeatIntervalS: number;
  presenceTimeoutS: number;
  activityThrottleMs: number;
  activityEvents: readonly string[];
  backoffBaseMs: number;
  backoffCapMs: number;
  wsFailuresBeforeSse: number;
  connectTimeoutMs: number;
  missedPongs: number;
  endOnHide: EndOnHide;
  observeWaitS: number;
}>;

/** Why a session ended (docs/protocol.md); "unknown_session" when the server no longer knows it. */
export type EndReason =
  | "client_ended"
  | "client_gone"
  | "idle_timeout"
  | "max_duration"
  | "replaced"
  | "admin"
  | "server_shutdown"
  | "error"
  | "unknown_session";

export type SessionState = "active" | "warning" | "ended";
export type Role = "user" | "assistant" | "system" | "tool";
/** "awaiting": an observer connected and waiting for the user's next session to start. */
export type Status = "idle" | "connecting" | "awaiting" | "open" | "reconnecting" | "closed";
export type Transport = "websocket" | "sse";
export type EndOnHide = "grace" | "end";
export type JsonObject = { [key: string]: unknown };

/** A session as the server shows it (docs/protocol.md, "Sessions as clients see them"). */
export interface SessionView {
  id: string;
  user: string;
  kind: string;
  state: SessionState;
  created_at: number;
  last_activity: number;
  last_seen: number;
  connections: number;
  message_count: number;
  config: JsonObject;
  warning: { reason: string; ends_at: number } | null;
  next_deadline: { at: number; action: "warn" | "end"; reason: string; clock: string } | null;
  deadlines: { idle_at: number; max_at: number; presence_at: number | null } | null;
  policy: {
    idle_timeout: number;
    warn_before: number;
    max_duration: number;
    presence_timeout: number;
  };
  ended_at: number | null;
  end_reason: string | null;
  [extra: string]: unknown;
}

/** One transcript message. */
export interface TranscriptMessage {
  seq: number;
  role: Role | string;
  content: string;
  ts: number;
  metadata?: JsonObject;
  /** set on the message that completes a streamed reply */
  reply_id?: string;
  /** true when the reply was cut short (the session ended, or the user spoke over it) */
  partial?: boolean;
}

/** A streamed reply still building: the text so far. */
export interface ReplyInProgress {
  reply_id: string;
  role: Role | string;
  /** every piece so far, joined */
  content: string;
}

/** What an observer watches: one session, or a user's next session ("me": the caller's). */
export type ObserveTarget = { sessionId: string } | { user: string; waitS: number };

// -- pure helpers ----------------------------------------------------------------------

export interface BackoffOptions {
  /** ms; default DEFAULTS.backoffBaseMs */
  base?: number;
  /** ms; default DEFAULTS.backoffCapMs */
  cap?: number;
}

/** floor(random() * min(cap, base * 2 ** attempt)) milliseconds. */
export declare function backoffDelay(
  attempt: number,
  options?: BackoffOptions,
  random?: () => number,
): number;

export declare class Throttle {
  constructor(intervalMs: number, now?: () => number);
  readonly intervalMs: number;
  last: number | null;
  ready(): boolean;
  take(): boolean;
  mark(): void;
  remainingMs(): number;
  reset(): void;
}

export declare function formatCountdown(seconds: number): string;

export type ReconnectAdvice = "yes" | "pause" | "no";
export interface CloseInfo {
  reconnect: ReconnectAdvice;
  reason: EndReason | null;
}
export declare const CLOSE_CODES: Readonly<Record<number, CloseInfo>>;
export declare function closeInfo(code: number): CloseInfo;
export declare function shouldReconnect(code: number): boolean;

export type FrameErrorCode = "bad_json" | "unknown_type" | "invalid_frame";
export declare class TetherFrameError extends Error {
  constructor(code: FrameErrorCode, message: string, frameType?: string | null);
  readonly code: FrameErrorCode;
  readonly frameType: string | null;
}

export type ServerFrame =
  | { type: "welcome"; v: number; heartbeatIntervalS: number; maxMessageBytes: number | null }
  | { type: "session.started"; session: SessionView }
  | { type: "session.resumed"; session: SessionView; transcriptTail: TranscriptMessage[] }
  | { type: "session.config"; config: JsonObject }
  | { type: "session.warning"; reason: string; secondsLeft: number; endsAt: number }
  | { type: "session.active" }
  | { type: "session.ended"; reason: string; archiveId: string | null }
  | { type: "transcript.message"; message: TranscriptMessage }
  | { type: "reply.delta"; replyId: string; role: string; text: string }
  | { type: "app"; name: string; data: unknown }
  | { type: "pong" }
  | {
      type: "error";
      code: string;
      message: string;
      reason: string | null;
      retryAfterS: number | null;
    };

export declare const SERVER_FRAME_TYPES: readonly ServerFrame["type"][];
export declare function parseServerFrame(text: string): ServerFrame;

export type ClientFrame =
  | { type: "hello"; token: string; v: 1 }
  | { type: "start"; kind?: string; config?: JsonObject }
  | { type: "resume"; session_id: string; after?: number }
  | { type: "observe"; session_id: string }
  | { type: "observe"; user: string; wait_s?: number }
  | { type: "activity" }
  | { type: "ping" }
  | { type: "message"; role: Role; content: string; metadata?: JsonObject }
  | { type: "config"; config: JsonObject }
  | { type: "end" };

export declare const clientFrames: Readonly<{
  hello(token: string): Extract<ClientFrame, { type: "hello" }>;
  start(kind?: string | null, config?: JsonObject | null): Extract<ClientFrame, { type: "start" }>;
  resume(sessionId: string, after?: number): Extract<ClientFrame, { type: "resume" }>;
  activity(): Extract<ClientFrame, { type: "activity" }>;
  ping(): Extract<ClientFrame, { type: "ping" }>;
  message(
    role: Role,
    content: string,
    metadata?: JsonObject | null,
  ): Extract<ClientFrame, { type: "message" }>;
  observe(
    target: { sessionId: string } | { user?: string; waitS?: number },
  ): Extract<ClientFrame, { type: "observe" }>;
  config(config: JsonObject): Extract<ClientFrame, { type: "config" }>;
  end(): Extract<ClientFrame, { type: "end" }>;
}>;

export interface Endpoints {
  ws: string;
  sessions: string;
  session?: string;
  events?: string;
  end?: string;
  activity?: string;
  heartbeat?: string;
  messages?: string;
  config?: string;
}
export declare function apiBase(url?: string, location?: { origin: string; href: string } | null): string;
export declare function endpoints(base: string, sessionId?: string): Endpoints;
export declare function eventsUrl(
  base: string,
  sessionId: string,
  token: string,
  lastEventId?: number,
): string;
export declare function beaconRequest(
  base: string,
  sessionId: string,
  token: string,
): { url: string; body: string; contentType: "text/plain" };

export interface ActivityTrackerOptions {
  events?: readonly string[];
  throttleMs?: number;
  now?: () => number;
}
export declare class ActivityTracker {
  constructor(target: EventTarget | undefined, onActivity: () => void, options?: ActivityTrackerOptions);
  readonly events: string[];
  readonly throttle: Throttle;
  readonly running: boolean;
  start(): void;
  stop(): void;
  reset(): void;
}

// -- the session -----------------------------------------------------------------------

export interface ActivityOptions {
  /** default true */
  enabled?: boolean;
  /** default DEFAULTS.activityEvents */
  events?: readonly string[];
  /** at most one activity per this many ms; default 5000 */
  throttleMs?: number;
  /** where to listen; default window */
  target?: EventTarget;
  now?: () => number;
}

/** What the session uses from the page; every field defaults to the browser's own. */
export interface TetherEnv {
  WebSocket?: unknown;
  EventSource?: unknown;
  fetch?: (url: string, init?: RequestInit) => Promise<Response>;
  navigator?: { sendBeacon?(url: string, data?: BodyInit | null): boolean };
  window?: EventTarget;
  document?: EventTarget & { visibilityState?: string };
  location?: { origin: string; href: string };
  sessionStorage?: Pick<Storage, "getItem" | "setItem" | "removeItem"> | null;
  setTimeout?: (fn: () => void, ms: number) => unknown;
  clearTimeout?: (id: unknown) => void;
  /** used to clear timer ids handed to hold() */
  clearInterval?: (id: unknown) => void;
  /** wall clock, ms (warning deadlines) */
  now?: () => number;
  /** monotonic clock, ms (activity throttling) */
  monotonic?: () => number;
  random?: () => number;
}

export interface TetherOptions {
  /** A bearer token, or a function that returns a fresh one for each (re)connect. */
  token: string | (() => string | Promise<string>);
  /** The server's root (default: this page's origin); "https://api.example/tether/" for a prefix. */
  url?: string;
  /** The WebSocket URL (default: `ws` under `url`, ws: or wss:). */
  wsUrl?: string;
  /** For a new session. */
  kind?: string;
  /** For a new session: sent with `start` at once. */
  config?: JsonObject;
  /** Resume this session instead of starting one (with `observe: true`: watch it). */
  sessionId?: string;
  /**
   * Watch instead of taking part: `{sessionId}` (or `true` with `sessionId`) watches that
   * session; `{user: "me", waitS}` (or `true` alone) waits up to waitS seconds (default
   * DEFAULTS.observeWaitS) for the user's next session. An observer sends no activity and
   * no messages (sendMessage throws); it may change the config and end the session.
   */
  observe?: boolean | { sessionId: string } | { user?: string; waitS?: number };
  /** Keep the session id in sessionStorage under this key: a reload resumes it. */
  persistKey?: string | null;
  /** User activity tracking; false turns it off. */
  activity?: ActivityOptions | false;
  /** "grace" (default): hiding or leaving the page leaves it to the presence timeout; "end": end it with sendBeacon. */
  endOnHide?: EndOnHide;
  backoff?: BackoffOptions;
  /** Give up after this many reconnects in a row (default: never). */
  maxReconnectAttempts?: number;
  /** "auto" (default): WebSocket, then SSE + REST if it keeps failing. */
  transport?: "auto" | Transport;
  wsFailuresBeforeSse?: number;
  connectTimeoutMs?: number;
  missedPongs?: number;
  env?: TetherEnv;
}

export interface WarningDetail {
  reason: string;
  /** as sent; see TetherSession.secondsLeft() for the live value */
  secondsLeft: number;
  /** the server's clock, seconds since the epoch */
  endsAt: number;
  /** this page's clock (env.now(), ms): when the session ends */
  deadline: number;
}

export interface EndedDetail {
  reason: EndReason | string;
  archiveId: string | null;
  /** the close code or HTTP status that told, when no session.ended did */
  code?: number;
}

export interface StatusDetail {
  status: Status;
  previous: Status;
  transport: Transport | null;
  attempt?: number;
  delayMs?: number;
}

export interface ErrorDetail {
  code: string;
  message: string;
  reason?: string | null;
  retryAfterS?: number | null;
  closeCode?: number;
  status?: number;
}

/** A piece of a streamed reply: `text` is this piece, `content` the reply so far. */
export interface ReplyDeltaDetail {
  reply_id: string;
  role: Role | string;
  text: string;
  content: string;
}

/** Whatever the server-side application sent: `{"type": "app", name, data}`. */
export interface AppDetail {
  name: string;
  data: unknown;
}

/** A server frame exactly as sent (wire names), including types this client does not know. */
export interface RawFrame {
  type?: unknown;
  [field: string]: unknown;
}

export interface TetherEventMap {
  started: { session: SessionView; resumed: boolean };
  status: StatusDetail;
  config: { config: JsonObject };
  warning: WarningDetail;
  active: Record<string, never>;
  message: { message: TranscriptMessage };
  "reply.delta": ReplyDeltaDetail;
  app: AppDetail;
  frame: RawFrame;
  ended: EndedDetail;
  error: ErrorDetail;
}
export type TetherEventName = keyof TetherEventMap;

// -- the sans-I/O protocol (tether/protocol.js) -----------------------------------------

/** What the client knows of its session; TetherSession shows its protocol's, read-only. */
export interface SessionFields {
  readonly id: string | null;
  readonly info: SessionView | null;
  readonly config: JsonObject | null;
  readonly warning: WarningDetail | null;
  readonly status: Status;
  readonly transport: Transport | null;
  readonly heartbeatIntervalS: number;
  readonly maxMessageBytes: number | null;
  readonly lastSeq: number;
  readonly endedDetail: EndedDetail | null;
  /** The replies streaming now, by reply_id (live: read it, do not change it). */
  readonly replies: ReadonlyMap<string, ReplyInProgress>;
  /** What this client observes, or null when it takes part. */
  readonly observing: ObserveTarget | null;
}

/** Where the client's link to the session stands (TetherProtocol.state). */
export declare const State: Readonly<{
  IDLE: "idle";
  CONNECTING: "connecting";
  ATTACHING: "attaching";
  OPEN: "open";
  WAITING: "waiting";
  ENDING: "ending";
  CLOSED: "closed";
}>;
export type ProtocolState = (typeof State)[keyof typeof State];

/** Whether the user asked to end the session, and whether the end was said. */
export declare const Ending: Readonly<{ NO: "no"; ASKED: "asked"; SENT: "sent" }>;
export type EndingState = (typeof Ending)[keyof typeof Ending];

/** The REST calls the protocol asks its driver to make. */
export type RestCall = "start" | "lookup" | "diagnose" | "end" | "activity" | "message" | "config";

/** What a REST call answered: the JSON body, or null for a refusal that is not JSON. */
export interface RestAnswer {
  ok: boolean;
  status: number;
  body: unknown;
  retryAfterS?: number;
}

/** One thing the protocol decided; its driver carries them out in order. */
export type ProtocolAction =
  | { type: "token" }
  | { type: "openSocket" }
  | { type: "send"; text: string }
  | { type: "closeSocket" }
  | { type: "openStream"; after: number }
  | { type: "rest"; call: RestCall; body?: JsonObject }
  | { type: "timer"; name: "reconnect" | "ping" | "connect"; ms: number }
  | { type: "cancelTimer"; name: "reconnect" | "ping" | "connect" }
  | { type: "emit"; name: TetherEventName; detail: TetherEventMap[TetherEventName] }
  | { type: "store" }
  | { type: "forget" }
  | { type: "ready"; session: SessionView }
  | { type: "resetThrottle" }
  | { type: "release" }
  | { type: "finish"; detail: EndedDetail | null };

export interface ProtocolOptions
  extends Pick<
    TetherOptions,
    | "kind"
    | "config"
    | "sessionId"
    | "backoff"
    | "maxReconnectAttempts"
    | "transport"
    | "wsFailuresBeforeSse"
    | "connectTimeoutMs"
    | "missedPongs"
    | "observe"
  > {
  /** an id kept by a previous page; dropped (and a new session started) if the server no longer knows it */
  storedId?: string | null;
  /** the token when it is a string; a function's is given by tokenReady() */
  token?: string | null;
  /** the token is a function: an auth refusal is worth one retry with a fresh one */
  tokenRenewable?: boolean;
  canWebSocket?: boolean;
  canEventSource?: boolean;
  /** wall clock, ms */
  now?: () => number;
  random?: () => number;
}

/**
 * The client's rules without I/O: inputs (frames, closes, REST answers, fired
 * timers, commands) in, actions out through take(). TetherSession drives one.
 */
export interface TetherProtocol extends SessionFields {}
export declare class TetherProtocol {
  constructor(options?: ProtocolOptions);
  readonly state: ProtocolState;
  readonly ending: EndingState;
  readonly token: string | null;
  take(): ProtocolAction[];
  secondsLeft(): number | null;
  open(): void;
  activity(): void;
  sendMessage(content: string, options?: { role?: Role; metadata?: JsonObject }): void;
  setConfig(config: JsonObject): void;
  end(): void;
  disconnect(): void;
  endByBeacon(): boolean;
  wake(): void;
  tokenReady(token: string): void;
  tokenFailed(error: unknown): void;
  transportFailed(error: unknown): void;
  socketFailed(error: unknown): void;
  socketOpened(): void;
  socketClosed(code: number): void;
  streamOpened(): void;
  streamFailed(permanent: boolean): void;
  restAnswered(call: RestCall, answer: RestAnswer): void;
  restFailed(call: RestCall, error: unknown): void;
  timerFired(name: "reconnect" | "ping" | "connect"): void;
  receive(text: string): void;
}

export interface TetherSession extends SessionFields {}
export declare class TetherSession extends EventTarget {
  constructor(options: TetherOptions);
  readonly activityTracker: ActivityTracker | null;
  /** The sans-I/O protocol this session drives. */
  readonly protocol: TetherProtocol;
  /** Resolves with the session once attached; rejects if the client closes first. */
  readonly ready: Promise<SessionView>;
  /** Resolves when the client is done: the ended detail, or null after disconnect(). */
  readonly closed: Promise<EndedDetail | null>;

  open(): this;
  on<K extends TetherEventName>(name: K, fn: (detail: TetherEventMap[K]) => void): () => void;
  secondsLeft(): number | null;
  /**
   * Hand over something the page holds for this session: every end (server, client, idle
   * timeout, replaced, disconnect) and the page's pagehide release it. Returns a function
   * that releases it now; after the end it is released at once.
   */
  hold(thing: Holdable): () => void;
  activity(): void;
  sendMessage(content: string, options?: { role?: Role; metadata?: JsonObject }): void;
  setConfig(config: JsonObject): void;
  end(): Promise<EndedDetail | null>;
  disconnect(): void;
  endWithBeacon(): boolean;
}

export declare function connect(options: TetherOptions): TetherSession;

/** The `observe` option as the protocol keeps it (throws TypeError for a bad one). */
export declare function observeTarget(
  observe: TetherOptions["observe"],
  sessionId?: string | null,
): ObserveTarget | null;

/**
 * What the page holds for a session: a MediaStream (its tracks are stopped), a track, a
 * recorder or a source node (stopped), an AudioContext, a WebSocket or a peer connection
 * (closed), a timer id (cleared) or a function (called once).
 */
export type Holdable =
  | { getTracks(): { stop(): void }[] }
  | { close(): unknown; state?: string }
  | { stop(): void; state?: string }
  | number
  | (() => void);

/** The things held for one session, each released once (TetherSession.hold uses one). */
export declare class Holdings {
  constructor(
    env?: { clearTimeout?: (id: unknown) => void; clearInterval?: (id: unknown) => void },
    onError?: (error: unknown, thing: Holdable) => void,
  );
  readonly size: number;
  readonly done: boolean;
  hold(thing: Holdable): () => void;
  release(thing: Holdable): void;
  releaseAll(options?: { final?: boolean }): void;
}

// -- the warning dialog ----------------------------------------------------------------

export interface DialogTexts {
  title?: string;
  /** "{time}" is replaced by the countdown */
  idle?: string;
  max_duration?: string;
  continue?: string;
  dismiss?: string;
  end?: string;
}

export interface WarningDialogOptions {
  document?: Document;
  parent?: Element;
  texts?: DialogTexts;
  /** default true: add DIALOG_CSS as a <style> (false under a strict CSP: link tether-dialog.css) */
  injectStyles?: boolean;
  now?: () => number;
  setInterval?: (fn: () => void, ms: number) => unknown;
  clearInterval?: (id: unknown) => void;
}

export declare const DIALOG_CSS: string;

export declare class TetherWarningDialog {
  constructor(session: TetherSession, options?: WarningDialogOptions);
  readonly visible: boolean;
  readonly root: HTMLElement;
  readonly dialog: HTMLElement;
  readonly continueButton: HTMLButtonElement;
  readonly endButton: HTMLButtonElement;
  show(warning: WarningDetail): void;
  hide(): void;
  destroy(): void;
}

export declare function showWarningDialog(
  session: TetherSession,
  options?: WarningDialogOptions,
): TetherWarningDialog;
