// @ts-check
/**
 * The coordinator: REST under /api/v1 (fetch) and the events WebSocket (/api/v1/events).
 * Request and response shapes are the Python models in switchboard.protocol.coordinator
 * (docs/api.md). Every request carries the API key (X-Api-Key) and the user token (Bearer JWT).
 * @module coordinator
 */

import { AuthenticationError, NetworkError, errorForStatus } from "./errors.js";

const HEALTH_CHECK_MS = 10_000;
const AUTH_TIMEOUT_MS = 10_000;

export class CoordinatorApi {
  /**
   * @param {string} baseUrl the coordinator's base URL, e.g. "http://127.0.0.1:3030"
   * @param {string} apiKey
   * @param {string} token the user's JWT
   */
  constructor(baseUrl, apiKey, token) {
    this.baseUrl = baseUrl.replace(/\/+$/, "");
    this.apiKey = apiKey;
    this.token = token;
  }

  /**
   * One REST call. Throws the SwitchboardError subclass for the answer's status (AuthenticationError
   * for 401, NotFoundError for 404, ...), NetworkError when the coordinator cannot be reached.
   * @param {string} method
   * @param {string} path under /api/v1, e.g. "/calls/default/room"
   * @param {object} [body]
   * @returns {Promise<any>} the decoded JSON answer
   */
  async request(method, path, body) {
    /** @type {Response} */
    let response;
    try {
      response = await fetch(`${this.baseUrl}/api/v1${path}`, {
        method,
        headers: {
          "X-Api-Key": this.apiKey,
          Authorization: `Bearer ${this.token}`,
          ...(body !== undefined ? { "Content-Type": "application/json" } : {}),
        },
        body: body !== undefined ? JSON.stringify(body) : undefined,
      });
    } catch (err) {
      throw new NetworkError(`cannot reach the coordinator at ${this.baseUrl}: ${err}`);
    }
    const text = await response.text();
    /** @type {any} */
    let data = {};
    try {
      data = text ? JSON.parse(text) : {};
    } catch {
      data = { code: "bad_response", message: text.slice(0, 200) };
    }
    if (!response.ok) {
      throw errorForStatus(response.status, data.code ?? "error", data.message ?? response.statusText);
    }
    return data;
  }
}

/** The events socket's URL for a coordinator base URL (http -> ws, https -> wss). */
/** @param {string} baseUrl */
export function eventsUrl(baseUrl) {
  const url = new URL(baseUrl.replace(/\/+$/, "") + "/api/v1/events");
  url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
  return url.toString();
}

/**
 * The events WebSocket: authenticates, keeps the connection healthy (health.check every 10 s) and
 * hands every event to `onEvent`. Reconnects with `last_event_id` so missed events are replayed.
 */
export class EventsConnection {
  /**
   * @param {string} baseUrl
   * @param {{api_key: string, token: string, user: {id: string, name?: string|null}}} auth
   * @param {(event: any) => void} onEvent
   * @param {(info: {reconnected: boolean, replayComplete: boolean, epoch: string|null}) => void} [onConnected]
   *   after every successful authentication (replayComplete false: events may have been missed)
   */
  constructor(baseUrl, auth, onEvent, onConnected) {
    this.url = eventsUrl(baseUrl);
    this.auth = auth;
    this.onEvent = onEvent;
    this.onConnected = onConnected;
    /** @type {string | null} the server's event epoch (event ids are compared only within one) */
    this.epoch = null;
    /** @type {string | null} */
    this.connectionId = null;
    this.lastEventId = /** @type {number | null} */ (null);
    /** @type {WebSocket | null} */
    this._ws = null;
    this._closed = false;
    /** @type {ReturnType<typeof setInterval> | undefined} */
    this._pinger = undefined;
  }

  /**
   * Open and authenticate. Throws AuthenticationError for a bad or expired token (no retry),
   * NetworkError when the socket cannot be opened.
   * @returns {Promise<void>}
   */
  connect() {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(this.url);
      this._ws = ws;
      let settled = false;
      const timer = setTimeout(() => fail(new NetworkError("the coordinator did not authenticate within 10 s")), AUTH_TIMEOUT_MS);
      /** @param {Error} err */
      const fail = (err) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        ws.close();
        reject(err);
      };
      ws.onopen = () => {
        ws.send(
          JSON.stringify({
            type: "auth",
            ...this.auth,
            ...(this.lastEventId !== null ? { last_event_id: this.lastEventId } : {}),
            ...(this.epoch !== null ? { epoch: this.epoch } : {}),
            ...(this.connectionId !== null ? { previous_connection_id: this.connectionId } : {}),
          }),
        );
      };
      ws.onerror = () => fail(new NetworkError(`cannot open the events socket at ${this.url}`));
      ws.onmessage = (msg) => {
        const event = JSON.parse(String(msg.data));
        if (!settled) {
          if (event.type === "connection.ok") {
            settled = true;
            clearTimeout(timer);
            const reconnected = this.connectionId !== null;
            this.connectionId = event.connection_id;
            if ((event.epoch ?? null) !== this.epoch) this.lastEventId = null; // ids started over
            this.epoch = event.epoch ?? null;
            this._pinger = setInterval(() => this._send({ type: "health.check" }), HEALTH_CHECK_MS);
            resolve();
            this.onConnected?.({ reconnected, replayComplete: event.replay_complete === true, epoch: this.epoch });
          } else if (event.type === "error") {
            fail(new AuthenticationError(event.message, event.code, 401));
          }
          return;
        }
        if (typeof event.id === "number" && event.id > 0) this.lastEventId = event.id;
        if (event.type !== "health.check") this.onEvent(event);
      };
      ws.onclose = () => {
        clearInterval(this._pinger);
        if (!settled) fail(new NetworkError("the events socket closed during authentication"));
        else if (!this._closed) setTimeout(() => this._reconnect(), 500);
      };
    });
  }

  async _reconnect() {
    if (this._closed) return;
    try {
      await this.connect();
    } catch (err) {
      if (err instanceof AuthenticationError) return;
      setTimeout(() => this._reconnect(), 1000);
    }
  }

  /** @param {object} frame */
  _send(frame) {
    if (this._ws?.readyState === WebSocket.OPEN) this._ws.send(JSON.stringify(frame));
  }

  close() {
    this._closed = true;
    clearInterval(this._pinger);
    this._ws?.close();
  }
}
