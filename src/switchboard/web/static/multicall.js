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
 *
 * Single-call mode (allowMultipleActiveCalls false) ignores the policy: joining B leaves A.
 * @module multicall
 */

import { CallStateError } from "./errors.js";

/** @enum {string} */
export const MultiCallAudioPolicy = Object.freeze({
  SUSPEND_EXISTING: "suspend_existing",
  SUSPEND_INCOMING: "suspend_incoming",
  MANUAL: "manual",
});

export class ActiveCalls {
  /** @param {import("./client.js").VideoClient} client */
  constructor(client) {
    this.client = client;
    this._lock = Promise.resolve();
    this._contended = false;
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
        if (previous) await previous._suspend("handover");
        return previous;
      }
      this._set([...calls, call]);
      if (multiCallAudioPolicy === MultiCallAudioPolicy.SUSPEND_EXISTING) {
        for (const other of calls) await other.suspendAudio();
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
      const remaining = calls.filter((c) => c !== call);
      this._set(remaining);
      const { allowMultipleActiveCalls, multiCallAudioPolicy } = this.client.options;
      if (allowMultipleActiveCalls && multiCallAudioPolicy === MultiCallAudioPolicy.SUSPEND_EXISTING && remaining.length) {
        await remaining[remaining.length - 1].resumeAudio();
      }
      this.checkContention();
    });
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
      this.checkContention();
    });
  }
}
