// @ts-check
/**
 * The active-call list and the multi-call audio policies, as in the Python SDK (sdk/multicall.py,
 * SPEC §2.1-§2.2): join() adds a call to `client.state.activeCalls` before connecting; leave, end
 * and a failed join remove it. The policy acts at those two moments:
 *
 * - SUSPEND_EXISTING: a joining call suspends every other active call; when a call is removed, the
 *   most recently added remaining one is resumed (pause-on-incoming-call).
 * - SUSPEND_INCOMING: a call joining while another is active starts suspended (foreground and
 *   background rooms).
 * - MANUAL: nothing automatic.
 * - RESTORE_PREVIOUS (SPEC §2.8): like SUSPEND_EXISTING on join (newest wins), but when the call
 *   holding focus is removed, focus goes back to the call(s) that had it just before that call took
 *   it (a focus stack that switchFocus also updates); when none of them is left, to the most
 *   recently focused remaining call.
 *
 * Priority (SPEC §2.8): under SUSPEND_EXISTING and RESTORE_PREVIOUS a call whose preferences'
 * `priority` is lower than the highest priority among the unsuspended calls joins suspended and
 * takes nothing from them.
 *
 * Single-call mode (allowMultipleActiveCalls false) ignores the policy: joining B leaves A.
 * @module multicall
 */

import { CallStateError, InvalidRequestError } from "./errors.js";

/** @enum {string} */
export const MultiCallAudioPolicy = Object.freeze({
  SUSPEND_EXISTING: "suspend_existing",
  SUSPEND_INCOMING: "suspend_incoming",
  MANUAL: "manual",
  RESTORE_PREVIOUS: "restore_previous",
});

/**
 * How a suspended call sounds at this client (SPEC §2.8), as the Python SDK's SuspendMode.
 * SILENT: its remote audio is not played and the SFU stops forwarding it to this session.
 * DUCKED: its remote audio keeps playing at the client's `duckGainDb` (default -18 dB).
 * In both the microphone stops reaching the call.
 * @enum {string}
 */
export const SuspendMode = Object.freeze({ SILENT: "silent", DUCKED: "ducked" });

/**
 * Throws InvalidRequestError (naming `what`) unless `mode` is one of SuspendMode.
 * @param {unknown} mode
 * @param {string} what
 */
export function checkSuspendMode(mode, what) {
  if (!(/** @type {unknown[]} */ (Object.values(SuspendMode))).includes(mode)) {
    throw new InvalidRequestError(
      `${what} must be one of SuspendMode (${Object.values(SuspendMode).map((v) => JSON.stringify(v)).join(", ")}), ` +
        `not ${JSON.stringify(mode) ?? String(mode)}`,
    );
  }
}

/** the statuses in which a call's audio can be suspended (Call.suspendAudio refuses the others) */
const IN_CALL = /** @type {string[]} */ (["joining", "joined", "reconnecting"]);
/** the policies under which a joining call takes focus from the others (unless its priority is lower) */
const NEWEST_WINS = /** @type {string[]} */ ([MultiCallAudioPolicy.SUSPEND_EXISTING, MultiCallAudioPolicy.RESTORE_PREVIOUS]);

export class ActiveCalls {
  /** @param {import("./client.js").VideoClient} client */
  constructor(client) {
    this.client = client;
    this._lock = Promise.resolve();
    this._contended = false;
    /** @type {import("./call.js").Call[]} RESTORE_PREVIOUS: calls in the order they last gained focus (last = newest) */
    this._focusOrder = [];
    /** @type {Map<import("./call.js").Call, import("./call.js").Call[]>} for each call that gained focus, who had it before */
    this._focusBefore = new Map();
  }

  /**
   * Run `fn` after every earlier focus change: policy actions and switchFocus never interleave.
   * @template T
   * @param {() => Promise<T>} fn
   * @returns {Promise<T>}
   */
  _locked(fn) {
    const run = this._lock.then(fn);
    this._lock = run.then(
      () => {},
      () => {},
    );
    return run;
  }

  get calls() {
    return [...this.client.state.activeCalls.value];
  }

  /** @param {import("./call.js").Call[]} calls */
  _set(calls) {
    this.client.state.activeCalls._set(calls);
  }

  /**
   * `call` starts joining. Returns the call it replaces (single-call mode), to leave once joined.
   * @param {import("./call.js").Call} call
   * @returns {Promise<import("./call.js").Call | null>}
   */
  joinStarted(call) {
    return this._locked(async () => {
      const calls = this.calls;
      if (calls.includes(call)) return null;
      const { allowMultipleActiveCalls, multiCallAudioPolicy } = this.client.options;
      if (!allowMultipleActiveCalls) {
        this._set([call]);
        const previous = calls[0] ?? null;
        if (previous) await previous._suspend("handover", SuspendMode.SILENT);
        return previous;
      }
      this._set([...calls, call]);
      if (NEWEST_WINS.includes(multiCallAudioPolicy)) {
        const focused = calls.filter((c) => !c.state.value.isAudioSuspended);
        const top = focused.length ? Math.max(...focused.map((c) => c.preferences.priority)) : null;
        if (top !== null && call.preferences.priority < top) {
          // lower priority than the focused call: join suspended, take nothing (SPEC §2.8)
          await call.suspendAudio();
          this._focusOrder.unshift(call);
        } else {
          // a call ended remotely may still be listed until removed() runs: nothing to suspend there
          for (const other of calls) if (IN_CALL.includes(other.state.value.status)) await other.suspendAudio();
          this._gainedFocus(call, focused);
        }
      } else if (multiCallAudioPolicy === MultiCallAudioPolicy.SUSPEND_INCOMING && calls.length) {
        await call.suspendAudio();
      }
      this.checkContention();
      return null;
    });
  }

  /**
   * `call` left, ended or failed to join: drop it and let the policy react.
   * @param {import("./call.js").Call} call
   */
  removed(call) {
    return this._locked(async () => {
      const calls = this.calls;
      if (!calls.includes(call)) return;
      const stack = this.focusStack; // (a left call's suspension is already reset: ask the stack)
      const hadFocus = stack.at(-1) === call;
      const remaining = calls.filter((c) => c !== call);
      this._set(remaining);
      const before = this._focusBefore.get(call) ?? [];
      this._focusBefore.delete(call);
      this._focusOrder = this._focusOrder.filter((c) => c !== call);
      const { allowMultipleActiveCalls, multiCallAudioPolicy } = this.client.options;
      if (allowMultipleActiveCalls && remaining.length) {
        if (multiCallAudioPolicy === MultiCallAudioPolicy.SUSPEND_EXISTING) {
          await remaining[remaining.length - 1].resumeAudio();
        } else if (multiCallAudioPolicy === MultiCallAudioPolicy.RESTORE_PREVIOUS && hadFocus) {
          await this._restore(before, remaining);
        }
      }
      this.checkContention();
    });
  }

  /**
   * Push `call` on the focus stack, remembering who had focus before it (RESTORE_PREVIOUS).
   * @param {import("./call.js").Call} call
   * @param {import("./call.js").Call[]} before
   */
  _gainedFocus(call, before) {
    this._focusOrder = [...this._focusOrder.filter((c) => c !== call), call];
    this._focusBefore.set(
      call,
      before.filter((c) => c !== call),
    );
  }

  /** Active calls in the order they last gained focus, newest last (RESTORE_PREVIOUS). */
  get focusStack() {
    const calls = this.calls;
    return this._focusOrder.filter((c) => calls.includes(c));
  }

  /**
   * Give focus back to `before` (those still active), else to the most recently focused call.
   * @param {import("./call.js").Call[]} before
   * @param {import("./call.js").Call[]} calls the remaining active calls
   */
  async _restore(before, calls) {
    let back = before.filter((c) => calls.includes(c));
    if (!back.length) {
      const stack = this._focusOrder.filter((c) => calls.includes(c));
      back = [stack.at(-1) ?? calls[calls.length - 1]];
    }
    for (const c of back) if (IN_CALL.includes(c.state.value.status)) await c.resumeAudio();
  }

  /** Warn once each time a second unsuspended call starts to share the microphone and speaker. */
  checkContention() {
    const live = this.calls.filter((c) => !c.state.value.isAudioSuspended);
    if (live.length >= 2 && !this._contended) {
      this._contended = true;
      console.warn(
        `switchboard: ${live.length} calls share the microphone and speaker unsuspended ` +
          `(${live.map((c) => c.cid).join(", ")}); suspendAudio() all but one`,
      );
    } else if (live.length < 2) {
      this._contended = false;
    }
  }

  /**
   * Move the microphone, camera and audio focus from one joined call to another (SPEC §2.4.8).
   * Throws CallStateError when either call is not joined; if a step fails both calls are put back.
   * @param {import("./call.js").Call} from
   * @param {import("./call.js").Call} to
   */
  switchFocus(from, to) {
    if (from === to) return Promise.reject(new CallStateError("switchFocus needs two different calls"));
    return this._locked(async () => {
      for (const c of [from, to]) {
        if (!this.calls.includes(c) || c.state.value.status !== "joined") {
          throw new CallStateError(`switchFocus needs two calls joined by this client; ${c.cid} is not`);
        }
      }
      const before = [from, to].map((c) => ({
        call: c,
        suspended: c.state.value.isAudioSuspended,
        mic: c.microphoneEnabled,
        camera: c.cameraEnabled,
      }));
      const mic = from.microphoneEnabled;
      const camera = from.cameraEnabled;
      /** @type {[string, () => Promise<void>][]} */
      const steps = [
        ["turn off the microphone in the call losing focus", () => from.setMicrophoneEnabled(false)],
        ["turn off the camera in the call losing focus", () => from.setCameraEnabled(false)],
        ["suspend the call losing focus", () => from.suspendAudio()],
        ["resume the call gaining focus", () => to.resumeAudio()],
        ["restore the microphone in the call gaining focus", () => to._setMicrophoneIfAllowed(mic)],
        ["restore the camera in the call gaining focus", () => to._setCameraIfAllowed(camera)],
      ];
      for (const [index, [name, step]] of steps.entries()) {
        try {
          await step();
        } catch (err) {
          for (const b of before) {
            await (b.suspended ? b.call.suspendAudio() : b.call.resumeAudio()).catch(() => {});
            await b.call._setMicrophoneIfAllowed(b.mic).catch(() => {});
            await b.call._setCameraIfAllowed(b.camera).catch(() => {});
          }
          throw new CallStateError(`switchFocus failed at step ${index + 1} (${name}): ${err}; both calls were put back`);
        }
      }
      this._gainedFocus(to, [from]);
      this.checkContention();
    });
  }
}
