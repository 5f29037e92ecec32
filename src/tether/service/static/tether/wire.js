// tether/wire.js: the protocol's wire (docs/protocol.md): close codes and what
// they mean, server frames decoded and checked, client frames built. Pure.

export const PROTOCOL_VERSION = 1;

/**
 * Every close code a tether client can see and what to do about it: "yes"
 * reconnect (and resume), "pause" reconnect after the server's retry_after_s,
 * "no" never. `reason` is the session's end reason where the code announces one.
 */
export const CLOSE_CODES = Object.freeze({
  1000: Object.freeze({ reconnect: "no", reason: "client_ended" }),
  1001: Object.freeze({ reconnect: "yes", reason: "server_shutdown" }),
  1002: Object.freeze({ reconnect: "no", reason: null }),
  1003: Object.freeze({ reconnect: "no", reason: null }),
  1005: Object.freeze({ reconnect: "yes", reason: null }),
  1006: Object.freeze({ reconnect: "yes", reason: null }),
  1007: Object.freeze({ reconnect: "no", reason: null }),
  1008: Object.freeze({ reconnect: "no", reason: null }),
  1009: Object.freeze({ reconnect: "no", reason: null }),
  1010: Object.freeze({ reconnect: "no", reason: null }),
  1011: Object.freeze({ reconnect: "yes", reason: "error" }),
  1012: Object.freeze({ reconnect: "yes", reason: null }),
  1013: Object.freeze({ reconnect: "pause", reason: null }),
  1014: Object.freeze({ reconnect: "yes", reason: null }),
  1015: Object.freeze({ reconnect: "no", reason: null }),
  4001: Object.freeze({ reconnect: "no", reason: "idle_timeout" }),
  4002: Object.freeze({ reconnect: "no", reason: "max_duration" }),
  4003: Object.freeze({ reconnect: "no", reason: "replaced" }),
  4004: Object.freeze({ reconnect: "no", reason: "admin" }),
  4029: Object.freeze({ reconnect: "pause", reason: null }),
  4404: Object.freeze({ reconnect: "no", reason: null }),
});

const UNKNOWN_CLOSE = Object.freeze({ reconnect: "no", reason: null });

/** What a close code means for the client: `{reconnect: "yes" | "pause" | "no", reason}`. */
export function closeInfo(code) {
  return Object.hasOwn(CLOSE_CODES, code) ? CLOSE_CODES[code] : UNKNOWN_CLOSE;
}

/** Whether to reconnect (and resume) after a close with `code`; unknown codes: no. */
export function shouldReconnect(code) {
  return closeInfo(code).reconnect !== "no";
}

/** A server frame the client cannot use; `code` is bad_json, unknown_type or invalid_frame. */
export class TetherFrameError extends Error {
  constructor(code, message, frameType = null) {
    super(message);
    this.name = "TetherFrameError";
    this.code = code;
    this.frameType = frameType;
  }
}

const isObject = (v) => typeof v === "object" && v !== null && !Array.isArray(v);
const isNumber = (v) => typeof v === "number" && Number.isFinite(v);

function field(frame, name, check, what) {
  const value = frame[name];
  if (!check(value)) {
    const got = value === undefined ? "missing" : `got ${JSON.stringify(value)}`;
    throw new TetherFrameError(
      "invalid_frame",
      `${frame.type}: ${name} must be ${what} (${got})`,
      frame.type,
    );
  }
  return value;
}

const nonEmptyString = [(v) => typeof v === "string" && v.length > 0, "a non-empty string"];
const anyString = [(v) => typeof v === "string", "a string"];
const finiteNumber = [isNumber, "a finite number"];
const positiveNumber = [(v) => isNumber(v) && v > 0, "a positive number"];
const nonNegative = [(v) => isNumber(v) && v >= 0, "a number >= 0"];
const jsonObject = [isObject, "an object"];

function checkSession(frame, session) {
  field(frame, "session", ...jsonObject);
  const where = { type: `${frame.type}.session`, ...session };
  field(where, "id", ...nonEmptyString);
  field(where, "state", ...nonEmptyString);
  return session;
}

function checkMessage(type, message, name = "message") {
  field({ type, [name]: message }, name, ...jsonObject);
  const where = { type: `${type}.${name}`, ...message };
  field(where, "seq", (v) => Number.isInteger(v) && v >= 1, "an integer >= 1");
  field(where, "role", ...nonEmptyString);
  field(where, "content", ...anyString);
  field(where, "ts", ...finiteNumber);
  return message;
}

const SERVER_FRAMES = {
  welcome: (f) => ({
    type: f.type,
    v: field(f, "v", Number.isInteger, "an integer"),
    heartbeatIntervalS: field(f, "heartbeat_interval_s", ...positiveNumber),
    maxMessageBytes:
      f.max_message_bytes === undefined
        ? null
        : field(f, "max_message_bytes", (v) => Number.isInteger(v) && v > 0, "a positive integer"),
  }),
  "session.started": (f) => ({ type: f.type, session: checkSession(f, f.session) }),
  "session.resumed": (f) => {
    const session = checkSession(f, f.session);
    const tail = field(f, "transcript_tail", Array.isArray, "an array");
    return {
      type: f.type,
      session,
      transcriptTail: tail.map((m, i) => checkMessage(f.type, m, `transcript_tail[${i}]`)),
    };
  },
  "session.config": (f) => ({ type: f.type, config: field(f, "config", ...jsonObject) }),
  "session.warning": (f) => ({
    type: f.type,
    reason: field(f, "reason", ...nonEmptyString),
    secondsLeft: field(f, "seconds_left", ...nonNegative),
    endsAt: field(f, "ends_at", ...finiteNumber),
  }),
  "session.active": (f) => ({ type: f.type }),
  "session.ended": (f) => ({
    type: f.type,
    reason: field(f, "reason", ...nonEmptyString),
    archiveId:
      f.archive_id === undefined || f.archive_id === null
        ? null
        : field(f, "archive_id", ...nonEmptyString),
  }),
  "transcript.message": (f) => ({ type: f.type, message: checkMessage(f.type, f.message) }),
  "reply.delta": (f) => ({
    type: f.type,
    replyId: field(f, "reply_id", ...nonEmptyString),
    role: field(f, "role", ...nonEmptyString),
    text: field(f, "text", ...anyString),
  }),
  app: (f) => ({ type: f.type, name: field(f, "name", ...nonEmptyString), data: f.data ?? null }),
  pong: (f) => ({ type: f.type }),
  error: (f) => ({
    type: f.type,
    code: field(f, "code", ...nonEmptyString),
    message: field(f, "message", ...anyString),
    reason: typeof f.reason === "string" ? f.reason : null,
    retryAfterS: isNumber(f.retry_after_s) && f.retry_after_s >= 0 ? f.retry_after_s : null,
  }),
};

/** The frame types a tether server sends. */
export const SERVER_FRAME_TYPES = Object.freeze(Object.keys(SERVER_FRAMES));

/**
 * Decode and check one server frame (WebSocket text or an SSE `data:` line).
 * Returns `{type, ...}` with camelCase fields (nested session and message
 * objects keep the wire's names); unknown fields are ignored. Throws
 * TetherFrameError for anything else: bad_json (not a JSON object),
 * unknown_type (missing or unknown `type`), invalid_frame (a field is wrong).
 */
export function parseServerFrame(text) {
  return decodeServerFrame(parseFrameJson(text));
}

/** One server frame's text as its JSON object, before any check of its type (bad_json). */
export function parseFrameJson(text) {
  if (typeof text !== "string") {
    throw new TetherFrameError("bad_json", "server frames are JSON text");
  }
  let data;
  try {
    data = JSON.parse(text);
  } catch (exc) {
    throw new TetherFrameError("bad_json", `server frame is not JSON: ${exc.message}`);
  }
  if (!isObject(data)) {
    throw new TetherFrameError("bad_json", "server frame is not a JSON object");
  }
  return data;
}

/** Check one server frame already parsed from JSON (see parseServerFrame). */
export function decodeServerFrame(data) {
  const type = data.type;
  if (typeof type !== "string" || !Object.hasOwn(SERVER_FRAMES, type)) {
    const shown = type === undefined ? "missing" : JSON.stringify(type);
    throw new TetherFrameError("unknown_type", `unknown server frame type (${shown})`);
  }
  return SERVER_FRAMES[type](data);
}

/** Client frames exactly as the server's models (src/tether/service/frames.py) take them. */
export const clientFrames = Object.freeze({
  hello: (token) => ({ type: "hello", token, v: PROTOCOL_VERSION }),
  start: (kind, config) => {
    const frame = { type: "start" };
    if (kind !== undefined && kind !== null) frame.kind = kind;
    if (config !== undefined && config !== null) frame.config = config;
    return frame;
  },
  resume: (sessionId, after) =>
    Number.isInteger(after) && after > 0
      ? { type: "resume", session_id: sessionId, after }
      : { type: "resume", session_id: sessionId },
  activity: () => ({ type: "activity" }),
  ping: () => ({ type: "ping" }),
  message: (role, content, metadata) =>
    metadata === undefined || metadata === null
      ? { type: "message", role, content }
      : { type: "message", role, content, metadata },
  observe: (target) =>
    target.sessionId !== undefined && target.sessionId !== null
      ? { type: "observe", session_id: target.sessionId }
      : { type: "observe", user: target.user ?? "me", wait_s: target.waitS },
  config: (config) => ({ type: "config", config }),
  end: () => ({ type: "end" }),
});

