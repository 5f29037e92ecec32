// tether/drivers.js: the thin I/O edges the protocol is driven through.
//
// Each driver owns one browser object (a WebSocket, an EventSource, fetch) and
// only translates: its events become protocol inputs (through `report`), and
// nothing here decides anything. A driver that is closed forgets its object
// first, so that object's late events are never reported.
import { endpoints } from "./urls.js";

const ES_CLOSED = 2;

/** One WebSocket: `report.opened()`, `report.message(text)`, `report.closed(code)`. */
export class WebSocketDriver {
  /** Throws what `new WebSocket(url)` throws. */
  constructor(WebSocketClass, url, report) {
    const ws = new WebSocketClass(url);
    this.ws = ws;
    ws.onopen = () => {
      if (this.ws === ws) report.opened();
    };
    ws.onmessage = (event) => {
      if (this.ws === ws) report.message(event.data);
    };
    ws.onerror = () => {}; // a close event always follows
    ws.onclose = (event) => {
      if (this.ws !== ws) return;
      this.ws = null;
      report.closed(event.code);
    };
  }

  send(text) {
    this.ws?.send(text);
  }

  /** Close without reporting it (the protocol already knows). */
  close(code) {
    const ws = this.ws;
    this.ws = null;
    if (ws === null) return;
    try {
      if (code === undefined) ws.close();
      else ws.close(code);
    } catch {
      // already closing
    }
  }
}

/**
 * One EventSource: `report.opened()`, `report.message(text)`,
 * `report.failed(permanent)`; a permanent failure closes it first.
 */
export class SseDriver {
  constructor(EventSourceClass, url, report) {
    const es = new EventSourceClass(url);
    this.es = es;
    es.onopen = () => {
      if (this.es === es) report.opened();
    };
    es.onmessage = (event) => {
      if (this.es === es) report.message(event.data);
    };
    es.onerror = () => {
      if (this.es !== es) return;
      const permanent = es.readyState === ES_CLOSED; // EventSource gave up
      if (permanent) this.close();
      report.failed(permanent);
    };
  }

  close() {
    const es = this.es;
    this.es = null;
    if (es !== null) es.close();
  }
}

/** Method and URL of each REST call the protocol asks for. */
const REST_CALLS = {
  start: ["POST", (urls) => urls.sessions],
  lookup: ["GET", (urls) => urls.session],
  diagnose: ["GET", (urls) => urls.session],
  end: ["POST", (urls) => urls.end],
  activity: ["POST", (urls) => urls.activity],
  message: ["POST", (urls) => urls.messages],
  config: ["PUT", (urls) => urls.config],
};

/** The calls whose answer the protocol reads; the others only report a failure. */
const ANSWERED = new Set(["start", "lookup", "diagnose", "end"]);

/**
 * Make the REST call `call` with the bearer `token`; resolves with
 * `{ok, status, body, retryAfterS}` (body: the JSON, or null for a refusal
 * that is not JSON), or null for calls whose answer is not read. Rejects when
 * the server cannot be reached, or a success is not JSON.
 */
export async function restCall(fetch, base, sessionId, token, call, body) {
  if (typeof fetch !== "function") throw new Error("fetch is not available");
  const [method, url] = REST_CALLS[call];
  const headers = { Authorization: `Bearer ${token}` };
  const init = { method, headers };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const response = await fetch(url(endpoints(base, sessionId)), init);
  if (!ANSWERED.has(call)) return null;
  let json = null;
  if (response.ok) {
    json = await response.json();
  } else {
    try {
      json = await response.json();
    } catch {
      json = null;
    }
  }
  const retryAfterS = Number(response.headers?.get?.("Retry-After"));
  return { ok: response.ok, status: response.status, body: json, retryAfterS };
}
