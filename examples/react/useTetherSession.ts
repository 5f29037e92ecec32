// useTetherSession: a React hook over tether.js (seed 003's useChatSession, done with tether).
//
// Copy src/tether/service/static/tether.js and tether.d.ts next to this file (or
// import them from where your server serves them). The hook starts a session on
// mount (config sent at once), ends it on unmount (in-app navigation away), and
// leaves reloads and tab switches to the server's presence timeout, so a reload
// resumes the same session when `persistKey` is set. See docs/browser.md.
//
//   function ChatPage() {
//     const chat = useTetherSession({ token, kind: "chat", config: { job }, persistKey: "chat" });
//     const navigate = useNavigate();
//     return (
//       <>
//         <button onClick={() => chat.endAndNavigate(() => navigate("/hub"))}>Back to hub</button>
//         {chat.messages.map((m) => <p key={m.seq}>{m.content}</p>)}
//         {chat.replies.map((r) => <p key={r.reply_id} aria-busy="true">{r.content}</p>)}
//       </>
//     );
//   }
//
// Watching instead of taking part (an agent's console, a call being listened to):
//
//   const call = useTetherSession({ token, observe: { user: "me", waitS: 300 }, endOnUnmount: false });
//   // call.status === "awaiting" until the user's next session starts; no activity is ever sent.
//
// Media the page opens for the session (a microphone, an AudioContext) goes to
// `hold`: every end releases it, whichever way the session ends.

import { useCallback, useEffect, useRef, useState } from "react";

import {
  connect,
  showWarningDialog,
  type AppDetail,
  type EndedDetail,
  type Holdable,
  type JsonObject,
  type RawFrame,
  type ReplyInProgress,
  type Role,
  type Status,
  type TetherOptions,
  type TetherSession,
  type TetherWarningDialog,
  type TranscriptMessage,
  type WarningDetail,
} from "./tether.js";

export interface UseTetherSessionOptions extends TetherOptions {
  /** Start when the component mounts (default true); otherwise call startSession(). */
  autoStart?: boolean;
  /**
   * End the session when the component unmounts (default true): leaving the
   * page inside the app ends it. Reloads and closed tabs never unmount, so
   * they are left to the presence timeout (or endOnHide: "end").
   */
  endOnUnmount?: boolean;
  /** Show tether's ready-made warning dialog (default true; never for an observer). */
  warningDialog?: boolean;
  /** Every `{"type": "app", name, data}` the server-side application sends. */
  onApp?: (event: AppDetail) => void;
  /** Every server frame as sent, types this client does not know included. */
  onFrame?: (frame: RawFrame) => void;
}

export interface TetherSessionState {
  session: TetherSession | null;
  sessionId: string | null;
  status: Status;
  isSessionActive: boolean;
  warning: WarningDetail | null;
  /** Live: updated every second while a warning is in force. */
  secondsLeft: number | null;
  messages: TranscriptMessage[];
  /** The replies streaming now, in the order they began; each leaves when its message comes. */
  replies: ReplyInProgress[];
  config: JsonObject | null;
  ended: EndedDetail | null;
  startSession: () => void;
  stopSession: () => Promise<EndedDetail | null>;
  /** End the session first, then navigate (seed 003's navigateToHub). */
  endAndNavigate: (go: () => void) => Promise<void>;
  sendMessage: (content: string, role?: Role) => void;
  /** "I'm still here": counts as activity at once (an observer sends none). */
  activity: () => void;
  /** Hand over media or a timer of this session: released at its end. Returns a release function. */
  hold: (thing: Holdable) => () => void;
}

export function useTetherSession(options: UseTetherSessionOptions): TetherSessionState {
  const optionsRef = useRef(options);
  optionsRef.current = options;
  const sessionRef = useRef<TetherSession | null>(null);

  const [session, setSession] = useState<TetherSession | null>(null);
  const [sessionId, setSessionId] = useState<string | null>(null);
  const [status, setStatus] = useState<Status>("idle");
  const [warning, setWarning] = useState<WarningDetail | null>(null);
  const [secondsLeft, setSecondsLeft] = useState<number | null>(null);
  const [messages, setMessages] = useState<TranscriptMessage[]>([]);
  const [replies, setReplies] = useState<ReplyInProgress[]>([]);
  const [config, setConfig] = useState<JsonObject | null>(null);
  const [ended, setEnded] = useState<EndedDetail | null>(null);

  const startSession = useCallback(() => {
    if (sessionRef.current !== null && sessionRef.current.status !== "closed") return;
    const { autoStart, endOnUnmount, warningDialog, onApp, onFrame, ...tetherOptions } =
      optionsRef.current;
    void autoStart;
    void endOnUnmount;
    void onApp;
    void onFrame;
    setMessages([]);
    setReplies([]);
    setEnded(null);
    setWarning(null);
    const next = connect(tetherOptions);
    sessionRef.current = next;
    setSession(next);
    let dialog: TetherWarningDialog | null = null;
    if (warningDialog !== false && !tetherOptions.observe && typeof document !== "undefined") {
      dialog = showWarningDialog(next);
    }
    next.on("started", ({ session: view }) => setSessionId(view.id));
    next.on("status", ({ status: value }) => setStatus(value));
    next.on("config", ({ config: value }) => setConfig(value));
    next.on("warning", (detail) => setWarning(detail));
    next.on("active", () => setWarning(null));
    // The live map is the client's; React gets a fresh array (copies) on every change.
    const showReplies = () => setReplies([...next.replies.values()].map((r) => ({ ...r })));
    next.on("reply.delta", showReplies);
    next.on("message", ({ message }) => {
      setMessages((list) => [...list, message]);
      if (message.reply_id !== undefined) showReplies();
    });
    // The current callbacks, not the first render's.
    next.on("app", (event) => optionsRef.current.onApp?.(event));
    next.on("frame", (frame) => optionsRef.current.onFrame?.(frame));
    next.on("ended", (detail) => {
      setWarning(null);
      setEnded(detail);
      setReplies([]);
    });
    void next.closed.then(() => dialog?.destroy());
  }, []);

  const stopSession = useCallback((): Promise<EndedDetail | null> => {
    const current = sessionRef.current;
    if (current === null) return Promise.resolve(null);
    return current.end();
  }, []);

  const endAndNavigate = useCallback(
    async (go: () => void): Promise<void> => {
      try {
        await stopSession();
      } finally {
        go();
      }
    },
    [stopSession],
  );

  const sendMessage = useCallback((content: string, role: Role = "user") => {
    sessionRef.current?.sendMessage(content, { role });
  }, []);

  const activity = useCallback(() => {
    sessionRef.current?.activity();
  }, []);

  const hold = useCallback((thing: Holdable): (() => void) => {
    const current = sessionRef.current;
    if (current === null) throw new Error("tether: no session to hold anything for");
    return current.hold(thing);
  }, []);

  // Start on mount, end on unmount. Under React's StrictMode the first mount is
  // torn down before its socket opens: end() then only cancels, and no session
  // is created on the server for it.
  useEffect(() => {
    if (optionsRef.current.autoStart !== false) startSession();
    return () => {
      const current = sessionRef.current;
      sessionRef.current = null;
      if (current === null) return;
      if (optionsRef.current.endOnUnmount !== false) {
        void current.end();
      } else {
        current.disconnect();
      }
    };
  }, [startSession]);

  // The live countdown for custom warning UIs.
  useEffect(() => {
    if (warning === null) {
      setSecondsLeft(null);
      return undefined;
    }
    const update = () => setSecondsLeft(sessionRef.current?.secondsLeft() ?? null);
    update();
    const id = setInterval(update, 1000);
    return () => clearInterval(id);
  }, [warning]);

  return {
    session,
    sessionId,
    status,
    isSessionActive: status === "open" || status === "reconnecting",
    warning,
    secondsLeft,
    messages,
    replies,
    config,
    ended,
    startSession,
    stopSession,
    endAndNavigate,
    sendMessage,
    activity,
    hold,
  };
}
