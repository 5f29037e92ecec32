// The ready-made warning dialog, on a minimal fake DOM and a fake session.
import { test, describe } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";

import {
  DIALOG_CSS,
  TetherWarningDialog,
  showWarningDialog,
} from "../../../src/tether/service/static/tether.js";

class FakeNode {
  constructor(doc, tagName) {
    this.ownerDocument = doc;
    this.tagName = tagName;
    this.children = [];
    this.attributes = new Map();
    this.listeners = new Map();
    this.parent = null;
    this.hidden = false;
    this.className = "";
    this.ownText = "";
  }
  setAttribute(name, value) {
    this.attributes.set(name, String(value));
  }
  getAttribute(name) {
    return this.attributes.has(name) ? this.attributes.get(name) : null;
  }
  hasAttribute(name) {
    return this.attributes.has(name);
  }
  appendChild(child) {
    child.parent = this;
    this.children.push(child);
    return child;
  }
  remove() {
    if (this.parent) this.parent.children = this.parent.children.filter((c) => c !== this);
    this.parent = null;
  }
  get textContent() {
    return this.children.length ? this.children.map((c) => c.textContent).join("") : this.ownText;
  }
  set textContent(value) {
    this.children = [];
    this.ownText = String(value);
  }
  addEventListener(name, fn) {
    if (!this.listeners.has(name)) this.listeners.set(name, []);
    this.listeners.get(name).push(fn);
  }
  dispatch(name, event = {}) {
    const full = { defaultPrevented: false, preventDefault() { this.defaultPrevented = true; }, ...event };
    for (const fn of this.listeners.get(name) ?? []) fn(full);
    return full;
  }
  focus() {
    this.ownerDocument.activeElement = this;
  }
  click() {
    this.dispatch("click");
  }
  *walk() {
    yield this;
    for (const child of this.children) yield* child.walk();
  }
}

function fakeDocument() {
  const doc = {
    createElement: (tag) => new FakeNode(doc, tag),
    createTextNode: (text) => {
      const node = new FakeNode(doc, "#text");
      node.ownText = text;
      return node;
    },
    querySelector: (selector) => {
      assert.equal(selector, "style[data-tether-dialog]");
      return [...doc.head.walk()].find((n) => n.tagName === "style" && n.hasAttribute("data-tether-dialog")) ?? null;
    },
    activeElement: null,
  };
  doc.head = new FakeNode(doc, "head");
  doc.body = new FakeNode(doc, "body");
  return doc;
}

function fakeSession(now) {
  const target = new EventTarget();
  const calls = [];
  return {
    calls,
    warning: null,
    env: { now },
    on(name, fn) {
      const listener = (event) => fn(event.detail);
      target.addEventListener(name, listener);
      return () => target.removeEventListener(name, listener);
    },
    fire(name, detail) {
      target.dispatchEvent(new CustomEvent(name, { detail }));
    },
    activity() {
      calls.push("activity");
    },
    end() {
      calls.push("end");
      return Promise.resolve(null);
    },
  };
}

function setup(options = {}) {
  let t = 1_000_000;
  const now = () => t;
  const doc = fakeDocument();
  const session = fakeSession(now);
  const intervals = [];
  const dialog = new TetherWarningDialog(session, {
    document: doc,
    setInterval: (fn, ms) => {
      intervals.push({ fn, ms, cleared: false });
      return intervals.length - 1;
    },
    clearInterval: (id) => {
      intervals[id].cleared = true;
    },
    ...options,
  });
  const tick = (ms) => {
    t += ms;
    for (const i of intervals) if (!i.cleared) i.fn();
  };
  const warn = (reason = "idle_timeout", secondsLeft = 120) =>
    session.fire("warning", { reason, secondsLeft, endsAt: 0, deadline: t + secondsLeft * 1000 });
  return { doc, session, dialog, intervals, tick, warn, now };
}

describe("warning dialog", () => {
  test("it stays hidden until a warning, then shows as an accessible alertdialog with focus on Continue", () => {
    const { dialog, doc, warn } = setup();
    assert.equal(dialog.visible, false);
    const outside = doc.createElement("input");
    outside.focus();
    warn();
    assert.equal(dialog.visible, true);
    assert.equal(dialog.dialog.getAttribute("role"), "alertdialog");
    assert.equal(dialog.dialog.getAttribute("aria-modal"), "true");
    const title = [...doc.body.walk()].find((n) => n.getAttribute("id") === dialog.dialog.getAttribute("aria-labelledby"));
    const text = [...doc.body.walk()].find((n) => n.getAttribute("id") === dialog.dialog.getAttribute("aria-describedby"));
    assert.equal(title.textContent, "Are you still there?");
    assert.match(text.textContent, /ends in 2:00/);
    assert.equal(doc.activeElement, dialog.continueButton);
    assert.equal(dialog.continueButton.textContent, "Continue");
    assert.equal(dialog.endButton.textContent, "End now");
  });

  test("the countdown ticks every second from the warning's deadline, not from counting ticks", () => {
    const { dialog, intervals, tick, warn } = setup();
    warn("idle_timeout", 120);
    assert.equal(intervals.length, 1);
    assert.equal(intervals[0].ms, 1000);
    tick(1000);
    assert.equal(dialog.countdownText, "1:59");
    tick(30000); // a late timer (background tab): the text is still right
    assert.equal(dialog.countdownText, "1:29");
    tick(200000);
    assert.equal(dialog.countdownText, "0:00");
  });

  test("Continue sends activity and hides; the interval stops", () => {
    const { dialog, session, intervals, warn } = setup();
    warn();
    dialog.continueButton.click();
    assert.deepEqual(session.calls, ["activity"]);
    assert.equal(dialog.visible, false);
    assert.equal(intervals[0].cleared, true);
  });

  test("End now ends the session and hides", () => {
    const { dialog, session, warn } = setup();
    warn();
    dialog.endButton.click();
    assert.deepEqual(session.calls, ["end"]);
    assert.equal(dialog.visible, false);
  });

  test("it hides on active and on ended, and focus goes back where it was", () => {
    const { dialog, doc, session, warn } = setup();
    const input = doc.createElement("input");
    input.focus();
    warn();
    session.fire("active", {});
    assert.equal(dialog.visible, false);
    assert.equal(doc.activeElement, input);
    warn();
    session.fire("ended", { reason: "idle_timeout" });
    assert.equal(dialog.visible, false);
  });

  test("Escape continues and Tab keeps focus inside the dialog", () => {
    const { dialog, doc, session, warn } = setup();
    warn();
    const tab = dialog.dialog.dispatch("keydown", { key: "Tab" });
    assert.equal(tab.defaultPrevented, true);
    assert.equal(doc.activeElement, dialog.endButton);
    dialog.dialog.dispatch("keydown", { key: "Tab" });
    assert.equal(doc.activeElement, dialog.continueButton);
    dialog.dialog.dispatch("keydown", { key: "Escape" });
    assert.deepEqual(session.calls, ["activity"]);
    assert.equal(dialog.visible, false);
  });

  test("a max_duration warning cannot be postponed: the button says OK and sends no activity", () => {
    const { dialog, session, warn } = setup();
    warn("max_duration", 60);
    assert.equal(dialog.continueButton.textContent, "OK");
    assert.match(dialog.textEl.textContent, /time limit in 1:00/);
    dialog.continueButton.click();
    assert.deepEqual(session.calls, []);
    assert.equal(dialog.visible, false);
  });

  test("texts can be replaced", () => {
    const { dialog, warn } = setup({ texts: { title: "Noch da?", idle: "Ende in {time}.", continue: "Weiter" } });
    warn("idle_timeout", 5);
    assert.equal(dialog.titleEl.textContent, "Noch da?");
    assert.equal(dialog.textEl.textContent, "Ende in 0:05.");
    assert.equal(dialog.continueButton.textContent, "Weiter");
  });

  test("a warning already in force when the dialog is attached is shown at once", () => {
    let t = 0;
    const doc = fakeDocument();
    const session = fakeSession(() => t);
    session.warning = { reason: "idle_timeout", secondsLeft: 30, endsAt: 0, deadline: 30000 };
    const dialog = showWarningDialog(session, { document: doc, setInterval: () => 0, clearInterval: () => {} });
    assert.equal(dialog.visible, true);
    assert.equal(dialog.countdownText, "0:30");
  });

  test("styles are injected once per document and can be turned off", () => {
    const { doc, session } = setup();
    new TetherWarningDialog(session, { document: doc, setInterval: () => 0, clearInterval: () => {} });
    const styles = [...doc.head.walk()].filter((n) => n.tagName === "style");
    assert.equal(styles.length, 1);
    assert.equal(styles[0].textContent, DIALOG_CSS);
    const bare = fakeDocument();
    new TetherWarningDialog(session, { document: bare, injectStyles: false });
    assert.equal(bare.head.children.length, 0);
  });

  test("tether-dialog.css holds exactly the injected rules (for pages whose CSP forbids inline styles)", () => {
    const css = readFileSync(
      new URL("../../../src/tether/service/static/tether-dialog.css", import.meta.url),
      "utf8",
    );
    const rules = css.replace(/\/\*[\s\S]*?\*\//g, "").trim();
    assert.equal(rules, DIALOG_CSS);
  });

  test("destroy removes the dialog and stops listening to the session", () => {
    const { dialog, doc, warn } = setup();
    dialog.destroy();
    assert.equal(doc.body.children.includes(dialog.root), false);
    warn();
    assert.equal(dialog.visible, false);
  });
});
