// TetherSession over fake browser parts: activity, hiding the page, ending, bad server frames.
// Driven through fakes.mjs: every timer is the fake scheduler's.
import { test, describe } from "node:test";
import assert from "node:assert/strict";

import { endpoints } from "../../../src/tether/service/static/tether.js";
import { SID, BASE, SESSION, attached, rig, flush, jsonResponse } from "./fakes.mjs";

describe("activity", () => {
  test("user events become at most one activity frame per throttle window", async () => {
    const r = await attached();
    for (let i = 0; i < 50; i++) {
      r.window.dispatchEvent(new Event(i % 2 ? "mousemove" : "keydown"));
      r.sched.advance(50);
    }
    assert.equal(r.ws().types().filter((t) => t === "activity").length, 1);
    r.sched.advance(2500); // 5000 ms after the first
    r.window.dispatchEvent(new Event("scroll"));
    assert.equal(r.ws().types().filter((t) => t === "activity").length, 2);
  });

  test("the events and throttle are configurable", async () => {
    const r = await attached({ activity: { events: ["keydown"], throttleMs: 1000 } });
    r.window.dispatchEvent(new Event("mousemove"));
    assert.equal(r.ws().types().includes("activity"), false);
    r.window.dispatchEvent(new Event("keydown"));
    r.sched.advance(1000);
    r.window.dispatchEvent(new Event("keydown"));
    assert.equal(r.ws().types().filter((t) => t === "activity").length, 2);
  });

  test("activity tracking can be turned off", async () => {
    const r = await attached({ activity: { enabled: false } });
    r.window.dispatchEvent(new Event("keydown"));
    assert.equal(r.ws().types().includes("activity"), false);
    assert.equal(r.session.activityTracker, null);
  });

  test("a warning lets the user's next move through at once, and its countdown is live", async () => {
    const r = await attached();
    r.window.dispatchEvent(new Event("keydown"));
    r.sched.advance(1000);
    r.ws().frame({ type: "session.warning", reason: "idle_timeout", seconds_left: 120, ends_at: 99 });
    assert.equal(r.named("warning")[0].secondsLeft, 120);
    r.sched.advance(1000); // still inside the 5 s window of the keydown
    assert.equal(r.session.secondsLeft(), 119);
    r.window.dispatchEvent(new Event("mousemove"));
    assert.equal(r.ws().types().filter((t) => t === "activity").length, 2);
    r.sched.advance(29000);
    assert.equal(r.session.secondsLeft(), 90);
    r.ws().frame({ type: "session.active" });
    assert.equal(r.session.warning, null);
    assert.equal(r.named("active").length, 1);
  });

  test("activity() sends at once even inside the throttle window (a Continue button)", async () => {
    const r = await attached();
    r.window.dispatchEvent(new Event("keydown"));
    r.session.activity();
    assert.equal(r.ws().types().filter((t) => t === "activity").length, 2);
  });
});

describe("hiding and leaving the page", () => {
  test("endOnHide 'end': a hidden tab sends one text/plain beacon with the token to the end URL", async () => {
    const r = await attached({ endOnHide: "end" });
    r.document.hide();
    r.window.dispatchEvent(new Event("pagehide"));
    assert.equal(r.beacons.length, 1);
    assert.equal(r.beacons[0].url, endpoints(BASE, SID).end);
    assert.equal(r.beacons[0].data.type, "text/plain");
    assert.equal(await r.beacons[0].data.text(), "tok");
  });

  test("endOnHide 'end': pagehide alone sends the beacon too", async () => {
    const r = await attached({ endOnHide: "end" });
    r.window.dispatchEvent(new Event("pagehide"));
    assert.equal(r.beacons.length, 1);
  });

  test("a refused beacon falls back to fetch with keepalive and the same body", async () => {
    const r = await attached({ endOnHide: "end" });
    r.beaconAnswer = false;
    r.window.dispatchEvent(new Event("pagehide"));
    assert.equal(r.fetches.length, 1);
    assert.equal(r.fetches[0].url, endpoints(BASE, SID).end);
    assert.equal(r.fetches[0].init.keepalive, true);
    assert.equal(r.fetches[0].init.body, "tok");
    assert.equal(r.fetches[0].init.headers["Content-Type"], "text/plain");
  });

  test("endOnHide 'grace' (the default) sends nothing on hide or pagehide", async () => {
    const r = await attached();
    r.document.hide();
    r.window.dispatchEvent(new Event("pagehide"));
    assert.equal(r.beacons.length + r.fetches.length, 0);
    assert.deepEqual(r.named("ended"), []);
  });

  test("unload and beforeunload are never listened to", async () => {
    const r = await attached({ endOnHide: "end" });
    assert.ok(r.window.listened.includes("pagehide"));
    assert.equal(r.window.listened.includes("unload"), false);
    assert.equal(r.window.listened.includes("beforeunload"), false);
  });

  test("an unknown endOnHide value is refused", () => {
    assert.throws(() => rig({ endOnHide: "close" }), TypeError);
  });
});

describe("ending", () => {
  test("end() sends end and resolves with the server's ended detail", async () => {
    const r = await attached();
    const done = r.session.end();
    assert.equal(r.ws().types().at(-1), "end");
    r.ws().frame({ type: "session.ended", reason: "client_ended", archive_id: "arch" });
    r.ws().drop(1000);
    assert.deepEqual(await done, { reason: "client_ended", archiveId: "arch" });
    assert.equal(r.session.status, "closed");
  });

  test("end() before the socket opened cancels: no start is ever sent", async () => {
    const r = rig();
    r.session.open();
    await flush();
    assert.equal(await r.session.end(), null);
    r.ws().accept?.();
    assert.deepEqual(r.ws().sent, []);
    r.sched.advance(600000);
    await flush();
    assert.equal(r.sockets.length, 1);
  });

  test("end() while waiting for session.started sends end once the session is named", async () => {
    const r = rig();
    r.session.open();
    await flush();
    r.ws().accept();
    r.session.end();
    r.ws().frame({ type: "session.started", session: SESSION });
    assert.deepEqual(r.ws().types(), ["hello", "start", "end"]);
  });

  test("end() while disconnected ends over REST", async () => {
    const r = await attached();
    r.ws().drop(1006);
    r.fetchHandler = () => jsonResponse(200, { ended: true, reason: "client_ended" });
    const detail = await r.session.end();
    assert.equal(r.fetches[0].url, endpoints(BASE, SID).end);
    assert.equal(r.fetches[0].init.headers.Authorization, "Bearer tok");
    assert.deepEqual(detail, { reason: "client_ended", archiveId: null });
    r.sched.advance(600000);
    await flush();
    assert.equal(r.sockets.length, 1);
  });

  test("disconnect() closes without ending: no ended event, no reconnect", async () => {
    const r = await attached();
    r.session.disconnect();
    r.sched.advance(600000);
    await flush();
    assert.deepEqual(r.named("ended"), []);
    assert.equal(r.sockets.length, 1);
    assert.equal(r.ws().clientClosed, 1000);
    assert.equal(await r.session.closed, null);
  });

  test("a message over the server's max_message_bytes is refused locally instead of closing with 1009", async () => {
    const r = await attached();
    assert.throws(() => r.session.sendMessage("x".repeat(70000)), RangeError);
    assert.equal(r.ws().types().includes("message"), false);
  });

  test("commands after the end throw", async () => {
    const r = await attached();
    r.ws().frame({ type: "session.ended", reason: "admin" });
    assert.throws(() => r.session.sendMessage("late"), /over/);
  });
});

describe("server frames", () => {
  test("unknown frame types are ignored; malformed frames become error events", async () => {
    const r = await attached();
    r.ws().frame({ type: "session.paused" });
    assert.deepEqual(r.named("error"), []);
    r.ws().frame("{oops");
    r.ws().frame({ type: "session.warning", reason: "idle_timeout" });
    assert.deepEqual(
      r.named("error").map((e) => e.code),
      ["bad_server_frame", "bad_server_frame"],
    );
    assert.equal(r.session.warning, null);
  });
});
