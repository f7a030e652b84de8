// @ts-check
/**
 * The page's rings: a projection of the rings the server has pending for this user (the JavaScript
 * face of the Python SDK's `switchboard.sdk.rings.RingBook`; docs/api.md "Rings").
 *
 * The server is the source of truth. The book changes only on what the server said: a `call.ring`
 * or `call.ring_ended` event, the answer to this client's own ring/accept/reject, or a snapshot from
 * `GET /api/v1/rings` (on connect and after every reconnect of the events socket). A snapshot is
 * current as of event `last_event_id` of `epoch`: events at or before it (same epoch) are already in
 * it and change nothing. A ring id that has ended is never shown again, whatever arrives late.
 * @module rings
 */

/** how many ended ring ids are remembered (to ignore late news of them) */
const ENDED_MEMORY = 4096;

/**
 * @template C
 * @typedef {{ringId: string, call: C, outgoing: boolean}} PendingRing
 */

/**
 * Pending rings, incoming (oldest first) and outgoing, published through `onChange`.
 * @template C
 */
export class RingBook {
  /** @param {(incoming: C[], outgoing: C[]) => void} onChange */
  constructor(onChange) {
    this.onChange = onChange;
    /** @type {Map<string, PendingRing<C>>} ring id -> ring, in the order they started */
    this.rings = new Map();
    /** @type {Set<string>} */
    this.ended = new Set();
    /** events with an id at or below this, in `epoch`, are already reflected */
    this.cursor = 0;
    /** @type {string|null} */
    this.epoch = null;
  }

  /**
   * Whether an event (id in `epoch`) is already reflected by the newest snapshot.
   * @param {number|undefined} eventId
   * @param {string|null} epoch the events socket's epoch
   */
  isStale(eventId, epoch) {
    return typeof eventId === "number" && eventId > 0 && epoch === this.epoch && eventId <= this.cursor;
  }

  /** @param {PendingRing<C>} ring @returns {boolean} whether it was added */
  add(ring) {
    if (this.rings.has(ring.ringId) || this.ended.has(ring.ringId)) return false;
    this.rings.set(ring.ringId, ring);
    this._publish();
    return true;
  }

  /**
   * The ring ended: remove it (only it). Without a ring id, the call's ring in that direction.
   * @param {string|null|undefined} ringId
   * @param {C} call
   * @param {boolean} outgoing
   * @returns {PendingRing<C>|null}
   */
  end(ringId, call, outgoing) {
    const id =
      ringId ?? [...this.rings.values()].find((r) => r.call === call && r.outgoing === outgoing)?.ringId ?? null;
    if (id === null) return null;
    this._rememberEnded(id);
    const removed = this.rings.get(id) ?? null;
    if (removed) {
      this.rings.delete(id);
      this._publish();
    }
    return removed;
  }

  /**
   * Every ring of a call ended (the call ended).
   * @param {C} call
   */
  endCall(call) {
    const gone = [...this.rings.values()].filter((r) => r.call === call);
    for (const ring of gone) {
      this._rememberEnded(ring.ringId);
      this.rings.delete(ring.ringId);
    }
    if (gone.length) this._publish();
    return gone;
  }

  /**
   * Become exactly the server's list (oldest first) as of event `cursor` of `epoch`.
   * @param {PendingRing<C>[]} rings
   * @param {number} cursor
   * @param {string|null} epoch
   * @returns {{added: PendingRing<C>[], removed: PendingRing<C>[]}}
   */
  replace(rings, cursor, epoch) {
    const wanted = new Map(rings.filter((r) => !this.ended.has(r.ringId)).map((r) => [r.ringId, r]));
    const removed = [...this.rings.values()].filter((r) => !wanted.has(r.ringId));
    const added = [...wanted.values()].filter((r) => !this.rings.has(r.ringId));
    for (const ring of removed) this._rememberEnded(ring.ringId);
    this.rings = new Map([...wanted].map(([id, r]) => [id, this.rings.get(id) ?? r]));
    this.cursor = cursor;
    this.epoch = epoch;
    this._publish();
    return { added, removed };
  }

  /** @param {C} call @param {boolean} outgoing */
  has(call, outgoing) {
    return [...this.rings.values()].some((r) => r.call === call && r.outgoing === outgoing);
  }

  /** @param {string} ringId */
  _rememberEnded(ringId) {
    this.ended.delete(ringId);
    this.ended.add(ringId);
    while (this.ended.size > ENDED_MEMORY) this.ended.delete(/** @type {string} */ (this.ended.values().next().value));
  }

  _publish() {
    const all = [...this.rings.values()];
    this.onChange(
      all.filter((r) => !r.outgoing).map((r) => r.call),
      all.filter((r) => r.outgoing).map((r) => r.call),
    );
  }
}
