// @ts-check
/**
 * switchboard's browser client: join calls from a web page, with multicall (several calls joined,
 * one audio focus; ducked suspension, per-call gain and pan, whisper, hold audio and a focus that
 * returns, SPEC §2.8). No build step: `import { VideoClient } from "/sdk/switchboard.js"`.
 *
 * ```js
 * const client = new VideoClient(apiKey, { user: { id: "alice" }, token, options: {
 *   allowMultipleActiveCalls: true, multiCallAudioPolicy: MultiCallAudioPolicy.SUSPEND_INCOMING } });
 * await client.connect();
 * const call = client.makeCall("default", "room");
 * await call.getOrCreate();
 * await call.join({ microphone: true, camera: false });
 * ```
 * @module switchboard
 */

export { VideoClient } from "./client.js";
export { Call, CallStatus, RejectReason, MAX_AUDIENCE } from "./call.js";
export { MultiCallAudioPolicy, SuspendMode } from "./multicall.js";
export { Observable } from "./emitter.js";
export { toneLevelDbfs, levelDbfs, panGains, MIN_GAIN_DB, MAX_GAIN_DB } from "./audio.js";
export {
  SwitchboardError,
  AuthenticationError,
  PermissionDeniedError,
  NotFoundError,
  InvalidRequestError,
  RateLimitedError,
  CallStateError,
  NetworkError,
} from "./errors.js";

/** Call types, as in the Python SDK's CallType. */
export const CallType = Object.freeze({
  DEFAULT: "default",
  LIVESTREAM: "livestream",
  AUDIO_ROOM: "audio_room",
  DEVELOPMENT: "development",
});
