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
import { ActiveCalls, MultiCallAudioPolicy } from "./multicall.js";

/**
 * @typedef {object} ClientOptions
 * @property {string} [baseUrl] the coordinator's base URL (default: this page's origin)
 * @property {boolean} [allowMultipleActiveCalls] several calls joined at once (default false)
 * @property {string} [multiCallAudioPolicy] one of MultiCallAudioPolicy (default SUSPEND_EXISTING)
 * @property {boolean} [rejectCallWhenBusy] reject rings while a call is active (default false)
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
    };
    if (!(/** @type {string[]} */ (Object.values(MultiCallAudioPolicy))).includes(this.options.multiCallAudioPolicy)) {
      throw new InvalidRequestError(
        `unknown multiCallAudioPolicy ${JSON.stringify(this.options.multiCallAudioPolicy)}; ` +
          `use one of ${Object.keys(MultiCallAudioPolicy).join(", ")}`,
      );
    }
    this.state = {
      /** @type {Observable<Call[]>} joined (or joining) calls, in join order */
      activeCalls: new Observable(/** @type {Call[]} */ ([])),
      /** @type {Observable<Call|null>} the call ringing this user */
      incomingCall: new Observable(/** @type {Call|null} */ (null)),
      /** @type {Observable<Call|null>} the call this user is ringing */
      outgoingCall: new Observable(/** @type {Call|null} */ (null)),
    };
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
    );
    await socket.connect();
    this._socket = socket;
    this._coordinator = new CoordinatorApi(this.options.baseUrl, this.apiKey, this.token);
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
   * @returns {Call}
   */
  makeCall(type = "default", id) {
    const callId = id ?? crypto.randomUUID().replaceAll("-", "");
    const cid = `${type}:${callId}`;
    let call = this._calls.get(cid);
    if (!call) {
      call = new Call(this, type, callId);
      this._calls.set(cid, call);
    }
    return call;
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
    if (event.cid) {
      const [type, ...rest] = event.cid.split(":");
      const call = this.makeCall(type, rest.join(":"));
      call._handleEvent(event);
      if (event.type === "call.ring") this._incomingRing(call);
      else if (event.type === "call.ring_ended" && event.user_id === this.user.id) {
        this._ringEnded(call, event.outcome, event.outgoing);
      } else if (event.type === "call.ended") {
        for (const obs of [this.state.incomingCall, this.state.outgoingCall]) if (obs.value === call) obs._set(null);
        void call._onEnded("call_ended");
      }
    }
    this._events.emit(event);
  }

  /** @param {Call} call */
  _incomingRing(call) {
    if (this.options.rejectCallWhenBusy && this.state.activeCalls.value.length) {
      void call.reject(RejectReason.BUSY).catch(() => {});
      return;
    }
    call._update({ ringOutcome: null });
    if (call.state.value.status === CallStatus.IDLE) call._update({ status: CallStatus.INCOMING });
    this.state.incomingCall._set(call);
  }

  /** @param {Call} call */
  _setOutgoing(call) {
    call._update({ ringOutcome: null });
    if (call.state.value.status === CallStatus.IDLE) call._update({ status: CallStatus.OUTGOING });
    this.state.outgoingCall._set(call);
  }

  /**
   * @param {Call} call
   * @param {string} outcome
   * @param {boolean} outgoing
   */
  _ringEnded(call, outcome, outgoing) {
    const obs = outgoing ? this.state.outgoingCall : this.state.incomingCall;
    if (obs.value === call) obs._set(null);
    if (call.state.value.status === CallStatus.INCOMING || call.state.value.status === CallStatus.OUTGOING) {
      call._update({ status: CallStatus.IDLE });
    }
    call._update({ ringOutcome: outcome });
  }
}
