// @ts-check
/**
 * A small event emitter: `on(type, callback)` returns an unsubscribe function; the type "*" receives
 * every event. Events are plain objects with a `type` field (the coordinator's event JSON, or the
 * client's local events such as "call.audio_suspended").
 * @module emitter
 */

/** @typedef {{type: string, [key: string]: any}} SwitchboardEvent */

export class Emitter {
  constructor() {
    /** @type {Map<string, Set<(event: SwitchboardEvent) => void>>} */
    this._listeners = new Map();
  }

  /**
   * @param {string} type an event type, or "*" for every event
   * @param {(event: SwitchboardEvent) => void} callback
   * @returns {() => void} unsubscribe
   */
  on(type, callback) {
    let set = this._listeners.get(type);
    if (!set) {
      set = new Set();
      this._listeners.set(type, set);
    }
    set.add(callback);
    return () => set?.delete(callback);
  }

  /** @param {SwitchboardEvent} event */
  emit(event) {
    for (const key of [event.type, "*"]) {
      for (const callback of [...(this._listeners.get(key) ?? [])]) {
        try {
          callback(event);
        } catch (err) {
          console.error(`switchboard: a listener for ${event.type} threw`, err);
        }
      }
    }
  }
}

/**
 * A value that can be watched: `.value`, and `listen(callback)` (called with the current value at
 * once, then on every change) returning an unsubscribe function. The JavaScript face of the Python
 * SDK's Observable.
 * @template T
 */
export class Observable {
  /** @param {T} value */
  constructor(value) {
    this._value = value;
    /** @type {Set<(value: T) => void>} */
    this._listeners = new Set();
  }

  /** @returns {T} */
  get value() {
    return this._value;
  }

  /**
   * @param {(value: T) => void} callback
   * @returns {() => void} unsubscribe
   */
  listen(callback) {
    this._listeners.add(callback);
    callback(this._value);
    return () => this._listeners.delete(callback);
  }

  /** @param {T} value */
  _set(value) {
    this._value = value;
    for (const callback of [...this._listeners]) {
      try {
        callback(value);
      } catch (err) {
        console.error("switchboard: an observer threw", err);
      }
    }
  }
}
