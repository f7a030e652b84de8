// @ts-check
/**
 * The browser client: `new VideoClient(apiKey, {user, token, options})`, then `await
 * client.connect()`. Owns the coordinator connection, the client state (active, incoming and
 * outgoing calls) and the page's audio session. Mirrors switchboard.sdk.client.VideoClient.
 * @module client
 */

import { AudioSession } from "./audio.js";
import { Call, CallStatus, RejectReason } from "./call.js";
import { CoordinatorApi, EventsConnection } from "./coordinator.js";
import { Emitter, Observable } from "./emitter.js";
import { CallStateError, InvalidRequestError } from "./errors.js";
import { checkGainDb } from "./audio.js";
import { ActiveCalls, MultiCallAudioPolicy, SuspendMode, checkSuspendMode } from "./multicall.js";
import { RingBook } from "./rings.js";

/**
 * @typedef {object} ClientOptions
 * @property {string} [baseUrl] the coordinator's base URL (default: this page's origin)
 * @property {boolean} [allowMultipleActiveCalls] several calls joined at once (default false)
 * @property {string} [multiCallAudioPolicy] one of MultiCallAudioPolicy (default SUSPEND_EXISTING)
 * @property {boolean} [rejectCallWhenBusy] reject rings while a call is active (default false)
 * @property {string} [suspendMode] one of SuspendMode: what the policies' automatic suspends (and
 *   `suspendAudio()` without a mode) use (default SILENT; SPEC §2.8)
 * @property {number} [duckGainDb] the gain of a DUCKED call's audio, in dB, -120..0 (default -18)
 */

/**
 * Per-call preferences (the Python SDK's CallPreferences). `priority` (an integer, default 0): under
 * SUSPEND_EXISTING and RESTORE_PREVIOUS a call joining with a lower priority than the focused call
 * joins suspended instead of taking focus (SPEC §2.8).
 * @typedef {{priority?: number}} CallPreferences
 */

export class VideoClient {
  /**
   * @param {string} apiKey
   * @param {{user: {id: string, name?: string}, token: string, options?: ClientOptions}} init
   */
  constructor(apiKey, { user, token, options = {} }) {
    if (!apiKey) throw new InvalidRequestError("VideoClient needs the server's API key");
    if (!user?.id) throw new InvalidRequestError("VideoClient needs a user with an id");
    this.apiKey = apiKey;
    this.user = user;
    this.token = token;
    /** @type {Required<ClientOptions>} */
    this.options = {
      baseUrl: options.baseUrl ?? globalThis.location?.origin ?? "http://127.0.0.1:3030",
      allowMultipleActiveCalls: options.allowMultipleActiveCalls ?? false,
      multiCallAudioPolicy: options.multiCallAudioPolicy ?? MultiCallAudioPolicy.SUSPEND_EXISTING,
      rejectCallWhenBusy: options.rejectCallWhenBusy ?? false,
      suspendMode: options.suspendMode ?? SuspendMode.SILENT,
      duckGainDb: options.duckGainDb ?? -18,
    };
    if (!(/** @type {string[]} */ (Object.values(MultiCallAudioPolicy))).includes(this.options.multiCallAudioPolicy)) {
      throw new InvalidRequestError(
        `unknown multiCallAudioPolicy ${JSON.stringify(this.options.multiCallAudioPolicy)}; ` +
          `use one of ${Object.keys(MultiCallAudioPolicy).join(", ")}`,
      );
    }
    checkSuspendMode(this.options.suspendMode, "ClientOptions suspendMode");
    checkGainDb(this.options.duckGainDb, "ClientOptions duckGainDb");
    if (this.options.duckGainDb > 0) {
      throw new InvalidRequestError(
        `ClientOptions duckGainDb must be <= 0 dB (ducking lowers), got ${this.options.duckGainDb}`,
      );
    }
    this.state = {
      /** @type {Observable<Call[]>} joined (or joining) calls, in join order */
      activeCalls: new Observable(/** @type {Call[]} */ ([])),
      /** @type {Observable<Call[]>} every call ringing this user, oldest first (the server's view) */
      ringingCalls: new Observable(/** @type {Call[]} */ ([])),
      /** @type {Observable<Call|null>} the newest call ringing this user */
      incomingCall: new Observable(/** @type {Call|null} */ (null)),
      /** @type {Observable<Call|null>} the newest call this user is ringing */
      outgoingCall: new Observable(/** @type {Call|null} */ (null)),
    };
    /** @type {RingBook<Call>} */
    this._rings = new RingBook((incoming, outgoing) => this._publishRings(incoming, outgoing));
    /** @type {any[] | null} ring events held back while the rings are reloaded */
    this._heldRingEvents = null;
    this._events = new Emitter();
    /** @type {Map<string, Call>} */
    this._calls = new Map();
    /** @type {CoordinatorApi|null} */
    this._coordinator = null;
    /** @type {EventsConnection|null} */
    this._socket = null;
    this._active = new ActiveCalls(this);
    /** @type {AudioSession} the page's microphone and speaker; `audioSession.speaker` meters what is heard */
    this.audioSession = new AudioSession();
  }

  /** Connect to the coordinator. Throws AuthenticationError (bad or expired token), NetworkError. */
  async connect() {
    const socket = new EventsConnection(
      this.options.baseUrl,
      { api_key: this.apiKey, token: this.token, user: { id: this.user.id, name: this.user.name ?? null } },
      (event) => this._onEvent(event),
      (info) => {
        if (info.reconnected) void this._resync(info.replayComplete);
      },
    );
    await socket.connect();
    this._socket = socket;
    this._coordinator = new CoordinatorApi(this.options.baseUrl, this.apiKey, this.token);
    await this._reloadRings();
  }

  /**
   * The events socket came back: reload the rings (always) and, when the server could not replay
   * every missed event, each call this client knows.
   * @param {boolean} replayComplete
   */
  async _resync(replayComplete) {
    if (!replayComplete) {
      await Promise.all([...this._calls.values()].map((call) => call.get().catch(() => null)));
    }
    await this._reloadRings();
  }

  /**
   * Take the server's list of pending rings (`GET /api/v1/rings`) as the truth, then apply the ring
   * events that arrived meanwhile and are newer than it.
   */
  async _reloadRings() {
    if (!this._coordinator || this._heldRingEvents !== null) return;
    this._heldRingEvents = [];
    try {
      const answer = await this._api().request("GET", "/rings");
      /** @type {import("./rings.js").PendingRing<Call>[]} */
      const rings = answer.rings.map((/** @type {any} */ r) => {
        const [type, ...rest] = String(r.cid).split(":");
        return { ringId: r.ring_id, call: this.makeCall(type, rest.join(":")), outgoing: r.outgoing === true };
      });
      const { added, removed } = this._rings.replace(rings, answer.last_event_id ?? 0, answer.epoch ?? null);
      for (const ring of added) this._showRinging(ring.call, ring.outgoing);
      for (const ring of removed) this._stopRinging(ring.call, null);
    } catch (err) {
      console.warn(`switchboard: cannot reload the rings: ${err}`);
    } finally {
      const held = this._heldRingEvents ?? [];
      this._heldRingEvents = null;
      for (const event of held) this._onEvent(event);
    }
  }

  /**
   * @param {Call[]} incoming
   * @param {Call[]} outgoing
   */
  _publishRings(incoming, outgoing) {
    const same = (/** @type {Call[]} */ a, /** @type {Call[]} */ b) => a.length === b.length && a.every((c, i) => c === b[i]);
    if (!same(incoming, this.state.ringingCalls.value)) this.state.ringingCalls._set(incoming);
    const newestIn = incoming.at(-1) ?? null;
    if (newestIn !== this.state.incomingCall.value) this.state.incomingCall._set(newestIn);
    const newestOut = outgoing.at(-1) ?? null;
    if (newestOut !== this.state.outgoingCall.value) this.state.outgoingCall._set(newestOut);
  }

  /** Leave every call and close the connection. */
  async disconnect() {
    for (const call of this._calls.values()) await call.leave().catch(() => {});
    this._socket?.close();
    this._socket = null;
    this._coordinator = null;
  }

  _api() {
    if (!this._coordinator) throw new CallStateError("the client is not connected: await client.connect() first");
    return this._coordinator;
  }

  _connectionId() {
    return this._socket?.connectionId ?? null;
  }

  /**
   * The Call for type:id (the same object each time for the same cid).
   * @param {string} [type] call type (default "default")
   * @param {string} [id] call id (default: a random one)
   * @param {CallPreferences} [preferences] replace the call's preferences (kept when omitted).
   *   InvalidRequestError when `priority` is not an integer.
   * @returns {Call}
   */
  makeCall(type = "default", id, preferences) {
    const callId = id ?? crypto.randomUUID().replaceAll("-", "");
    const cid = `${type}:${callId}`;
    const prefs = preferences === undefined ? undefined : checkPreferences(preferences);
    let call = this._calls.get(cid);
    if (!call) {
      call = new Call(this, type, callId, prefs);
      this._calls.set(cid, call);
    } else if (prefs) {
      call.preferences = prefs;
    }
    return call;
  }

  /** The active calls in the order they last gained focus, newest last (RESTORE_PREVIOUS's stack). */
  get focusStack() {
    return this._active.focusStack;
  }

  /**
   * Hand the microphone, camera and audio focus from one joined call to another (SPEC §2.4.8).
   * @param {Call} from
   * @param {Call} to
   */
  switchFocus(from, to) {
    return this._active.switchFocus(from, to);
  }

  /**
   * Listen to client-wide events (every coordinator event this user receives); "*" for all.
   * @param {string} type
   * @param {(event: any) => void} callback
   * @returns {() => void} unsubscribe
   */
  on(type, callback) {
    return this._events.on(type, callback);
  }

  /** @param {any} event */
  _onEvent(event) {
    const ringEvent = event.type === "call.ring" || event.type === "call.ring_ended";
    if (ringEvent && this._heldRingEvents !== null) {
      this._heldRingEvents.push(event); // applied once the snapshot is in
      return;
    }
    if (event.cid) {
      const [type, ...rest] = event.cid.split(":");
      const call = this.makeCall(type, rest.join(":"));
      call._handleEvent(event);
      const stale = ringEvent && this._rings.isStale(event.id, this._socket?.epoch ?? null);
      if (event.type === "call.ring" && !stale) this._incomingRing(call, event.ring_id ?? null);
      else if (event.type === "call.ring_ended" && event.user_id === this.user.id && !stale) {
        this._ringEnded(call, event.outcome, event.outgoing === true, event.ring_id ?? null);
      } else if (event.type === "call.ended") {
        for (const ring of this._rings.endCall(call)) this._stopRinging(ring.call, null);
        void call._onEnded("call_ended");
      }
    }
    this._events.emit(event);
  }

  /**
   * @param {Call} call
   * @param {string|null} ringId
   */
  _incomingRing(call, ringId) {
    if (this.options.rejectCallWhenBusy && this.state.activeCalls.value.length) {
      void call.reject(RejectReason.BUSY).catch(() => {});
      return;
    }
    if (this._rings.add({ ringId: ringId ?? `${call.cid}:incoming`, call, outgoing: false })) {
      this._showRinging(call, false);
    }
  }

  /**
   * This user rang `call` (the coordinator answered `ring_id`).
   * @param {Call} call
   * @param {string|null} ringId
   */
  _setOutgoing(call, ringId) {
    if (this._rings.add({ ringId: ringId ?? `${call.cid}:outgoing`, call, outgoing: true })) {
      this._showRinging(call, true);
    }
  }

  /**
   * @param {Call} call
   * @param {string} outcome
   * @param {boolean} outgoing
   * @param {string|null} [ringId]
   */
  _ringEnded(call, outcome, outgoing, ringId = null) {
    this._rings.end(ringId, call, outgoing);
    this._stopRinging(call, outcome);
  }

  /** @param {Call} call @param {boolean} outgoing */
  _showRinging(call, outgoing) {
    call._update({ ringOutcome: null });
    if (call.state.value.status === CallStatus.IDLE) {
      call._update({ status: outgoing ? CallStatus.OUTGOING : CallStatus.INCOMING });
    }
  }

  /** @param {Call} call @param {string|null} outcome */
  _stopRinging(call, outcome) {
    const status = call.state.value.status;
    const ringing = this._rings.has(call, false) || this._rings.has(call, true);
    if (!ringing && (status === CallStatus.INCOMING || status === CallStatus.OUTGOING)) {
      call._update({ status: CallStatus.IDLE });
    }
    if (outcome !== null) call._update({ ringOutcome: outcome });
  }
}

/**
 * `preferences` as the call's preferences, else InvalidRequestError.
 * @param {unknown} preferences
 * @returns {{priority: number}}
 */
function checkPreferences(preferences) {
  if (typeof preferences !== "object" || preferences === null) {
    throw new InvalidRequestError(`call preferences must be an object like {priority: 1}, not ${String(preferences)}`);
  }
  const priority = /** @type {{priority?: unknown}} */ (preferences).priority ?? 0;
  if (!Number.isInteger(priority)) {
    throw new InvalidRequestError(`call preferences priority must be an integer, got ${typeof priority === "string" ? JSON.stringify(priority) : String(priority)}`);
  }
  return { priority: /** @type {number} */ (priority) };
}
