// @ts-check
/**
 * One joined call's media: the SFU signalling WebSocket and the publisher/subscriber peer
 * connections (docs/protocol.md; the message models are switchboard.protocol.sfu).
 *
 * The page offers the publisher connection (its microphone as Opus, its camera as VP8); the SFU
 * offers the subscriber connection with everyone else's tracks and renegotiates it as they come and
 * go. The `tracks` map of each `subscriber_offer` says which participant each transceiver `mid`
 * carries. ICE is trickled (RFC 8838): each description is sent at once and the page's candidates
 * follow as `ice_candidate` messages; the SFU's descriptions carry all of its candidates.
 * @module session
 */

import { AuthenticationError, CallStateError, NetworkError, errorForSfuCode } from "./errors.js";

const JOIN_TIMEOUT_MS = 20_000;
const HEALTH_CHECK_MS = 10_000;
const RECONNECT_WINDOW_MS = 4_000;

/**
 * @typedef {{user_id: string, session_id: string, kind: "audio"|"video"}} RemoteTrack
 * @typedef {{userId: string, sessionId: string, tracks: Record<string, boolean>, video: MediaStreamTrack|null, audioMid: string|null, audience: string[]|null}} RemoteParticipant
 *   tracks: kind -> muted, as the SFU announced; audience: who hears its audio (null: everyone)
 * @typedef {{user_id: string, session_id: string, tracks: {kind: "audio"|"video", muted: boolean}[], audience?: string[]|null}} ParticipantInfo
 * @typedef {{user_id: string, session_id: string, level: number, speaking: boolean}} AudioLevel
 *   one session's microphone as the SFU measured it: level is an RMS amplitude (0..1) from the
 *   RFC 6464 levels its packets carry; speaking: above -50 dBov
 * @typedef {{action: "muted"|"removed", by: string, kinds: ("audio"|"video")[], blocked: boolean}} ModerationNotice
 *   what a moderator did to this session (the SFU already enforces it)
 * @typedef {{onChange: () => void, onEnded: (reason: string) => void, onConnection: (state: "reconnecting"|"connected") => void, refreshCredentials?: (sessionId: string) => Promise<any>, onModeration?: (notice: ModerationNotice) => void, onMessage?: (message: {user_id: string, session_id: string, data: object}) => void}} SessionHooks
 *   refreshCredentials: a fresh SFU token for this session (`POST .../sfu_token`), used on resume;
 *   onModeration: a moderator muted or removed this session; onMessage: a participant message
 */

/**
 * Prefer the codecs the SFU forwards (Opus; VP8 with its RTX) on a transceiver.
 * @param {RTCRtpTransceiver} transceiver
 * @param {"audio"|"video"} kind
 */
function preferForwardable(transceiver, kind) {
  const caps = RTCRtpSender.getCapabilities(kind);
  if (!caps || typeof transceiver.setCodecPreferences !== "function") return;
  const wanted = kind === "audio" ? ["audio/opus"] : ["video/vp8", "video/rtx"];
  const codecs = caps.codecs.filter((c) => wanted.includes(c.mimeType.toLowerCase()));
  if (codecs.length) transceiver.setCodecPreferences(codecs);
}

/**
 * Ask for stereo Opus in our answer (RFC 7587 `stereo=1`) in every audio section, so a stereo
 * publisher plays in stereo (a mono one still plays on both channels).
 * @param {string} sdp
 */
export function withOpusStereo(sdp) {
  const pts = new Set([...sdp.matchAll(/a=rtpmap:(\d+) opus\/48000/gi)].map((m) => m[1]));
  return sdp.replace(/a=fmtp:(\d+) ([^\r\n]*)/g, (line, pt, params) =>
    !pts.has(pt) || /(^|;)\s*stereo=/.test(params) ? line : `a=fmtp:${pt} ${params};stereo=1`,
  );
}

export class CallSession {
  /**
   * @param {{server: {url: string}, token: string, ice_servers: {urls: string[], username?: string|null, credential?: string|null}[]}} credentials
   *   the `credentials` of the coordinator's join answer
   * @param {import("./audio.js").CallAudio} audio
   * @param {SessionHooks} hooks
   */
  constructor(credentials, audio, hooks) {
    this.credentials = credentials;
    this.audio = audio;
    this.hooks = hooks;
    /** @type {RTCConfiguration} */
    const config = {
      iceServers: credentials.ice_servers.map((s) => ({
        urls: s.urls,
        ...(s.username ? { username: s.username } : {}),
        ...(s.credential ? { credential: s.credential } : {}),
      })),
    };
    this.publisher = new RTCPeerConnection(config);
    this.subscriber = new RTCPeerConnection(config);
    /** @type {string | null} */
    this.sessionId = null;
    /** @type {Map<string, RemoteParticipant>} session id -> participant */
    this.participants = new Map();
    /** @type {Map<string, AudioLevel>} the SFU's latest audio levels (`audio_levels`), by session id */
    this.audioLevels = new Map();
    /** @type {string|null} the dominant speaker's session id, as the SFU says (null before anyone spoke) */
    this.dominantSpeaker = null;
    /** @type {Record<string, "excellent"|"good"|"poor">} the SFU's connection ratings, by session id */
    this.connectionQuality = {};
    /** a moderator removed this session: it is not resumed */
    this.removed = false;
    /** @type {Record<string, RemoteTrack>} mid -> owner, from the newest subscriber offer */
    this.midOwner = {};
    /** @type {{mid: string, kind: string, streamId: string|null}[]} every `track` event, in order */
    this.trackEvents = [];
    /** @type {Map<string, MediaStreamTrack>} mid -> remote track */
    this.remoteTracks = new Map();
    /** @type {Partial<Record<"audio"|"video", RTCRtpTransceiver>>} */
    this.transceivers = {};
    /** @type {Partial<Record<"audio"|"video", boolean>>} kind -> muted */
    this.published = {};
    /** @type {Map<string, {resolve: (m: any) => void, reject: (e: Error) => void}>} */
    this._pending = new Map();
    this._chain = Promise.resolve();
    this._publishing = Promise.resolve();
    this.closed = false;
    this._resuming = false;
    /** how many times the signalling socket was resumed */
    this.reconnects = 0;
    /** @type {any[]} */
    this.errors = [];
    /** @type {WebSocket | null} */
    this._ws = null;
    /** @type {ReturnType<typeof setInterval> | undefined} */
    this._pinger = undefined;
    this.subscriber.addEventListener("track", (e) => this._onTrack(e));
    /** @type {Record<"publisher"|"subscriber", RTCIceCandidate[] | null>} candidates held until their description was sent (null: sent) */
    this._heldCandidates = { publisher: [], subscriber: [] };
    this.publisher.addEventListener("icecandidate", (e) => this._trickle("publisher", e.candidate));
    this.subscriber.addEventListener("icecandidate", (e) => this._trickle("subscriber", e.candidate));
  }

  // ------------------------------------------------------------- signalling

  /** @param {object} message */
  _send(message) {
    if (!this._ws || this._ws.readyState !== WebSocket.OPEN) throw new NetworkError("the SFU connection is closed");
    this._ws.send(JSON.stringify(message));
  }

  /**
   * @param {string} type the SFU message type awaited
   * @param {string} what what failed, for the error message
   * @returns {Promise<any>}
   */
  _expect(type, what) {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this._pending.delete(type);
        reject(new NetworkError(`${what} within ${JOIN_TIMEOUT_MS / 1000} s`));
      }, JOIN_TIMEOUT_MS);
      this._pending.set(type, {
        resolve: (m) => (clearTimeout(timer), resolve(m)),
        reject: (e) => (clearTimeout(timer), reject(e)),
      });
    });
  }

  /**
   * Open the SFU signalling socket (handlers attached). Rejects with NetworkError.
   * @returns {Promise<WebSocket>}
   */
  async _openSocket() {
    const ws = new WebSocket(this.credentials.server.url);
    await new Promise((resolve, reject) => {
      ws.onopen = resolve;
      ws.onerror = () => reject(new NetworkError(`cannot reach the SFU at ${this.credentials.server.url}`));
    });
    ws.onerror = null;
    this._ws = ws;
    ws.onmessage = (msg) => {
      // one message at a time, in order: SDP work must not interleave
      this._chain = this._chain.then(() => this._handle(JSON.parse(String(msg.data)))).catch((err) =>
        console.error("switchboard: handling an SFU message failed", err),
      );
    };
    ws.onclose = () => {
      if (ws !== this._ws) return;
      clearInterval(this._pinger);
      const err = new NetworkError("the SFU connection dropped");
      for (const p of this._pending.values()) p.reject(err);
      this._pending.clear();
      if (this.closed || this._resuming || this.removed) return;
      if (this.sessionId === null) this.hooks.onEnded("sfu_disconnected");
      else void this._resume();
    };
    return ws;
  }

  /**
   * Take a fresh SFU token for this session before resuming (the first one may have expired: SFU
   * tokens live minutes, a call hours). A coordinator that cannot be reached leaves the old token;
   * one that refuses (session ended, call ended, permission gone) ends the resume.
   */
  async _refreshToken() {
    const refresh = this.hooks.refreshCredentials;
    if (!refresh || this.sessionId === null) return;
    try {
      this.credentials = await refresh(this.sessionId);
    } catch (err) {
      if (!(err instanceof NetworkError)) throw new CallStateError(`cannot resume the SFU session: ${err}`);
    }
  }

  /**
   * Send one of our ICE candidates to the SFU (null: gathering is complete), once the description
   * it belongs to has been sent.
   * @param {"publisher"|"subscriber"} target
   * @param {RTCIceCandidate|null} candidate
   */
  _trickle(target, candidate) {
    if (candidate !== null && !candidate.candidate) return; // an empty candidate: end of one generation
    const held = this._heldCandidates[target];
    if (held !== null) {
      held.push(/** @type {RTCIceCandidate} */ (candidate));
      return;
    }
    try {
      this._send({
        type: "ice_candidate",
        target,
        candidate: candidate?.candidate ?? null,
        sdp_mid: candidate?.sdpMid ?? null,
        sdp_mline_index: candidate?.sdpMLineIndex ?? null,
      });
    } catch {}
  }

  /**
   * The description of `target` was sent: send the candidates held for it.
   * @param {"publisher"|"subscriber"} target
   */
  _releaseCandidates(target) {
    const held = this._heldCandidates[target] ?? [];
    this._heldCandidates[target] = null;
    for (const candidate of held) this._trickle(target, candidate);
  }

  _startPinger() {
    clearInterval(this._pinger);
    this._pinger = setInterval(() => {
      try {
        this._send({ type: "health_check" });
      } catch {}
    }, HEALTH_CHECK_MS);
  }

  /**
   * Open the SFU socket and join. Throws AuthenticationError / CallStateError (refused), NetworkError.
   * @param {{audioPaused?: boolean}} [options] audioPaused: start with audio forwarding paused
   */
  async connect({ audioPaused = false } = {}) {
    await this._openSocket();
    const joined = this._expect("join_response", "the SFU did not accept the session");
    this._send({ type: "join", token: this.credentials.token, audio_paused: audioPaused });
    const response = await joined;
    this.sessionId = response.session_id;
    for (const info of response.participants) this._addParticipant(info);
    this._startPinger();
    this.hooks.onChange();
  }

  /**
   * The signalling socket dropped: resume the same session within the SFU's grace period (peer
   * connections untouched; the SFU re-offers the subscriber connection), as the Python SDK does.
   * Gives up after 4 s, or at once when the SFU refuses (the call then ends: "sfu_disconnected").
   */
  async _resume() {
    this._resuming = true;
    this.hooks.onConnection("reconnecting");
    const deadline = performance.now() + RECONNECT_WINDOW_MS;
    let delay = 50;
    const sleep = (/** @type {number} */ ms) => new Promise((r) => setTimeout(r, ms));
    try {
      while (!this.closed && performance.now() < deadline) {
        /** @type {WebSocket} */
        let ws;
        try {
          ws = await this._openSocket();
        } catch {
          await sleep(delay);
          delay = Math.min(delay * 2, 1000);
          continue;
        }
        try {
          await this._refreshToken();
        } catch (err) {
          console.warn(`switchboard: ${err}`);
          ws.close();
          break;
        }
        const joined = this._expect("join_response", "the SFU did not resume the session");
        try {
          this._send({ type: "join", token: this.credentials.token, reconnect: true });
          await joined;
        } catch (err) {
          if (err instanceof AuthenticationError || err instanceof CallStateError) break;
          ws.close();
          await sleep(delay);
          continue;
        }
        this._startPinger();
        this.reconnects += 1;
        this._resuming = false;
        this.hooks.onConnection("connected");
        return;
      }
    } finally {
      this._resuming = false;
    }
    if (!this.closed) this.hooks.onEnded("sfu_disconnected");
  }

  /** @param {any} message */
  async _handle(message) {
    const pending = this._pending.get(message.type);
    if (pending) this._pending.delete(message.type);
    switch (message.type) {
      case "error": {
        this.errors.push(message);
        console.warn(`switchboard: SFU error ${message.code}: ${message.message}`);
        if (message.fatal || ["permission_denied", "invalid_sdp", "unsupported_codec"].includes(message.code)) {
          const err = errorForSfuCode(message.code, message.message);
          for (const p of this._pending.values()) p.reject(err);
          this._pending.clear();
        }
        return;
      }
      case "join_response":
        if (message.reconnected) this._resync(message.participants);
        break;
      case "subscriber_offer":
        await this._onSubscriberOffer(message);
        break;
      case "participant_joined":
        this._addParticipant(message.participant);
        break;
      case "participant_left":
        this.participants.delete(message.session_id);
        break;
      case "track_published": {
        const part = this.participants.get(message.session_id);
        if (part) part.tracks[message.kind] = message.muted;
        break;
      }
      case "track_unpublished": {
        const part = this.participants.get(message.session_id);
        if (part) delete part.tracks[message.kind];
        break;
      }
      case "mute_state_changed": {
        const part = this.participants.get(message.session_id);
        if (part && message.kind in part.tracks) part.tracks[message.kind] = message.muted;
        break;
      }
      case "audience_changed": {
        const part = this.participants.get(message.session_id);
        if (part) part.audience = message.user_ids ?? null;
        break;
      }
      case "audio_levels":
        this.audioLevels = new Map(message.levels.map((/** @type {AudioLevel} */ l) => [l.session_id, l]));
        this.dominantSpeaker = message.dominant_speaker ?? null;
        break;
      case "connection_quality":
        this.connectionQuality = { ...message.qualities };
        break;
      case "participant_message":
        this.hooks.onMessage?.(message);
        return;
      case "moderation":
        if (message.action === "removed") this.removed = true;
        this.hooks.onModeration?.(message);
        if (this.removed) {
          this.hooks.onEnded("removed");
          return;
        }
        break;
      case "call_ended":
        pending?.resolve(message);
        this.hooks.onEnded("call_ended");
        return;
    }
    pending?.resolve(message);
    this.hooks.onChange();
  }

  /**
   * Events were missed while the socket was down: take the SFU's view of who is here.
   * @param {ParticipantInfo[]} participants
   */
  _resync(participants) {
    const present = new Set(participants.map((p) => p.session_id));
    for (const id of [...this.participants.keys()]) if (!present.has(id)) this.participants.delete(id);
    for (const info of participants) {
      const known = this.participants.get(info.session_id);
      if (!known) this._addParticipant(info);
      else {
        known.tracks = Object.fromEntries(info.tracks.map((t) => [t.kind, t.muted]));
        known.audience = info.audience ?? null;
      }
    }
  }

  /** @param {ParticipantInfo} info */
  _addParticipant(info) {
    if (info.session_id === this.sessionId) return;
    /** @type {Record<string, boolean>} */
    const tracks = {};
    for (const t of info.tracks) tracks[t.kind] = t.muted;
    this.participants.set(info.session_id, {
      userId: info.user_id,
      sessionId: info.session_id,
      tracks,
      video: null,
      audioMid: null,
      audience: info.audience ?? null,
    });
    this._bindTracks();
  }

  // ------------------------------------------------------------- subscriber

  /** @param {{sdp: string, tracks: Record<string, RemoteTrack>}} offer */
  async _onSubscriberOffer(offer) {
    this.midOwner = offer.tracks;
    await this.subscriber.setRemoteDescription({ type: "offer", sdp: offer.sdp });
    const answer = await this.subscriber.createAnswer();
    await this.subscriber.setLocalDescription({ type: "answer", sdp: withOpusStereo(answer.sdp ?? "") });
    this._send({ type: "subscriber_answer", sdp: this.subscriber.localDescription?.sdp });
    this._releaseCandidates("subscriber");
    this._bindTracks();
  }

  /** @param {RTCTrackEvent} event */
  _onTrack(event) {
    const mid = event.transceiver.mid;
    if (mid === null) return;
    // the SFU gives each publisher session its own stream (msid stream id = its session id), so
    // this fires again when a transceiver is reused for someone else
    this.trackEvents.push({ mid, kind: event.track.kind, streamId: event.streams[0]?.id ?? null });
    this.remoteTracks.set(mid, event.track);
    if (event.track.kind === "audio") this.audio.addRemote(mid, event.track);
    this._bindTracks();
    this.hooks.onChange();
  }

  /** Attach remote tracks to their participants, per the newest `tracks` map. */
  _bindTracks() {
    for (const part of this.participants.values()) {
      part.video = null;
      part.audioMid = null;
    }
    for (const [mid, owner] of Object.entries(this.midOwner)) {
      const part = this.participants.get(owner.session_id);
      const track = this.remoteTracks.get(mid);
      if (!part || !track) continue;
      if (owner.kind === "video") part.video = track;
      else part.audioMid = mid;
    }
  }

  // ------------------------------------------------------------- publisher

  /**
   * Make sure these kinds are published (adds transceivers and renegotiates when needed).
   * @param {{audio: boolean, video: boolean, audioTrack: MediaStreamTrack|null, videoTrack: MediaStreamTrack|null, audioMuted: boolean, videoMuted: boolean}} want
   */
  publish(want) {
    const run = this._publishing.then(() => this._publish(want));
    this._publishing = run.catch(() => {});
    return run;
  }

  /** @param {{audio: boolean, video: boolean, audioTrack: MediaStreamTrack|null, videoTrack: MediaStreamTrack|null, audioMuted: boolean, videoMuted: boolean}} want */
  async _publish(want) {
    let added = false;
    if (want.audio && !this.transceivers.audio) {
      const t = this.publisher.addTransceiver(want.audioTrack ?? "audio", { direction: "sendonly" });
      preferForwardable(t, "audio");
      this.transceivers.audio = t;
      this.published.audio = want.audioMuted;
      added = true;
    }
    if (want.video && !this.transceivers.video) {
      const t = this.publisher.addTransceiver(want.videoTrack ?? "video", { direction: "sendonly" });
      preferForwardable(t, "video");
      this.transceivers.video = t;
      this.published.video = want.videoMuted;
      added = true;
    }
    if (!added) return;
    await this._offerPublisher();
  }

  /**
   * Stop publishing `kind` altogether (not just muted): the transceiver stops sending and the SFU,
   * seeing the renegotiated offer, unpublishes the track for everyone (`track_unpublished`).
   * A later `publish` adds a new transceiver.
   * @param {"audio"|"video"} kind
   */
  unpublish(kind) {
    const run = this._publishing.then(() => this._unpublish(kind));
    this._publishing = run.catch(() => {});
    return run;
  }

  /** @param {"audio"|"video"} kind */
  async _unpublish(kind) {
    const t = this.transceivers[kind];
    if (!t) return;
    const track = t.sender.track;
    this.publisher.removeTrack(t.sender);
    delete this.transceivers[kind];
    delete this.published[kind];
    if (kind === "video") track?.stop();
    await this._offerPublisher();
  }

  /** Offer the publisher connection as it is now and apply the SFU's answer. */
  async _offerPublisher() {
    const offer = await this.publisher.createOffer();
    await this.publisher.setLocalDescription(offer);

    /** @type {Record<string, string>} */
    const tracks = {};
    for (const [kind, t] of Object.entries(this.transceivers)) if (t?.mid) tracks[t.mid] = kind;
    const answered = this._expect("publisher_answer", "the SFU did not answer the publisher offer");
    this._send({ type: "publisher_offer", sdp: this.publisher.localDescription?.sdp, tracks });
    this._releaseCandidates("publisher");
    const answer = await answered;
    await this.publisher.setRemoteDescription({ type: "answer", sdp: answer.sdp });
    await this._connected(this.publisher);
    for (const kind of /** @type {const} */ (["audio", "video"])) {
      if (this.transceivers[kind]) this._send({ type: "update_mute_state", kind, muted: this.published[kind] });
    }
  }

  /** @param {RTCPeerConnection} pc */
  _connected(pc) {
    return new Promise((resolve, reject) => {
      const check = () => {
        if (pc.connectionState === "connected") finish(null);
        else if (pc.connectionState === "failed" || pc.connectionState === "closed") {
          finish(new NetworkError(`media connection to the SFU ${pc.connectionState}`));
        }
      };
      const timer = setTimeout(
        () => finish(new NetworkError(`media connection to the SFU not established within ${JOIN_TIMEOUT_MS / 1000} s`)),
        JOIN_TIMEOUT_MS,
      );
      /** @param {Error|null} err */
      const finish = (err) => {
        clearTimeout(timer);
        pc.removeEventListener("connectionstatechange", check);
        err ? reject(err) : resolve(undefined);
      };
      pc.addEventListener("connectionstatechange", check);
      check();
    });
  }

  /**
   * Send `track` (or nothing, when null) on the published transceiver of `kind`, and tell the SFU
   * the track's mute state.
   * @param {"audio"|"video"} kind
   * @param {MediaStreamTrack|null} track
   * @param {boolean} muted
   */
  async setTrack(kind, track, muted) {
    const t = this.transceivers[kind];
    if (!t) return;
    await t.sender.replaceTrack(track);
    this.published[kind] = muted;
    try {
      this._send({ type: "update_mute_state", kind, muted });
    } catch {}
  }

  /**
   * Ask the SFU to stop (or restart) forwarding every audio track to this session.
   * @param {boolean} paused
   */
  setAudioForwarding(paused) {
    try {
      this._send({ type: "update_subscription", kind: "audio", paused });
    } catch {}
  }

  /**
   * Ask the SFU to forward this session's audio only to the sessions of `userIds` (null: everyone);
   * docs/protocol.md "Microphone audience". While the socket is down the resumed session re-sends it.
   * @param {string[]|null} userIds
   */
  setAudience(userIds) {
    try {
      this._send({ type: "update_audience", kind: "audio", user_ids: userIds });
    } catch {}
  }

  /**
   * Send a participant message (relayed by the SFU to the others joined now, never stored).
   * NetworkError while the socket is down.
   * @param {object} data
   * @param {string[]|null} sessionIds
   */
  sendMessage(data, sessionIds) {
    this._send({ type: "send_message", data, session_ids: sessionIds });
  }

  /** Leave: tell the SFU, close the socket and both peer connections. */
  close() {
    if (this.closed) return;
    this.closed = true;
    try {
      this._send({ type: "leave", reason: "left" });
    } catch {}
    clearInterval(this._pinger);
    this._ws?.close();
    const left = new CallStateError("the call was left");
    for (const p of this._pending.values()) p.reject(left);
    this._pending.clear();
    for (const kind of /** @type {const} */ (["audio", "video"])) {
      const track = this.transceivers[kind]?.sender.track;
      if (kind === "video") track?.stop();
    }
    this.publisher.close();
    this.subscriber.close();
  }
}
