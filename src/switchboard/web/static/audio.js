// @ts-check
/**
 * The page's audio session: one microphone (getUserMedia) shared by every call, and one speaker (a
 * WebAudio graph) that every call's remote audio plays through. Each call gets a CallAudio: its own
 * gain stage into the speaker (0 while the call is suspended) and its own microphone track (a clone
 * of the shared one, so each call's microphone can be on or off on its own).
 *
 * Levels are measured like the Python SDK's `switchboard.media.analysis`: RMS in dBFS
 * (`20 * log10(rms)`, a full-scale sine is -3 dBFS), a tone's level from a Hann-windowed transform at
 * the tone's exact frequency.
 * @module audio
 */

const ANALYSIS_SAMPLES = 16384; // ~0.34 s at 48 kHz
const FLOOR_DBFS = -120;

/**
 * RMS level in dBFS of the tone at `hz` in `samples` (Hann window, exact-frequency correlation).
 * @param {Float32Array} samples mono, in [-1, 1]
 * @param {number} hz
 * @param {number} sampleRate
 * @returns {number}
 */
export function toneLevelDbfs(samples, hz, sampleRate) {
  const n = samples.length;
  const w = (2 * Math.PI * hz) / sampleRate;
  let re = 0;
  let im = 0;
  for (let i = 0; i < n; i++) {
    const x = samples[i] * (0.5 - 0.5 * Math.cos((2 * Math.PI * i) / n));
    re += x * Math.cos(w * i);
    im -= x * Math.sin(w * i);
  }
  // a sine of amplitude A gives |X| = A * n / 4 under a Hann window; its RMS is A / sqrt(2)
  const rms = (Math.hypot(re, im) * 4) / n / Math.SQRT2;
  return rms > 0 ? Math.max(FLOOR_DBFS, 20 * Math.log10(rms)) : FLOOR_DBFS;
}

/**
 * Plain RMS level in dBFS.
 * @param {Float32Array} samples
 * @returns {number}
 */
export function levelDbfs(samples) {
  let sum = 0;
  for (let i = 0; i < samples.length; i++) sum += samples[i] * samples[i];
  const rms = Math.sqrt(sum / Math.max(1, samples.length));
  return rms > 0 ? Math.max(FLOOR_DBFS, 20 * Math.log10(rms)) : FLOOR_DBFS;
}

/** A tap on a point of the graph: the last ~0.34 s as samples, levels of tones. */
export class LevelMeter {
  /** @param {AudioContext} context @param {AudioNode} source */
  constructor(context, source) {
    this.context = context;
    this.analyser = context.createAnalyser();
    this.analyser.fftSize = ANALYSIS_SAMPLES;
    source.connect(this.analyser);
    this._buffer = new Float32Array(this.analyser.fftSize);
  }

  /** The newest samples (mono float32 at the context's rate, 48 kHz by default). */
  samples() {
    this.analyser.getFloatTimeDomainData(this._buffer);
    return this._buffer;
  }

  /** RMS level in dBFS of the newest samples. */
  level() {
    return levelDbfs(this.samples());
  }

  /**
   * Level in dBFS of each tone (Hz) in the newest samples.
   * @param {number[]} tones
   * @returns {number[]}
   */
  toneLevels(tones) {
    const samples = this.samples();
    return tones.map((hz) => toneLevelDbfs(samples, hz, this.context.sampleRate));
  }
}

/** One remote audio track as it plays: its source node and meter (for speaking indicators). */
class RemoteAudio {
  /**
   * @param {AudioContext} context
   * @param {MediaStreamTrack} track
   * @param {AudioNode} destination the call's gain stage
   */
  constructor(context, track, destination) {
    this.track = track;
    this.stream = new MediaStream([track]);
    // Chromium only feeds a remote WebRTC stream into WebAudio once a media element consumes it
    this.element = new Audio();
    this.element.muted = true;
    this.element.srcObject = this.stream;
    this.element.play().catch(() => {});
    this.source = context.createMediaStreamSource(this.stream);
    this.source.connect(destination);
    this.meter = new LevelMeter(context, this.source);
  }

  close() {
    this.source.disconnect();
    this.element.srcObject = null;
  }
}

/** One call's audio: its remote audio into the speaker through a gain (0 while suspended). */
export class CallAudio {
  /** @param {AudioSession} session */
  constructor(session) {
    this.session = session;
    const context = session.context;
    this.gain = context.createGain();
    this.gain.connect(session.speakerInput);
    this.meter = new LevelMeter(context, this.gain);
    /** @type {Map<string, RemoteAudio>} mid -> remote audio */
    this.remotes = new Map();
    this.suspended = false;
    /** @type {MediaStreamTrack | null} this call's microphone track (a clone of the shared one) */
    this.microphone = null;
  }

  /**
   * Play a remote audio track (received on transceiver `mid`) through this call.
   * @param {string} mid
   * @param {MediaStreamTrack} track
   */
  addRemote(mid, track) {
    this.remotes.get(mid)?.close();
    this.remotes.set(mid, new RemoteAudio(this.session.context, track, this.gain));
    this._apply();
  }

  /** @param {string} mid */
  meterFor(mid) {
    return this.remotes.get(mid)?.meter ?? null;
  }

  /** Mute (suspend) or unmute (resume) this call's remote audio. */
  /** @param {boolean} suspended */
  setSuspended(suspended) {
    this.suspended = suspended;
    this._apply();
  }

  _apply() {
    this.gain.gain.setValueAtTime(this.suspended ? 0 : 1, this.session.context.currentTime);
    for (const remote of this.remotes.values()) remote.track.enabled = !this.suspended;
  }

  /** A microphone track for this call (created on first use). */
  async microphoneTrack() {
    if (!this.microphone) this.microphone = (await this.session.microphone()).clone();
    return this.microphone;
  }

  close() {
    for (const remote of this.remotes.values()) remote.close();
    this.remotes.clear();
    this.gain.disconnect();
    this.microphone?.stop();
    this.microphone = null;
  }
}

/**
 * The page's microphone and speaker, shared by every call. `speaker` is a LevelMeter on the mix that
 * reaches the output: what the person hears.
 */
export class AudioSession {
  constructor() {
    this.context = new AudioContext({ sampleRate: 48000 });
    this.speakerInput = this.context.createGain();
    this.speakerInput.connect(this.context.destination);
    this.speaker = new LevelMeter(this.context, this.speakerInput);
    /** @type {Promise<MediaStream> | null} */
    this._microphone = null;
    /** @type {Promise<MediaStream> | null} */
    this._camera = null;
  }

  /** Start output (browsers start an AudioContext suspended until a user gesture). */
  async start() {
    if (this.context.state !== "running") await this.context.resume();
  }

  /**
   * Use this track as the microphone instead of the browser's default input (the JavaScript face of
   * the Python SDK's `ClientOptions(microphone=...)`): e.g. a WebAudio-generated track. Calls joined
   * afterwards send it.
   * @param {MediaStreamTrack} track an audio track
   */
  useMicrophone(track) {
    if (track.kind !== "audio") throw new TypeError("useMicrophone needs an audio track");
    this._microphone = Promise.resolve(new MediaStream([track]));
  }

  /** The shared microphone track (asks for permission on first use). */
  async microphone() {
    this._microphone ??= navigator.mediaDevices.getUserMedia({
      audio: { echoCancellation: true, noiseSuppression: false, autoGainControl: false },
    });
    return (await this._microphone).getAudioTracks()[0];
  }

  /** A new camera track (asks for permission on first use). */
  async camera() {
    this._camera ??= navigator.mediaDevices.getUserMedia({ video: { width: 640, height: 360 } });
    return (await this._camera).getVideoTracks()[0].clone();
  }

  createCallAudio() {
    return new CallAudio(this);
  }

  async close() {
    for (const promise of [this._microphone, this._camera]) {
      if (promise) (await promise.catch(() => null))?.getTracks().forEach((t) => t.stop());
    }
    this._microphone = this._camera = null;
    await this.context.close();
  }
}
