// @ts-check
/**
 * The page's audio session: one microphone (getUserMedia) shared by every call, and one speaker (a
 * WebAudio graph) that every call's remote audio plays through. Each call gets a CallAudio: its own
 * gain and pan stage into the speaker (gain 0 while the call is suspended SILENT, the duck gain
 * while DUCKED, SPEC §2.8) and its own microphone track (a clone of the shared one, so each call's
 * microphone can be on or off on its own).
 *
 * Levels are measured like the Python SDK's `switchboard.media.analysis`: RMS in dBFS
 * (`20 * log10(rms)`, a full-scale sine is -3 dBFS), a tone's level from a Hann-windowed transform at
 * the tone's exact frequency.
 * @module audio
 */

import { InvalidRequestError } from "./errors.js";

const ANALYSIS_SAMPLES = 16384; // ~0.34 s at 48 kHz
const FLOOR_DBFS = -120;
/** the lowest playout gain accepted, in dB (-120 dB is 1e-6: inaudible), as in the Python SDK */
export const MIN_GAIN_DB = -120;
/** the highest playout gain accepted, in dB (a quiet call can be lifted, not blasted) */
export const MAX_GAIN_DB = 24;

/**
 * Linear amplitude factor of `db` decibels (`10 ** (db / 20)`).
 * @param {number} db
 */
export function dbToGain(db) {
  return 10 ** (db / 20);
}

/**
 * `db` if it is a finite number within -120..+24 dB, else InvalidRequestError naming `what` (the
 * Python SDK's `check_gain_db`).
 * @param {unknown} db
 * @param {string} what
 * @returns {number}
 */
export function checkGainDb(db, what) {
  if (typeof db !== "number" || !Number.isFinite(db)) {
    throw new InvalidRequestError(`${what} must be a finite number of dB, got ${JSON.stringify(db) ?? String(db)}`);
  }
  if (db < MIN_GAIN_DB || db > MAX_GAIN_DB) {
    throw new InvalidRequestError(`${what} must be within ${MIN_GAIN_DB}..${MAX_GAIN_DB} dB, got ${db}`);
  }
  return db;
}

/**
 * `pan` if it is a finite number within -1 (left) .. +1 (right), else InvalidRequestError (the Python
 * SDK's `check_pan`).
 * @param {unknown} pan
 * @returns {number}
 */
export function checkPan(pan) {
  if (typeof pan !== "number" || !Number.isFinite(pan)) {
    throw new InvalidRequestError(
      `pan must be a number from -1 (left) to +1 (right), got ${JSON.stringify(pan) ?? String(pan)}`,
    );
  }
  if (pan < -1 || pan > 1) throw new InvalidRequestError(`pan must be within -1 (left) .. +1 (right), got ${pan}`);
  return pan;
}

/**
 * (left, right) amplitude factors of the Python SDK's pan law (`switchboard.media.playout_shaping`):
 * constant power with the centre at unity, `theta = (pan + 1) * pi / 4`, left `sqrt(2) * cos(theta)`,
 * right `sqrt(2) * sin(theta)`. At 0 both are 1; at -1 the left is +3 dB and the right silent.
 * @param {number} pan -1 .. +1
 * @returns {[number, number]}
 */
export function panGains(pan) {
  const theta = ((pan + 1) * Math.PI) / 4;
  return [Math.SQRT2 * Math.cos(theta), Math.SQRT2 * Math.sin(theta)];
}

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

/**
 * One call's audio: its remote audio into the speaker through a gain stage and a pan stage.
 *
 * Graph: remote sources -> `input` (two channels; a mono source is played on both, as the Python
 * SDK does) -> `gain` (0 while suspended SILENT; the playout gain, plus the duck gain while DUCKED)
 * -> a channel splitter -> one gain per channel (the pan law of `panGains`) -> a merger -> the
 * speaker. (WebAudio's StereoPannerNode is not used: for a stereo source it sums the channels at a
 * hard pan and for a mono one it is -3 dB at the centre, neither of which is the Python SDK's law.)
 */
export class CallAudio {
  /** @param {AudioSession} session */
  constructor(session) {
    this.session = session;
    const context = session.context;
    this.input = new GainNode(context, { channelCount: 2, channelCountMode: "explicit", channelInterpretation: "speakers" });
    this.gain = context.createGain();
    this.input.connect(this.gain);
    const splitter = context.createChannelSplitter(2);
    this.gain.connect(splitter);
    /** @type {[GainNode, GainNode]} the pan stage: one gain per output channel */
    this.channels = [context.createGain(), context.createGain()];
    this._merger = context.createChannelMerger(2);
    this.channels.forEach((channel, index) => {
      splitter.connect(channel, index);
      channel.connect(this._merger, 0, index);
    });
    this._merger.connect(session.speakerInput);
    this.meter = new LevelMeter(context, this.gain);
    /** @type {Map<string, RemoteAudio>} mid -> remote audio */
    this.remotes = new Map();
    /** @type {string|null} one of SuspendMode while suspended */
    this.suspendMode = null;
    this.duckGainDb = -18;
    this.playoutGainDb = 0;
    this.pan = 0;
    /** @type {MediaStreamTrack | null} this call's microphone track (a clone of the shared one) */
    this.microphone = null;
  }

  /** Whether the call's remote audio is suspended (in either mode). */
  get suspended() {
    return this.suspendMode !== null;
  }

  /**
   * Play a remote audio track (received on transceiver `mid`) through this call.
   * @param {string} mid
   * @param {MediaStreamTrack} track
   */
  addRemote(mid, track) {
    this.remotes.get(mid)?.close();
    this.remotes.set(mid, new RemoteAudio(this.session.context, track, this.input));
    this._apply();
  }

  /** @param {string} mid */
  meterFor(mid) {
    return this.remotes.get(mid)?.meter ?? null;
  }

  /**
   * Suspend (`mode` "silent": nothing plays; "ducked": plays at `duckGainDb` dB) or resume (null).
   * @param {string|null} mode one of SuspendMode, or null
   * @param {number} [duckGainDb]
   */
  setSuspension(mode, duckGainDb = this.duckGainDb) {
    this.suspendMode = mode;
    this.duckGainDb = duckGainDb;
    this._apply();
  }

  /**
   * Shape this call's audio at the speaker: `gainDb` dB (added to the duck gain while ducked) and
   * `pan` (-1 left .. +1 right). Applies at once (the next render quantum, 128 samples).
   * @param {{gainDb?: number, pan?: number}} playout
   */
  setPlayout({ gainDb = this.playoutGainDb, pan = this.pan }) {
    this.playoutGainDb = gainDb;
    this.pan = pan;
    this._apply();
  }

  _apply() {
    const now = this.session.context.currentTime;
    const silent = this.suspendMode === "silent";
    const db = this.playoutGainDb + (this.suspendMode === "ducked" ? this.duckGainDb : 0);
    this.gain.gain.setValueAtTime(silent ? 0 : dbToGain(db), now);
    const gains = panGains(this.pan);
    this.channels.forEach((channel, index) => channel.gain.setValueAtTime(gains[index], now));
    for (const remote of this.remotes.values()) remote.track.enabled = !silent;
  }

  /** A microphone track for this call (created on first use). */
  async microphoneTrack() {
    if (!this.microphone) this.microphone = (await this.session.microphone()).clone();
    return this.microphone;
  }

  close() {
    for (const remote of this.remotes.values()) remote.close();
    this.remotes.clear();
    this.input.disconnect();
    this._merger.disconnect();
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

  /**
   * A steady sine as an audio track, made in this page's audio context: hold audio for
   * `call.suspendAudio({holdAudio})`, or a test signal (the JavaScript face of the Python SDK's
   * ToneMicrophone). `track.stop()` also stops the oscillator.
   * @param {number} hz frequency in Hz (20 .. 20000)
   * @param {number} [dbfs] RMS level in dBFS (default -15; a full-scale sine is -3 dBFS)
   * @returns {MediaStreamTrack}
   */
  toneTrack(hz, dbfs = -15) {
    if (typeof hz !== "number" || !(hz >= 20 && hz <= 20000)) {
      throw new InvalidRequestError(`toneTrack needs a frequency within 20..20000 Hz, got ${hz}`);
    }
    if (typeof dbfs !== "number" || !(dbfs <= -3)) {
      throw new InvalidRequestError(`toneTrack needs a level in dBFS of at most -3 (full scale), got ${dbfs}`);
    }
    const oscillator = new OscillatorNode(this.context, { frequency: hz });
    const level = new GainNode(this.context, { gain: dbToGain(dbfs) * Math.SQRT2 });
    const out = this.context.createMediaStreamDestination();
    oscillator.connect(level).connect(out);
    oscillator.start();
    const track = out.stream.getAudioTracks()[0];
    const stopTrack = track.stop.bind(track);
    track.stop = () => {
      stopTrack();
      oscillator.stop();
      out.disconnect();
    };
    return track;
  }

  async close() {
    for (const promise of [this._microphone, this._camera]) {
      if (promise) (await promise.catch(() => null))?.getTracks().forEach((t) => t.stop());
    }
    this._microphone = this._camera = null;
    await this.context.close();
  }
}
