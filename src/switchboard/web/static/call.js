// @ts-check
/**
 * A call: coordinator operations (getOrCreate, ring, accept, reject, end), media (join, leave,
 * microphone, camera), audio focus (suspendAudio, resumeAudio) and what SPEC §2.8 adds to it
 * (ducked suspension, hold audio, playout gain and pan, microphone audience). Mirrors the Python
 * SDK's switchboard.sdk.call.Call.
 * @module call
 */

import { CallAudio, checkGainDb, checkPan } from "./audio.js";
import { Emitter, Observable } from "./emitter.js";
import { CallStateError, InvalidRequestError, PermissionDeniedError } from "./errors.js";
import { SuspendMode, checkSuspendMode } from "./multicall.js";
import { CallSession } from "./session.js";

/** most user ids a microphone audience may name (the SFU's limit, protocol.sfu.MAX_AUDIENCE) */
export const MAX_AUDIENCE = 64;
/** what an id may look like (the coordinator's Identifier pattern) */
const IDENTIFIER = /^[A-Za-z0-9_\-.@]{1,64}$/;

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
 *   as it plays here (-120 when nothing is heard); for speaking indicators
 * @property {number} sfuAudioLevel the participant's microphone level as the SFU measured it (RMS
 *   amplitude, 0..1, a few updates per second; the Python SDK's `audio_level`)
 * @property {boolean} isSpeaking the SFU hears this participant speak (above -50 dBov)
 * @property {string|null} connectionQuality the SFU's rating: "excellent", "good", "poor" (null: not yet)
 * @property {string[]|null} audience who hears this participant's microphone (user ids), or null for
 *   everyone (SPEC §2.8)
 * @property {(userId: string) => boolean} isWhisperingTo the participant's microphone goes to a
 *   chosen audience that includes `userId`
 */

/**
 * This page's own participant in a call.
 * @typedef {object} LocalParticipant
 * @property {string} userId
 * @property {string} sessionId
 * @property {string[]|null} audience who hears this page's microphone (null: everyone)
 * @property {number} sfuAudioLevel
 * @property {boolean} isSpeaking
 * @property {string|null} connectionQuality
 */

/**
 * A frozen snapshot of a call's state.
 * @typedef {object} CallState
 * @property {string} status one of CallStatus
 * @property {boolean} isAudioSuspended
 * @property {string|null} suspendMode the suspension in force, one of SuspendMode (null when not
 *   suspended; SPEC §2.8)
 * @property {Participant[]} participants the others in the call, in join order
 * @property {LocalParticipant|null} localParticipant
 * @property {Participant|LocalParticipant|null} dominantSpeaker who the SFU hears as the main
 *   speaker (with hysteresis); null before anyone spoke
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
    suspendMode: null,
    participants: [],
    localParticipant: null,
    dominantSpeaker: null,
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

/**
 * Options of suspendAudio (SPEC §2.8).
 * @typedef {object} SuspendOptions
 * @property {string} [mode] one of SuspendMode (default: the client's `suspendMode`)
 * @property {MediaStreamTrack|null} [holdAudio] an audio track the others hear instead of silence
 *   while suspended (e.g. `client.audioSession.toneTrack(440)`, or an <audio> element's
 *   `captureStream()` track); it is not stopped at resume (the page owns it)
 */

export class Call {
  /**
   * Use `client.makeCall(type, id)`, not this constructor.
   * @param {import("./client.js").VideoClient} client
   * @param {string} type call type: "default", "livestream", "audio_room", "development", ...
   * @param {string} id 1-64 characters of [A-Za-z0-9_-.@]
   * @param {{priority: number}} [preferences] see client.makeCall
   */
  constructor(client, type, id, preferences = { priority: 0 }) {
    this.client = client;
    this.type = type;
    this.id = id;
    this.cid = `${type}:${id}`;
    /** @type {{priority: number}} */
    this.preferences = preferences;
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
    /** @type {string|null} one of SuspendMode while suspended */
    this._suspendMode = null;
    /** @type {MediaStreamTrack|null} what the others hear while suspended */
    this._hold = null;
    this._playoutGainDb = 0;
    this._playoutPan = 0;
    /** @type {string[]|null} who hears this page's microphone (null: everyone) */
    this._audience = null;
    /** microphone changes, one at a time (each applies the state in force when it runs) */
    this._micChain = Promise.resolve();
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
      this._resetSuspension();
      this._update({ status: CallStatus.IDLE, participants: [], localParticipant: null, dominantSpeaker: null });
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
    audio.setSuspension(this._suspendMode, this.client.options.duckGainDb);
    audio.setPlayout({ gainDb: this._playoutGainDb, pan: this._playoutPan });
    this._audio = audio;
    const session = new CallSession(response.credentials, audio, {
      onChange: () => this._syncParticipants(),
      onEnded: (reason) => void this._onEnded(reason),
      onConnection: (state) => void this._mediaConnection(state),
      refreshCredentials: async (sessionId) => {
        const fresh = await this.client._api().request("POST", this._path("/sfu_token"), { session_id: sessionId });
        return fresh.credentials;
      },
      onModeration: (notice) => this._onModeration(notice),
      onMessage: (message) =>
        this._emit({
          type: "participant_message",
          cid: this.cid,
          user_id: message.user_id,
          session_id: message.session_id,
          data: message.data,
        }),
    });
    this._media = session;
    this._update({ localParticipant: this._localParticipant(response.session_id) });
    await session.connect({ audioPaused: this._forwardingPaused });
    // suspended (or whispering) while the socket was connecting: tell the SFU now
    if (this._forwardingPaused) session.setAudioForwarding(true);
    if (this._audience !== null) session.setAudience(this._audience);
    const sendAudio = this.state.value.ownCapabilities.includes("send-audio");
    const mic = sendAudio ? await this._audioToSend() : null;
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

  /** What this call's audio sender carries: the microphone, the hold source while suspended, or nothing. */
  async _audioToSend() {
    if (this._effectiveMic && this._audio) return await this._audio.microphoneTrack();
    return this._suspended ? this._hold : null;
  }

  /** Leave the call (media closed; the call stays usable: join() again). */
  async leave() {
    await this._leave("left");
  }

  /** @param {string} reason */
  async _leave(reason) {
    if (!this._media && !this._joining) return;
    this._closeMedia();
    this._resetSuspension();
    this._update({ status: CallStatus.IDLE, participants: [], localParticipant: null, dominantSpeaker: null });
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
    media.setAudioForwarding(this._forwardingPaused);
    media.setAudience(this._audience);
    this._update({ status: CallStatus.JOINED });
    this._syncParticipants();
  }

  /** @param {string} reason */
  async _onEnded(reason) {
    if (!this._media) return;
    await this._leave(reason);
  }

  /**
   * This page's participant, as the SFU's latest reports describe it.
   * @param {string} sessionId
   * @returns {LocalParticipant}
   */
  _localParticipant(sessionId) {
    const media = this._media;
    const level = media?.audioLevels.get(sessionId);
    return Object.freeze({
      userId: this.client.user.id,
      sessionId,
      audience: this._audience,
      sfuAudioLevel: level?.level ?? 0,
      isSpeaking: level?.speaking ?? false,
      connectionQuality: media?.connectionQuality[sessionId] ?? null,
    });
  }

  _syncParticipants() {
    const media = this._media;
    if (!media) return;
    const audio = this._audio;
    /** @type {Participant[]} */
    const participants = [...media.participants.values()].map((p) => {
      const mid = p.audioMid;
      const level = media.audioLevels.get(p.sessionId);
      const audience = p.audience;
      return Object.freeze({
        userId: p.userId,
        sessionId: p.sessionId,
        audioMuted: p.tracks.audio ?? true,
        videoMuted: p.tracks.video ?? true,
        videoTrack: p.video,
        audioLevel: () => (mid !== null ? (audio?.meterFor(mid)?.level() ?? -120) : -120),
        sfuAudioLevel: level?.level ?? 0,
        isSpeaking: level?.speaking ?? false,
        connectionQuality: media.connectionQuality[p.sessionId] ?? null,
        audience,
        isWhisperingTo: (/** @type {string} */ userId) => audience !== null && audience.includes(userId),
      });
    });
    const own = this.state.value.localParticipant;
    const local = own ? this._localParticipant(own.sessionId) : null;
    const dominant = [...participants, ...(local ? [local] : [])].find((q) => q.sessionId === media.dominantSpeaker) ?? null;
    const before = this.state.value.dominantSpeaker;
    this._update({ participants, localParticipant: local, dominantSpeaker: dominant });
    if (dominant && before?.sessionId !== dominant.sessionId) {
      this._emit({
        type: "call.dominant_speaker_changed",
        cid: this.cid,
        user_id: dominant.userId,
        session_id: dominant.sessionId,
      });
    }
  }

  /**
   * A moderator acted on this session (the SFU told us; it already enforces it): muted kinds go off
   * here too (`call.muted_by_moderator`, the user unmutes them again), or the call is left
   * (`call.removed`, then `call.left` with reason "removed").
   * @param {import("./session.js").ModerationNotice} notice
   */
  _onModeration(notice) {
    if (notice.action === "muted") {
      if (notice.kinds.includes("audio")) {
        this._micIntent = false;
        void this._applyMicrophone().catch(() => {});
      }
      if (notice.kinds.includes("video")) {
        this._cameraIntent = false;
        void this._media?.setTrack("video", null, true).catch(() => {});
      }
      this._emit({ type: "call.muted_by_moderator", cid: this.cid, kinds: [...notice.kinds], by: notice.by });
    } else {
      this._emit({ type: "call.removed", cid: this.cid, by: notice.by, blocked: notice.blocked });
    }
  }

  /**
   * Send `data` (a JSON object, at most 4 KiB of compact JSON) to the others joined now, through the
   * SFU (every other session, or only `sessionIds`); they get a "participant_message" event. Never
   * stored. Throws InvalidRequestError (not a JSON object, too large), CallStateError (not joined),
   * NetworkError (the SFU connection is down).
   * @param {object} data
   * @param {{sessionIds?: string[]|null}} [options]
   */
  async sendMessage(data, { sessionIds = null } = {}) {
    if (typeof data !== "object" || data === null || Array.isArray(data)) {
      throw new InvalidRequestError("message data must be a JSON object");
    }
    const size = new TextEncoder().encode(JSON.stringify(data)).length;
    if (size > 4096) throw new InvalidRequestError(`message data is ${size} bytes of JSON; at most 4096`);
    if (sessionIds !== null && (!Array.isArray(sessionIds) || !sessionIds.every((x) => typeof x === "string" && x))) {
      throw new InvalidRequestError("sessionIds must be a list of session ids");
    }
    const media = this._media;
    if (!media || this.state.value.status !== CallStatus.JOINED) {
      throw new CallStateError(`cannot send a participant message in ${this.cid}: it is ${this.state.value.status}, not joined`);
    }
    media.sendMessage(data, sessionIds);
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

  /** Put on the audio sender what the call should send now (microphone, hold source or nothing). */
  _applyMicrophone() {
    const run = this._micChain.then(async () => {
      if (!this._media || !this._audio) return;
      const track = await this._audioToSend();
      if (!this._media) return;
      await this._media.setTrack("audio", track, !this._effectiveMic);
      this._syncParticipants();
    });
    this._micChain = run.catch(() => {});
    return run;
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
      this._syncParticipants();
      return;
    }
    await media.setTrack("video", enabled ? this._camera : null, !enabled);
    this._syncParticipants();
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
    this._syncParticipants();
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
   * Suspend this call's audio (SPEC §2.3, §2.8): the microphone stops reaching the call and, unless
   * ducked, the call's remote audio stops reaching the speaker.
   *
   * `mode` SILENT: nothing of the call plays (its gain is 0, its tracks disabled) and the SFU stops
   * forwarding its audio to this session, so nothing is decoded. DUCKED: its audio keeps playing at
   * the client's `duckGainDb` (plus this call's playout gain). Default: the client's `suspendMode`.
   * Suspending a suspended call in the other mode switches the mode. `holdAudio`: while suspended
   * the others hear that track instead of silence (sent on the microphone's sender; this page's
   * participant still shows its microphone off). Idempotent; holds at any moment after join()
   * starts (media that appears later starts suspended). Emits "call.audio_suspended" with `reason`
   * and `mode`. Video is untouched.
   *
   * Throws InvalidRequestError (a mode that is not a SuspendMode, a holdAudio that is not an audio
   * MediaStreamTrack) and CallStateError when the call is neither joining nor joined (a suspension set
   * before join() would make the call join unheard: start join() first, or let SUSPEND_INCOMING do it).
   * @param {SuspendOptions} [options]
   */
  async suspendAudio({ mode, holdAudio = null } = {}) {
    if (mode !== undefined) checkSuspendMode(mode, "suspendAudio mode");
    if (holdAudio !== null && !(holdAudio instanceof MediaStreamTrack && holdAudio.kind === "audio")) {
      throw new InvalidRequestError("suspendAudio holdAudio must be an audio MediaStreamTrack (e.g. audioSession.toneTrack(440))");
    }
    const status = this.state.value.status;
    if (!(/** @type {string[]} */ ([CallStatus.JOINING, CallStatus.JOINED, CallStatus.RECONNECTING])).includes(status)) {
      throw new CallStateError(
        `cannot suspend audio of ${this.cid}: it is ${status}, not joined; call suspendAudio() once join() ` +
          "has started (a suspension then holds while the call connects)",
      );
    }
    await this._suspend("suspend", mode ?? null, holdAudio);
  }

  /** Resume exactly what suspendAudio took away (a microphone the user turned off stays off). */
  async resumeAudio() {
    await this._resume("resume");
  }

  /** The suspension in force, one of SuspendMode (null when not suspended). */
  get suspendMode() {
    return this._suspendMode;
  }

  /** The SFU stops forwarding the call's audio to this session only in a SILENT suspension. */
  get _forwardingPaused() {
    return this._suspended && this._suspendMode !== SuspendMode.DUCKED;
  }

  /** Leaving resets suspension (SPEC §2.4.3). */
  _resetSuspension() {
    this._suspended = false;
    this._suspendMode = null;
    this._hold = null;
    this._update({ isAudioSuspended: false, suspendMode: null });
  }

  /**
   * @param {string} reason
   * @param {string|null} [mode] one of SuspendMode (null: the client's suspendMode)
   * @param {MediaStreamTrack|null} [hold]
   */
  async _suspend(reason, mode = null, hold = null) {
    const chosen = mode ?? this.client.options.suspendMode;
    if (this._suspended && this._suspendMode === chosen && this._hold === hold) return;
    this._suspended = true;
    this._suspendMode = chosen;
    this._hold = hold;
    this._audio?.setSuspension(chosen, this.client.options.duckGainDb);
    this._update({ isAudioSuspended: true, suspendMode: chosen });
    this._media?.setAudioForwarding(this._forwardingPaused);
    await this._applyMicrophone();
    this._emit({ type: "call.audio_suspended", cid: this.cid, reason, mode: chosen });
    this.client._active.checkContention();
  }

  /** @param {string} reason */
  async _resume(reason) {
    if (!this._suspended) return;
    const mode = this._suspendMode;
    this._suspended = false;
    this._suspendMode = null;
    this._hold = null;
    this._media?.setAudioForwarding(false);
    this._audio?.setSuspension(null);
    this._update({ isAudioSuspended: false, suspendMode: null });
    await this._applyMicrophone();
    this._emit({ type: "call.audio_resumed", cid: this.cid, reason, mode });
    this.client._active.checkContention();
  }

  // ------------------------------------------------------------- per-call playout (SPEC §2.8)

  /**
   * Play this call's remote audio `db` dB louder (> 0) or quieter (< 0) at this page's speaker.
   * Adds to the duck gain while ducked; holds across rejoins of this Call object. `db` within
   * -120..+24, else InvalidRequestError.
   * @param {number} db
   */
  async setPlayoutGain(db) {
    this._playoutGainDb = checkGainDb(db, "playout gain");
    this._audio?.setPlayout({ gainDb: this._playoutGainDb });
  }

  /**
   * Place this call's audio from -1 (left) through 0 (centre) to +1 (right) on a stereo speaker.
   * Constant power with the centre at unity, as in the Python SDK: left gain `sqrt(2)·cos θ`, right
   * `sqrt(2)·sin θ`, `θ = (p + 1)·π/4` (hard left: +3 dB on the left, nothing on the right). Holds
   * across rejoins. `pan` outside -1..+1: InvalidRequestError.
   * @param {number} pan
   */
  async setPlayoutPan(pan) {
    this._playoutPan = checkPan(pan);
    this._audio?.setPlayout({ pan: this._playoutPan });
  }

  /** This call's playout gain in dB (0: as received). */
  get playoutGainDb() {
    return this._playoutGainDb;
  }

  /** This call's pan, -1 (left) .. +1 (right). */
  get playoutPan() {
    return this._playoutPan;
  }

  // ------------------------------------------------------------- microphone audience (SPEC §2.8)

  /**
   * Forward this page's microphone in this call only to the sessions of `userIds` (a whisper is an
   * audience of one); null restores everyone (barge in: audience null and focus). The SFU enforces
   * it: no other session receives a packet of it, whatever its client does. Everyone in the call
   * sees it as the `audience` of this page's participant (`participant.isWhisperingTo(me)`); here it
   * is `state.value.localParticipant.audience`. Holds for the rest of this Call object's life,
   * rejoins included; an empty list: nobody hears the microphone.
   * Throws InvalidRequestError for anything but null or a list of user ids (at most 64).
   * @param {string[]|null} userIds
   */
  async setMicrophoneAudience(userIds) {
    /** @type {string[]|null} */
    let audience = null;
    if (userIds !== null) {
      if (!Array.isArray(userIds)) {
        throw new InvalidRequestError(
          `microphone audience must be a list of user ids or null, not ${JSON.stringify(userIds) ?? String(userIds)}`,
        );
      }
      userIds.forEach((id, i) => {
        if (typeof id !== "string" || !IDENTIFIER.test(id)) {
          throw new InvalidRequestError(
            `microphone audience[${i}] ${JSON.stringify(id) ?? String(id)} is not valid: use 1 to 64 characters from A-Z a-z 0-9 _ - . @`,
          );
        }
      });
      audience = [...new Set(userIds)];
      if (audience.length > MAX_AUDIENCE) {
        throw new InvalidRequestError(`a microphone audience names at most ${MAX_AUDIENCE} users, got ${audience.length}`);
      }
    }
    this._audience = audience;
    this._media?.setAudience(audience);
    this._syncParticipants();
  }

  /** Who hears this page's microphone in this call (null: everyone). */
  get microphoneAudience() {
    return this._audience;
  }
}
