// @ts-check
/**
 * Errors raised by the browser client: the same classes as the Python SDK's switchboard.errors.
 * Every failure the client reports is a SwitchboardError subclass with a message a person can act on.
 * @module errors
 */

export class SwitchboardError extends Error {
  /**
   * @param {string} message what went wrong and what to do about it
   * @param {string} [code] the server's error code (e.g. "token_expired")
   * @param {number} [status] the HTTP status, when the error came from the coordinator
   */
  constructor(message, code = "error", status = 0) {
    super(message);
    this.name = new.target.name;
    this.code = code;
    this.status = status;
  }
}
export class AuthenticationError extends SwitchboardError {}
export class PermissionDeniedError extends SwitchboardError {}
export class NotFoundError extends SwitchboardError {}
export class InvalidRequestError extends SwitchboardError {}
export class RateLimitedError extends SwitchboardError {}
export class CallStateError extends SwitchboardError {}
export class NetworkError extends SwitchboardError {}

/**
 * The error class for a coordinator answer's HTTP status (400/401/403/404/409/413/429).
 * @param {number} status
 * @param {string} code
 * @param {string} message
 * @returns {SwitchboardError}
 */
export function errorForStatus(status, code, message) {
  const classes = /** @type {Record<number, typeof SwitchboardError>} */ ({
    400: InvalidRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    409: CallStateError,
    413: InvalidRequestError,
    429: RateLimitedError,
  });
  const Cls = classes[status] ?? SwitchboardError;
  return new Cls(message, code, status);
}

/**
 * The error class for an SFU `error` message's code (as the Python SDK's CallSession maps them).
 * @param {string} code
 * @param {string} message
 * @returns {SwitchboardError}
 */
export function errorForSfuCode(code, message) {
  const authentication = ["token_invalid", "token_expired", "unauthenticated", "session_mismatch", "session_ended", "grants_changed"];
  if (authentication.includes(code)) return new AuthenticationError(message, code);
  if (code === "permission_denied") return new PermissionDeniedError(message, code);
  if (["call_ended", "session_in_use", "session_expired", "server_shutdown"].includes(code)) {
    return new CallStateError(message, code);
  }
  if (["rate_limited", "too_many_sessions"].includes(code)) return new RateLimitedError(message, code);
  return new SwitchboardError(`SFU error ${code}: ${message}`, code);
}
