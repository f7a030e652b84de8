// @ts-check
/**
 * A call: coordinator operations (getOrCreate, ring, accept, reject, end), media (join, leave,
 * microphone, camera) and audio focus (suspendAudio, resumeAudio). Mirrors the Python SDK's
 * switchboard.sdk.call.Call.
 * @module call
 */

import { CallAudio } from "./audio.js";
import { Emitter, Observable } from "./emitter.js";
import { CallStateError, PermissionDeniedError } from "./errors.js";
import { CallSession } from "./session.js";

/** @enum {string} */
export const CallStatus = Object.freeze({
  IDLE: "idle",
  OUTGOING: "outgoing",
  INCOMING: "incoming",
  JOINING: "joining",
  JOINED: "joined",
  RECONNECTING: "reconnecting",
  DISCONNECTED: "disconnected",
});

/** @enum {string} */
export const RejectReason = Object.freeze({ DECLINE: "decline", CANCEL: "cancel", BUSY: "busy", TIMEOUT: "timeout" });

/**
 * One remote participant as the page sees it.
 * @typedef {object} Participant
 * @property {string} userId
 * @property {string} sessionId
 * @property {boolean} audioMuted no audio published, or muted by its owner
 * @property {boolean} videoMuted no video published, or the camera is off
 * @property {MediaStreamTrack|null} videoTrack to show in a <video> element
 * @property {() => number} audioLevel RMS level in dBFS of what this participant sends right now
 *   (-120 when nothing is heard); for speaking indicators
 */

/**
 * A frozen snapshot of a call's state.
 * @typedef {object} CallState
 * @property {string} status one of CallStatus
 * @property {boolean} isAudioSuspended
 * @property {Participant[]} participants the others in the call, in join order
 * @property {{userId: string, sessionId: string}|null} localParticipant
 * @property {string[]} ownCapabilities
 * @property {{user_id: string, role: string}[]} members
 * @property {boolean} isBackstage
 * @property {string|null} ringOutcome how the newest ring ended for this user
 */

/** @returns {CallState} */
function initialState() {
  return Object.freeze({
    status: CallStatus.IDLE,
    isAudioSuspended: false,
    participants: [],
    localParticipant: null,
    ownCapabilities: [],
    members: [],
    isBackstage: false,
    ringOutcome: null,
  });
}

/**
 * Track options for join: each of microphone and camera is on, off, or the call type's default
 * (undefined).
 * @typedef {{microphone?: boolean, camera?: boolean}} CallConnectOptions
 */

export class Call {
  /**
   * Use `client.makeCall(type, id)`, not this constructor.
   * @param {import("./client.js").VideoClient} client
   * @param {string} type call type: "default", "livestream", "audio_room", "development", ...
   * @param {string} id 1-64 characters of [A-Za-z0-9_-.@]
   */
  constructor(client, type, id) {
    this.client = client;
    this.type = type;
    this.id = id;
    this.cid = `${type}:${id}`;
    /** @type {Observable<CallState>} */
    this.state = new Observable(initialState());
    this._events = new Emitter();
    /** @type {CallSession|null} */
    this._media = null;
    /** @type {CallAudio|null} */
    this._audio = null;
    /** @type {MediaStreamTrack|null} */
    this._camera = null;
    this._micIntent = false;
    this._cameraIntent = false;
    this._suspended = false;
    /** @type {Promise<void>|null} */
    this._joining = null;
    /** @type {any} */
    this._settings = null;
  }

  /** @param {Partial<CallState>} changes */
  _update(changes) {
    this.state._set(Object.freeze({ ...this.state.value, ...changes }));
  }

  /**
   * Listen to this call's events (coordinator events for this call, and local ones such as
   * "call.audio_suspended" / "call.audio_resumed"); "*" for all.
   * @param {string} type
   * @param {(event: any) => void} callback
   * @returns {() => void} unsubscribe
   */
  on(type, callback) {
    return this._events.on(type, callback);
  }

  /** @param {any} event */
  _emit(event) {
    this._events.emit(event);
  }

  /** @param {any} response a CallStateResponse */
  _applyState(response) {
    this._settings = response.call.settings;
    this._update({
      ownCapabilities: response.own_capabilities,
      members: response.members.map((/** @type {any} */ mm) => ({ user_id: mm.user_id, role: mm.role })),
      isBackstage: response.call.backstage,
    });
  }

  /** @param {any} event */
  _handleEvent(event) {
    if (event.call) this._update({ isBackstage: event.call.backstage });
    if (event.members && event.type !== "call.member_removed") {
      this._update({ members: event.members.map((/** @type {any} */ mm) => ({ user_id: mm.user_id, role: mm.role })) });
    }
    this._emit(event);
  }

  _path(suffix = "") {
    return `/calls/${encodeURIComponent(this.type)}/${encodeURIComponent(this.id)}${suffix}`;
  }

  // ------------------------------------------------------------- coordinator operations

  /**
   * Get the call, creating it when new (an existing call is returned unchanged); may ring.
   * @param {{members?: {user_id: string, role?: string}[], ring?: boolean, video?: boolean, custom?: object}} [options]
   * @returns {Promise<CallState>}
   */
  async getOrCreate({ members = [], ring = false, video = false, custom = {} } = {}) {
    const response = await this.client._api().request("POST", this._path(), {
      data: { members, custom },
      ring,
      video,
      connection_id: this.client._connectionId(),
    });
    this._applyState(response);
    if (ring) this.client._setOutgoing(this, response.ring_id ?? null);
    return this.state.value;
  }

  /** Get the call's state from the coordinator (and watch its events). */
  async get() {
    this._applyState(
      await this.client._api().request("POST", this._path("/get"), { connection_id: this.client._connectionId() }),
    );
    return this.state.value;
  }

  /**
   * Ring the members other than this user (or just `members`).
   * @param {string[]} [members]
   */
  async ring(members) {
    const answer = await this.client._api().request("POST", this._path("/ring"), {
      video: false,
      member_ids: members ?? null,
    });
    this.client._setOutgoing(this, answer.ring_id ?? null);
  }

  /** Accept the ring. Does not join: call join() next. */
  async accept() {
    await this.client._api().request("POST", this._path("/accept"), {});
    this.client._ringEnded(this, "accepted", false);
  }

  /**
   * Reject the ring; by the caller, cancel it.
   * @param {string} [reason] one of RejectReason (default "decline")
   */
  async reject(reason = RejectReason.DECLINE) {
    const outgoing = this.client._rings.has(this, true) && !this.client._rings.has(this, false);
    await this.client._api().request("POST", this._path("/reject"), { reason: outgoing ? RejectReason.CANCEL : reason });
    this.client._ringEnded(this, outgoing ? "cancelled" : "rejected", outgoing);
  }

  /** End the call for everyone (needs end-call). */
  async end() {
    this._applyState(await this.client._api().request("POST", this._path("/mark_ended"), {}));
    await this._onEnded("call_ended");
  }

  async goLive() {
    this._applyState(await this.client._api().request("POST", this._path("/go_live"), {}));
  }

  async stopLive() {
    this._applyState(await this.client._api().request("POST", this._path("/stop_live"), {}));
  }

  // ------------------------------------------------------------- media

  /** Whether the user wants the microphone on in this call (suspension aside). */
  get microphoneEnabled() {
    return this._micIntent;
  }

  get cameraEnabled() {
    return this._cameraIntent;
  }

  /** The call's remote audio mix as a LevelMeter (what it contributes to the speaker). */
  get audio() {
    return this._audio;
  }

  /**
   * @param {boolean|undefined} option
   * @param {boolean} defaultOn
   * @param {string} capability
   */
  _intent(option, defaultOn, capability) {
    const allowed = this.state.value.ownCapabilities.includes(capability);
    if (option === undefined) return defaultOn && allowed;
    if (option && !allowed) throw new PermissionDeniedError(`cannot publish in ${this.cid}: this user lacks "${capability}"`);
    return option;
  }

  /**
   * Join with media. Resolves once the SFU accepted the session and this page's tracks are
   * published. Joining a call that is already joined or joining does nothing.
   * @param {CallConnectOptions} [options]
   */
  join(options = {}) {
    if (this._media || this._joining) return this._joining ?? Promise.resolve();
    this._joining = this._join(options).finally(() => {
      this._joining = null;
    });
    return this._joining;
  }

  /** @param {CallConnectOptions} options */
  async _join(options) {
    this._update({ status: CallStatus.JOINING });
    /** @type {Call|null} */
    let previous = null;
    try {
      await this.client.audioSession.start();
      previous = await this.client._active.joinStarted(this);
      await this._connectMedia(options);
    } catch (err) {
      this._closeMedia();
      this._suspended = false;
      this._update({ status: CallStatus.IDLE, participants: [], localParticipant: null, isAudioSuspended: false });
      if (previous && previous._media) {
        this.client.state.activeCalls._set([previous]);
        await previous._resume("handover");
      } else {
        await this.client._active.removed(this);
      }
      throw err;
    }
    this._update({ status: CallStatus.JOINED });
    this._syncParticipants();
    if (previous) await previous._leave("replaced");
  }

  /** @param {CallConnectOptions} options */
  async _connectMedia(options) {
    const response = await this.client._api().request("POST", this._path("/join"), {
      create: true,
      connection_id: this.client._connectionId(),
    });
    this._applyState(response);
    const settings = response.call.settings;
    this._micIntent = this._intent(options.microphone, settings.audio.mic_default_on, "send-audio");
    this._cameraIntent = this._intent(
      options.camera,
      settings.video.camera_default_on && settings.video.enabled,
      "send-video",
    );
    const audio = this.client.audioSession.createCallAudio();
    audio.setSuspended(this._suspended);
    this._audio = audio;
    const session = new CallSession(response.credentials, audio, {
      onChange: () => this._syncParticipants(),
      onEnded: (reason) => void this._onEnded(reason),
      onConnection: (state) => void this._mediaConnection(state),
      refreshCredentials: async (sessionId) => {
        const fresh = await this.client._api().request("POST", this._path("/sfu_token"), { session_id: sessionId });
        return fresh.credentials;
      },
    });
    this._media = session;
    this._update({ localParticipant: { userId: this.client.user.id, sessionId: response.session_id } });
    await session.connect({ audioPaused: this._suspended });
    if (this._suspended) session.setAudioForwarding(true);
    const sendAudio = this.state.value.ownCapabilities.includes("send-audio");
    const mic = sendAudio && this._effectiveMic ? await audio.microphoneTrack() : null;
    const camera = this._cameraIntent ? await this.client.audioSession.camera() : null;
    this._camera = camera;
    await session.publish({
      audio: sendAudio,
      video: this._cameraIntent,
      audioTrack: mic,
      videoTrack: camera,
      audioMuted: !this._effectiveMic,
      videoMuted: !this._cameraIntent,
    });
  }

  get _effectiveMic() {
    return this._micIntent && !this._suspended;
  }

  /** Leave the call (media closed; the call stays usable: join() again). */
  async leave() {
    await this._leave("left");
  }

  /** @param {string} reason */
  async _leave(reason) {
    if (!this._media && !this._joining) return;
    this._closeMedia();
    this._suspended = false;
    this._update({ status: CallStatus.IDLE, participants: [], localParticipant: null, isAudioSuspended: false });
    this._emit({ type: "call.left", cid: this.cid, reason });
    await this.client._active.removed(this);
  }

  _closeMedia() {
    this._media?.close();
    this._media = null;
    this._audio?.close();
    this._audio = null;
    this._camera?.stop();
    this._camera = null;
  }

  /**
   * The SFU socket is being resumed ("reconnecting") or was ("connected"): show it, then re-send what
   * the SFU must know (mute states, audio forwarding paused while suspended).
   * @param {"reconnecting"|"connected"} state
   */
  async _mediaConnection(state) {
    const media = this._media;
    if (!media) return;
    if (state === "reconnecting") {
      this._update({ status: CallStatus.RECONNECTING });
      return;
    }
    for (const kind of /** @type {const} */ (["audio", "video"])) {
      const muted = media.published[kind];
      if (muted !== undefined) {
        try {
          media._send({ type: "update_mute_state", kind, muted });
        } catch {}
      }
    }
    media.setAudioForwarding(this._suspended);
    this._update({ status: CallStatus.JOINED });
    this._syncParticipants();
  }

  /** @param {string} reason */
  async _onEnded(reason) {
    if (!this._media) return;
    await this._leave(reason);
  }

  _syncParticipants() {
    const media = this._media;
    if (!media) return;
    const audio = this._audio;
    /** @type {Participant[]} */
    const participants = [...media.participants.values()].map((p) => {
      const mid = p.audioMid;
      return Object.freeze({
        userId: p.userId,
        sessionId: p.sessionId,
        audioMuted: p.tracks.audio ?? true,
        videoMuted: p.tracks.video ?? true,
        videoTrack: p.video,
        audioLevel: () => (mid !== null ? (audio?.meterFor(mid)?.level() ?? -120) : -120),
      });
    });
    this._update({ participants });
  }

  /**
   * Turn the microphone on or off in this call. While suspended, "on" takes effect at resume.
   * @param {boolean} enabled
   */
  async setMicrophoneEnabled(enabled) {
    if (enabled && !this.state.value.ownCapabilities.includes("send-audio")) {
      throw new PermissionDeniedError(`cannot send audio in ${this.cid}: this user lacks "send-audio"`);
    }
    this._micIntent = enabled;
    await this._applyMicrophone();
  }

  async _applyMicrophone() {
    if (!this._media || !this._audio) return;
    const on = this._effectiveMic;
    await this._media.setTrack("audio", on ? await this._audio.microphoneTrack() : null, !on);
  }

  /**
   * Turn the camera on or off in this call (publishes video on first use).
   * @param {boolean} enabled
   */
  async setCameraEnabled(enabled) {
    if (enabled && !this.state.value.ownCapabilities.includes("send-video")) {
      throw new PermissionDeniedError(`cannot send video in ${this.cid}: this user lacks "send-video"`);
    }
    this._cameraIntent = enabled;
    const media = this._media;
    if (!media) return;
    if (enabled && !this._camera) this._camera = await this.client.audioSession.camera();
    if (!media.transceivers.video) {
      if (enabled) {
        await media.publish({
          audio: false,
          video: true,
          audioTrack: null,
          videoTrack: this._camera,
          audioMuted: true,
          videoMuted: false,
        });
      }
      return;
    }
    await media.setTrack("video", enabled ? this._camera : null, !enabled);
  }

  /**
   * Remove the camera from this call altogether (the others see the video track unpublished, not
   * just muted); `setCameraEnabled(true)` publishes it again.
   */
  async removeCamera() {
    this._cameraIntent = false;
    this._camera?.stop();
    this._camera = null;
    await this._media?.unpublish("video");
  }

  /** @param {boolean} enabled */
  async _setMicrophoneIfAllowed(enabled) {
    if (!enabled || this.state.value.ownCapabilities.includes("send-audio")) await this.setMicrophoneEnabled(enabled);
  }

  /** @param {boolean} enabled */
  async _setCameraIfAllowed(enabled) {
    if (!enabled || this.state.value.ownCapabilities.includes("send-video")) await this.setCameraEnabled(enabled);
  }

  // ------------------------------------------------------------- audio focus

  /**
   * Suspend this call's audio (SPEC §2.3): its remote audio stops reaching the speaker (muted, and
   * the SFU stops forwarding it, so nothing is decoded) and the microphone stops reaching the call.
   * Idempotent; works before media exists (the media then starts suspended). Video is untouched.
   */
  async suspendAudio() {
    await this._suspend("suspend");
  }

  /** Resume exactly what suspendAudio took away (a microphone the user turned off stays off). */
  async resumeAudio() {
    await this._resume("resume");
  }

  /** @param {string} reason */
  async _suspend(reason) {
    if (this._suspended) return;
    this._suspended = true;
    this._audio?.setSuspended(true);
    this._update({ isAudioSuspended: true });
    this._media?.setAudioForwarding(true);
    await this._applyMicrophone();
    this._emit({ type: "call.audio_suspended", cid: this.cid, reason });
  }

  /** @param {string} reason */
  async _resume(reason) {
    if (!this._suspended) return;
    this._suspended = false;
    this._media?.setAudioForwarding(false);
    this._audio?.setSuspended(false);
    this._update({ isAudioSuspended: false });
    await this._applyMicrophone();
    this._emit({ type: "call.audio_resumed", cid: this.cid, reason });
  }
}
