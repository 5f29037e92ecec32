// The pure parts of tether.js against the shared fixtures in tests/fixtures/client/
// (tests/client/test_client_fixtures.py checks the same fixtures against the server).
import { test, describe } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";

import * as tether from "../../../src/tether/service/static/tether.js";
import {
  DEFAULTS,
  PROTOCOL_VERSION,
  Throttle,
  TetherFrameError,
  ActivityTracker,
  CLOSE_CODES,
  SERVER_FRAME_TYPES,
  apiBase,
  backoffDelay,
  beaconRequest,
  clientFrames,
  closeInfo,
  endpoints,
  eventsUrl,
  formatCountdown,
  parseServerFrame,
  shouldReconnect,
} from "../../../src/tether/service/static/tether.js";

const fixture = (name) =>
  JSON.parse(readFileSync(new URL(`../../../tests/fixtures/client/${name}`, import.meta.url)));

describe("defaults", () => {
  const defaults = fixture("defaults.json");

  test("DEFAULTS match defaults.json, which the Python side checks against the server", () => {
    assert.deepEqual(
      {
        heartbeat_interval_s: DEFAULTS.heartbeatIntervalS,
        presence_timeout_s: DEFAULTS.presenceTimeoutS,
        activity_throttle_ms: DEFAULTS.activityThrottleMs,
        activity_events: [...DEFAULTS.activityEvents],
        backoff_base_ms: DEFAULTS.backoffBaseMs,
        backoff_cap_ms: DEFAULTS.backoffCapMs,
        ws_failures_before_sse: DEFAULTS.wsFailuresBeforeSse,
        connect_timeout_ms: DEFAULTS.connectTimeoutMs,
        missed_pongs: DEFAULTS.missedPongs,
        end_on_hide: DEFAULTS.endOnHide,
        observe_wait_s: DEFAULTS.observeWaitS,
      },
      Object.fromEntries(Object.entries(defaults).filter(([key]) => !key.startsWith("_"))),
    );
  });

  test("the protocol version is 1 and DEFAULTS cannot be changed by accident", () => {
    assert.equal(PROTOCOL_VERSION, 1);
    assert.ok(Object.isFrozen(DEFAULTS));
    assert.ok(Object.isFrozen(DEFAULTS.activityEvents));
  });
});

describe("backoffDelay", () => {
  const { cases } = fixture("backoff.json");

  for (const c of cases) {
    test(`backoff fixture: ${c.name}`, () => {
      assert.equal(backoffDelay(c.attempt, { base: c.base, cap: c.cap }, () => c.random), c.expected);
    });
  }

  test("backoff uses the default base and cap when none are given", () => {
    const r = () => 0.999999;
    assert.equal(backoffDelay(0, {}, r), Math.floor(0.999999 * DEFAULTS.backoffBaseMs));
    assert.equal(backoffDelay(30, undefined, r), Math.floor(0.999999 * DEFAULTS.backoffCapMs));
  });

  test("backoff jitter spreads over the whole range [0, ceiling) (full jitter, not equal jitter)", () => {
    const delays = Array.from({ length: 11 }, (_, i) =>
      backoffDelay(3, { base: 100, cap: 10000 }, () => i / 11),
    );
    assert.equal(delays[0], 0);
    assert.ok(delays[10] >= 700 && delays[10] < 800);
    assert.deepEqual([...delays].sort((a, b) => a - b), delays);
  });

  test("backoff refuses a negative or non-finite base or cap", () => {
    assert.throws(() => backoffDelay(0, { base: -1 }), RangeError);
    assert.throws(() => backoffDelay(0, { cap: Infinity }), RangeError);
  });
});

describe("Throttle", () => {
  const clock = () => {
    let t = 1000;
    const now = () => t;
    now.advance = (ms) => {
      t += ms;
    };
    return now;
  };

  test("throttle lets the first one through and blocks the rest of the window", () => {
    const now = clock();
    const throttle = new Throttle(5000, now);
    assert.equal(throttle.take(), true);
    assert.equal(throttle.take(), false);
    now.advance(4999);
    assert.equal(throttle.take(), false);
    assert.equal(throttle.remainingMs(), 1);
  });

  test("throttle opens again exactly when the interval has passed and restarts the window", () => {
    const now = clock();
    const throttle = new Throttle(5000, now);
    throttle.take();
    now.advance(5000);
    assert.equal(throttle.take(), true);
    now.advance(1000);
    assert.equal(throttle.take(), false);
  });

  test("a blocked take does not extend the window", () => {
    const now = clock();
    const throttle = new Throttle(5000, now);
    throttle.take();
    now.advance(3000);
    throttle.take();
    now.advance(2000);
    assert.equal(throttle.take(), true);
  });

  test("throttle reset lets the next one through at once; mark restarts the window", () => {
    const now = clock();
    const throttle = new Throttle(5000, now);
    throttle.take();
    throttle.reset();
    assert.equal(throttle.take(), true);
    now.advance(6000);
    throttle.mark();
    assert.equal(throttle.take(), false);
  });

  test("a clock that jumps backwards does not block the throttle", () => {
    const now = clock();
    const throttle = new Throttle(5000, now);
    throttle.take();
    now.advance(-60000);
    assert.equal(throttle.take(), true);
  });

  test("at most one per interval over a burst of 1000 calls in 20 s", () => {
    const now = clock();
    const throttle = new Throttle(5000, now);
    let allowed = 0;
    for (let i = 0; i < 1000; i++) {
      if (throttle.take()) allowed += 1;
      now.advance(20);
    }
    assert.equal(allowed, 4);
  });

  test("throttle refuses a negative interval", () => {
    assert.throws(() => new Throttle(-1), RangeError);
  });
});

describe("ActivityTracker", () => {
  test("activity tracker calls back once per throttle window for any listened event", () => {
    let t = 0;
    const target = new EventTarget();
    let calls = 0;
    const tracker = new ActivityTracker(target, () => (calls += 1), {
      events: ["keydown", "scroll"],
      throttleMs: 5000,
      now: () => t,
    });
    tracker.start();
    target.dispatchEvent(new Event("keydown"));
    target.dispatchEvent(new Event("scroll"));
    target.dispatchEvent(new Event("mousemove")); // not listened to
    assert.equal(calls, 1);
    t = 5000;
    target.dispatchEvent(new Event("scroll"));
    assert.equal(calls, 2);
    tracker.stop();
    t = 20000;
    target.dispatchEvent(new Event("keydown"));
    assert.equal(calls, 2);
  });
});

describe("ActivityTracker focus", () => {
  test("focus counts when the window itself gets it, not when a script moves focus inside the page", () => {
    const target = new EventTarget();
    let calls = 0;
    const tracker = new ActivityTracker(target, () => (calls += 1), { events: ["focus"], throttleMs: 0 });
    tracker.start();
    tracker.handler({ type: "focus", target: { tagName: "BUTTON" } }); // captured from an element
    assert.equal(calls, 0);
    target.dispatchEvent(new Event("focus"));
    assert.equal(calls, 1);
  });
});

describe("formatCountdown", () => {
  for (const c of fixture("countdown.json").cases) {
    test(`countdown fixture: ${c.seconds} s reads ${c.text}`, () => {
      assert.equal(formatCountdown(Number(c.seconds)), c.text);
    });
  }
});

describe("close codes", () => {
  const { codes, unknown } = fixture("close_codes.json");

  for (const c of [...codes, ...unknown]) {
    test(`close ${c.code}: reconnect ${c.reconnect}, reason ${c.reason}`, () => {
      assert.deepEqual({ ...closeInfo(c.code) }, { reconnect: c.reconnect, reason: c.reason });
      assert.equal(shouldReconnect(c.code), c.reconnect !== "no");
    });
  }

  test("CLOSE_CODES holds exactly the fixture's known codes", () => {
    assert.deepEqual(
      Object.keys(CLOSE_CODES).map(Number).sort((a, b) => a - b),
      codes.map((c) => c.code).sort((a, b) => a - b),
    );
  });

  test("never reconnect after an end (1000, 4001-4004) or an unknown session (4404)", () => {
    for (const code of [1000, 4001, 4002, 4003, 4004, 4404]) assert.equal(shouldReconnect(code), false);
    for (const code of [1001, 1006, 1011]) assert.equal(shouldReconnect(code), true);
  });
});

describe("parseServerFrame", () => {
  const frames = fixture("frames.json");
  const textOf = (c) => (c.text !== undefined ? c.text : JSON.stringify(c.frame));

  for (const c of frames.valid) {
    test(`valid frame: ${c.name}`, () => {
      assert.deepEqual(parseServerFrame(textOf(c)), c.expect);
    });
  }

  for (const c of frames.invalid) {
    test(`invalid frame (${c.code}): ${c.name}`, () => {
      assert.throws(
        () => parseServerFrame(textOf(c)),
        (exc) => {
          assert.ok(exc instanceof TetherFrameError, `not a TetherFrameError: ${exc}`);
          assert.equal(exc.code, c.code);
          assert.ok(exc.message.includes(c.message_includes), `"${exc.message}" lacks "${c.message_includes}"`);
          return true;
        },
      );
    });
  }

  test("every required field of every frame type is enforced", () => {
    let checked = 0;
    for (const c of frames.valid) {
      for (const name of frames.required[c.frame.type]) {
        const broken = { ...c.frame };
        delete broken[name];
        assert.throws(
          () => parseServerFrame(JSON.stringify(broken)),
          (exc) => exc.code === "invalid_frame" && exc.message.includes(name),
          `${c.name} without ${name}`,
        );
        checked += 1;
      }
    }
    assert.ok(checked >= 12);
  });

  test("the optional fields are optional: each valid frame still parses without them", () => {
    for (const c of frames.valid) {
      for (const name of frames.optional[c.frame.type] ?? []) {
        const trimmed = { ...c.frame };
        delete trimmed[name];
        assert.equal(parseServerFrame(JSON.stringify(trimmed)).type, c.frame.type);
      }
    }
  });

  test("a session or message missing one of its required fields is refused", () => {
    const started = frames.valid.find((c) => c.frame.type === "session.started").frame;
    for (const name of frames.session_required) {
      const session = { ...started.session };
      delete session[name];
      assert.throws(() => parseServerFrame(JSON.stringify({ ...started, session })), /session/);
    }
    const message = frames.valid.find((c) => c.frame.type === "transcript.message").frame;
    for (const name of frames.message_required) {
      const broken = { ...message.message };
      delete broken[name];
      assert.throws(
        () => parseServerFrame(JSON.stringify({ ...message, message: broken })),
        (exc) => exc.code === "invalid_frame" && exc.message.includes(name),
      );
    }
  });

  test("the parser knows exactly the frame types the fixtures list", () => {
    assert.deepEqual([...SERVER_FRAME_TYPES].sort(), Object.keys(frames.required).sort());
  });

  test("non-string input is a bad_json error, not a crash", () => {
    assert.throws(() => parseServerFrame(undefined), (exc) => exc.code === "bad_json");
  });
});

describe("client frames", () => {
  for (const c of fixture("client_frames.json").cases) {
    test(`client frame: ${c.name}`, () => {
      assert.deepEqual(clientFrames[c.build](...c.args), c.frame);
    });
  }
});

describe("endpoints", () => {
  const data = fixture("endpoints.json");

  for (const c of data.cases) {
    test(`endpoints: ${c.name}`, () => {
      assert.equal(apiBase(c.base, null), c.api_base);
      assert.deepEqual(endpoints(c.base, data.session_id), c.endpoints);
      assert.equal(eventsUrl(c.base, data.session_id, data.token), c.events_url);
      assert.equal(eventsUrl(c.base, data.session_id, data.token, 3), c.events_url_after_3);
      assert.deepEqual(beaconRequest(c.base, data.session_id, data.token), c.beacon);
    });
  }

  test("every endpoint in the fixture has an HTTP method the server checks", () => {
    const keys = Object.keys(endpoints("https://a.example", data.session_id)).filter((k) => k !== "ws");
    assert.deepEqual(keys.sort(), Object.keys(data.methods).sort());
  });

  test("without a base the page's origin is used, not the page's path", () => {
    const location = { origin: "https://app.example", href: "https://app.example/chat/room?x=1" };
    assert.equal(apiBase(undefined, location), "https://app.example/");
    assert.equal(apiBase("/tether", location), "https://app.example/tether/");
  });
});

describe("tether.d.ts", () => {
  test("tether.d.ts declares exactly the module's runtime exports", () => {
    const dts = readFileSync(
      new URL("../../../src/tether/service/static/tether.d.ts", import.meta.url),
      "utf8",
    );
    const declared = [...dts.matchAll(/^export declare (?:const|function|class) (\w+)/gm)].map((m) => m[1]);
    assert.deepEqual(declared.sort(), Object.keys(tether).sort());
  });
});
