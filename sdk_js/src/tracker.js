// @ts-check
// The event queue: batched POSTs while the page lives, sendBeacon when it is hidden, and a
// bounded copy in storage so events a page could not send go with the next page.
// Transport and storage are injected; docs/DESIGN.md "Events" has the wire format.

/** @typedef {import("./types.js").TrackedEvent} TrackedEvent */

const MAX_KEPT = 100 // kept events, and the collect endpoint's batch limit
const BATCH = 20 // this many go at once instead of waiting for the delay
const MAX_BACKOFF_MS = 6e4
// Older events are dropped, not sent: collect refuses them (server/events/batch.py QUEUE_MAX_AGE_S,
// its twin), as the server remembers event ids only so long (docs/DESIGN.md "Retention").
export const MAX_AGE_MS = 1728e5 // 2 days (the slices module keeps first exposures as long)

/**
 * A POST in flight when the page closes is not in the mirror: keepalive finishes it.
 * @param {Object} transport
 * @param {(events: TrackedEvent[]) => Promise<boolean>} transport.post true when done with them (sent, or refused for good)
 * @param {(events: TrackedEvent[]) => boolean} transport.beacon true when the browser took them
 * @param {() => TrackedEvent[] | null | undefined} transport.load events an earlier page left
 * @param {(events: TrackedEvent[]) => void} transport.save mirrors the queue
 * @param {number} [transport.delay] ms from the first queued event to its POST
 */
export function queue({ post, beacon, load, save, delay = 1e3 }) {
  let events = load() || []
  /** @type {any} */
  let timer = 0
  let enabled = false
  let wait = delay // retry backoff: doubles on each failed POST, up to a minute

  /** @param {number} ms */
  const later = (ms) => (timer = timer || setTimeout(flush, ms))

  /** @param {boolean} [hidden] the page is going: sendBeacon, no POST */
  function flush(hidden) {
    clearTimeout(timer)
    timer = 0
    const batch = enabled ? events.splice(0, MAX_KEPT).filter((event) => /** @type {number} */ (event.ts) > Date.now() - MAX_AGE_MS) : []
    if (batch.length)
      if (!hidden)
        post(batch).then((done) => {
          if (done) return (wait = delay)
          save((events = batch.concat(events).slice(-MAX_KEPT)))
          if (enabled) later((wait = Math.min(wait * 2, MAX_BACKOFF_MS)))
        })
      else if (!beacon(batch)) events = batch.concat(events)
    if (enabled) save(events)
  }

  return {
    /** @param {TrackedEvent} event */
    add(event) {
      events = events.concat(event).slice(-MAX_KEPT)
      if (enabled) save(events), events.length >= BATCH ? flush() : later(delay)
    },
    flush,
    /**
     * Consent: events wait in memory until enabled; disabling forgets them.
     * @param {boolean} allowed
     */
    enable(allowed) {
      enabled = allowed
      if (!allowed) events = []
      else if (events.length) later(delay)
    },
  }
}
