// tether/dialog.js: the ready-made, accessible warning dialog (DOM only). It
// listens to a TetherSession's events and calls its public API, nothing more.
import { formatCountdown } from "./timing.js";

/** The dialog's default look; tether-dialog.css holds the same rules for strict CSPs. */
export const DIALOG_CSS = `
.tether-dialog-backdrop{position:fixed;inset:0;display:flex;align-items:center;justify-content:center;background:rgba(0,0,0,.45);z-index:2147483000}
.tether-dialog-backdrop[hidden]{display:none}
.tether-dialog{max-width:28rem;margin:1rem;padding:1.25rem 1.5rem;border-radius:.5rem;background:#fff;color:#111;font:16px/1.45 system-ui,sans-serif;box-shadow:0 10px 30px rgba(0,0,0,.3)}
.tether-dialog h2{margin:0 0 .5rem;font-size:1.2rem}
.tether-dialog-countdown{font-variant-numeric:tabular-nums;font-weight:700}
.tether-dialog-actions{display:flex;gap:.5rem;justify-content:flex-end;margin-top:1rem}
.tether-dialog button{font:inherit;padding:.45rem .9rem;border-radius:.35rem;border:1px solid #888;background:#f4f4f4;cursor:pointer}
.tether-dialog button.tether-dialog-continue{background:#1a5fb4;border-color:#1a5fb4;color:#fff}
.tether-dialog button:focus-visible{outline:3px solid #f5c211;outline-offset:2px}
`.trim();

const DIALOG_TEXTS = Object.freeze({
  title: "Are you still there?",
  idle: "This session ends in {time} because nothing has happened for a while.",
  max_duration: "This session reaches its time limit in {time}.",
  continue: "Continue",
  dismiss: "OK",
  end: "End now",
});

let dialogCount = 0;

/**
 * The ready-made warning: shown on `warning`, hidden on `active` and `ended`.
 * A live countdown (from the warning's deadline, once a second); "Continue"
 * sends activity, "End now" ends the session. role=alertdialog, focus on
 * Continue, Escape continues, Tab stays inside, focus returns on close.
 */
export class TetherWarningDialog {
  constructor(session, options = {}) {
    this.session = session;
    this.document = options.document ?? globalThis.document;
    this.texts = { ...DIALOG_TEXTS, ...(options.texts ?? {}) };
    this.now = options.now ?? (() => session.env.now());
    this.setInterval = options.setInterval ?? ((fn, ms) => globalThis.setInterval(fn, ms));
    this.clearInterval = options.clearInterval ?? ((id) => globalThis.clearInterval(id));
    this.warning = null;
    this.ticker = null;
    this.returnFocus = null;
    const doc = this.document;
    if (options.injectStyles !== false) injectStyles(doc);
    const n = ++dialogCount;
    const el = (tag, props = {}, ...children) => {
      const node = doc.createElement(tag);
      for (const [key, value] of Object.entries(props)) {
        if (key === "className") node.className = value;
        else if (key === "text") node.textContent = value;
        else node.setAttribute(key, value);
      }
      for (const child of children) node.appendChild(child);
      return node;
    };
    this.titleEl = el("h2", { id: `tether-dialog-${n}-title`, text: this.texts.title });
    this.textEl = el("p", { id: `tether-dialog-${n}-text` });
    this.continueButton = el("button", { type: "button", className: "tether-dialog-continue" });
    this.endButton = el("button", { type: "button", className: "tether-dialog-end" });
    this.endButton.textContent = this.texts.end;
    this.dialog = el(
      "div",
      {
        className: "tether-dialog",
        role: "alertdialog",
        "aria-modal": "true",
        "aria-labelledby": this.titleEl.getAttribute("id"),
        "aria-describedby": this.textEl.getAttribute("id"),
      },
      this.titleEl,
      this.textEl,
      el("div", { className: "tether-dialog-actions" }, this.endButton, this.continueButton),
    );
    this.root = el("div", { className: "tether-dialog-backdrop" }, this.dialog);
    this.root.hidden = true;
    (options.parent ?? doc.body).appendChild(this.root);

    this.continueButton.addEventListener("click", () => this.onContinue());
    this.endButton.addEventListener("click", () => this.onEnd());
    this.dialog.addEventListener("keydown", (event) => this.onKey(event));
    this.unsubscribe = [
      session.on("warning", (warning) => this.show(warning)),
      session.on("active", () => this.hide()),
      session.on("ended", () => this.hide()),
    ];
    if (session.warning) this.show(session.warning);
  }

  get visible() {
    return !this.root.hidden;
  }

  /** Show (or update) for `warning` ({reason, deadline, ...}). */
  show(warning) {
    this.warning = warning;
    const idle = warning.reason !== "max_duration";
    this.continueButton.textContent = idle ? this.texts.continue : this.texts.dismiss;
    this.render();
    if (this.ticker === null) this.ticker = this.setInterval(() => this.render(), 1000);
    if (!this.visible) {
      this.returnFocus = this.document.activeElement ?? null;
      this.root.hidden = false;
    }
    this.continueButton.focus();
  }

  /** The text for the current second. */
  render() {
    if (this.warning === null) return;
    const left = Math.max(0, (this.warning.deadline - this.now()) / 1000);
    const template = this.warning.reason === "max_duration" ? this.texts.max_duration : this.texts.idle;
    const [before, after] = template.split("{time}");
    const time = this.document.createElement("span");
    time.className = "tether-dialog-countdown";
    time.textContent = formatCountdown(left);
    this.textEl.textContent = "";
    this.textEl.appendChild(this.document.createTextNode(before));
    this.textEl.appendChild(time);
    this.textEl.appendChild(this.document.createTextNode(after ?? ""));
    this.countdownText = time.textContent;
  }

  hide() {
    if (this.ticker !== null) this.clearInterval(this.ticker);
    this.ticker = null;
    const wasVisible = this.visible;
    this.warning = null;
    this.root.hidden = true;
    if (wasVisible && this.returnFocus && typeof this.returnFocus.focus === "function") {
      this.returnFocus.focus();
    }
    this.returnFocus = null;
  }

  onContinue() {
    const idle = this.warning === null || this.warning.reason !== "max_duration";
    this.hide();
    if (idle) this.session.activity();
  }

  onEnd() {
    this.hide();
    this.session.end();
  }

  onKey(event) {
    if (event.key === "Escape") {
      event.preventDefault();
      this.onContinue();
    } else if (event.key === "Tab") {
      // Two buttons: keep focus inside the dialog.
      event.preventDefault();
      const next =
        this.document.activeElement === this.continueButton ? this.endButton : this.continueButton;
      next.focus();
    }
  }

  /** Remove the dialog and stop listening. */
  destroy() {
    this.hide();
    for (const off of this.unsubscribe) off();
    this.root.remove();
  }
}

function injectStyles(doc) {
  if (!doc || !doc.head || doc.querySelector?.("style[data-tether-dialog]")) return;
  const style = doc.createElement("style");
  style.setAttribute("data-tether-dialog", "");
  style.textContent = DIALOG_CSS;
  doc.head.appendChild(style);
}

/** Attach the ready-made warning dialog to `session`; returns it (destroy() removes it). */
export function showWarningDialog(session, options) {
  return new TetherWarningDialog(session, options);
}
