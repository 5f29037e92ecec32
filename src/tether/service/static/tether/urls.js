// tether/urls.js: every URL the client uses, from the server's base. Pure.

/** The server's API root as an absolute URL ending in "/". */
export function apiBase(url, location = globalThis.location) {
  const fallback = location && location.origin ? `${location.origin}/` : undefined;
  const resolved = new URL(url ?? fallback ?? "", location ? location.href : undefined);
  if (!resolved.pathname.endsWith("/")) resolved.pathname += "/";
  resolved.search = "";
  resolved.hash = "";
  return resolved.href;
}

/** Every URL the client uses, for the server at `base` and (optionally) one session. */
export function endpoints(base, sessionId) {
  const root = apiBase(base, null);
  const ws = new URL("ws", root);
  ws.protocol = ws.protocol === "https:" ? "wss:" : "ws:";
  const out = { ws: ws.href, sessions: new URL("api/v1/sessions", root).href };
  if (sessionId !== undefined && sessionId !== null) {
    const session = `${out.sessions}/${encodeURIComponent(sessionId)}`;
    Object.assign(out, {
      session,
      events: `${session}/events`,
      end: `${session}/end`,
      activity: `${session}/activity`,
      heartbeat: `${session}/heartbeat`,
      messages: `${session}/messages`,
      config: `${session}/config`,
    });
  }
  return out;
}

/** The event-stream URL: EventSource cannot send headers, so the token rides as ?token=. */
export function eventsUrl(base, sessionId, token, lastEventId = 0) {
  const url = new URL(endpoints(base, sessionId).events);
  url.searchParams.set("token", token);
  if (Number.isInteger(lastEventId) && lastEventId > 0) {
    url.searchParams.set("last_event_id", String(lastEventId));
  }
  return url.href;
}

/** What `navigator.sendBeacon` sends to end a session: the raw token as text/plain. */
export function beaconRequest(base, sessionId, token) {
  return { url: endpoints(base, sessionId).end, body: token, contentType: "text/plain" };
}
