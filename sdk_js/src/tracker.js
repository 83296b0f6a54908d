// The event queue: batched POSTs while the page lives, sendBeacon when it is hidden, and a
// bounded copy in storage so events a page could not send go with the next page.
// Transport and storage are injected; docs/DESIGN.md "Events" has the wire format.

const MAX = 100 // kept events, and the collect endpoint's batch limit
const BATCH = 20 // this many go at once instead of waiting for the delay

// post(events) -> Promise<bool>: true when done with them (sent, or refused for good)
// beacon(events) -> bool: true when the browser took them
// load() -> events an earlier page left; save(events) mirrors the queue.
// (A POST in flight when the page closes is not in the mirror: keepalive finishes it.)
export function queue({ post, beacon, load, save, delay = 1e3 }) {
  let q = load() || []
  let timer = 0
  let on = false
  let wait = delay // retry backoff: doubles on each failed POST, up to a minute

  const flush = (hidden) => {
    clearTimeout(timer)
    timer = 0
    const b = on ? q.splice(0, MAX) : []
    if (b.length)
      if (!hidden)
        post(b).then((done) =>
          done
            ? (wait = delay)
            : (save((q = b.concat(q).slice(-MAX))), on && (timer = timer || setTimeout(flush, (wait = Math.min(wait * 2, 6e4))))),
        )
      else if (!beacon(b)) q = b.concat(q)
    if (on) save(q)
  }

  return {
    add(e) {
      q = q.concat(e).slice(-MAX)
      if (on) save(q), q.length >= BATCH ? flush() : (timer = timer || setTimeout(flush, delay))
    },
    flush,
    // Consent: events wait in memory until enabled; disabling forgets them.
    enable(b) {
      on = b
      if (!b) q = []
      else if (q.length) timer = timer || setTimeout(flush, delay)
    },
  }
}
