import { afterEach, test } from "node:test"
import assert from "node:assert/strict"
import { queue } from "../src/tracker.js"

const NOW = Date.now()
const ev = (i, ts = NOW) => ({ id: "e" + String(i).padStart(8, "0"), type: "exposure", ts })
const tick = () => new Promise((r) => setTimeout(r, 0))

const made = []
afterEach(() => made.splice(0).forEach((q) => (q.enable(false), q.flush()))) // clears pending timers, no new retry

function setup({ stored = null, postOk = true, beaconOk = true, delay = 1e9 } = {}) {
  const t = { posts: [], beacons: [], saved: stored }
  t.q = queue({
    post: (b) => (t.posts.push(b), Promise.resolve(typeof postOk == "function" ? postOk() : postOk)),
    beacon: (b) => (t.beacons.push(b), beaconOk),
    load: () => stored,
    save: (b) => (t.saved = b),
    delay,
  })
  made.push(t.q)
  return t
}

test("nothing is stored nor sent until enabled", () => {
  const t = setup()
  t.q.add(ev(1))
  t.q.flush()
  t.q.flush(1)
  assert.deepEqual([t.posts, t.beacons, t.saved], [[], [], null])
  t.q.enable(true)
  t.q.flush()
  assert.deepEqual(t.posts, [[ev(1)]])
})

test("events batch; the 20th goes at once, and storage mirrors what is unsent", async () => {
  const t = setup()
  t.q.enable(true)
  for (let i = 0; i < 19; i++) t.q.add(ev(i))
  assert.equal(t.posts.length, 0)
  assert.equal(t.saved.length, 19)
  t.q.add(ev(19))
  assert.equal(t.posts.length, 1)
  assert.equal(t.posts[0].length, 20)
  assert.deepEqual(t.saved, [])
})

test("the delay sends a partial batch", async () => {
  const t = setup({ delay: 5 })
  t.q.enable(true)
  t.q.add(ev(1))
  t.q.add(ev(2))
  await new Promise((r) => setTimeout(r, 30))
  assert.deepEqual(t.posts, [[ev(1), ev(2)]])
})

test("a failed POST goes back to the queue and storage, for the beacon or the next page", async () => {
  const t = setup({ postOk: false })
  t.q.enable(true)
  t.q.add(ev(1))
  t.q.flush()
  await tick()
  assert.deepEqual(t.saved, [ev(1)])
  t.q.add(ev(2))
  t.q.flush(1)
  assert.deepEqual(t.beacons, [[ev(1), ev(2)]])
  assert.deepEqual(t.saved, [])
})

test("a refused beacon keeps its events", () => {
  const t = setup({ beaconOk: false })
  t.q.enable(true)
  t.q.add(ev(1))
  t.q.flush(1)
  assert.deepEqual(t.saved, [ev(1)])
})

test("events left by an earlier page go with the first send", () => {
  const t = setup({ stored: [ev(1)] })
  t.q.enable(true)
  t.q.add(ev(2))
  t.q.flush()
  assert.deepEqual(t.posts, [[ev(1), ev(2)]])
})

test("events older than two days are dropped, never sent: the server would refuse them", () => {
  const day = 864e5
  const stale = ev(1, Date.now() - 2 * day - 6e4)
  const aging = ev(2, Date.now() - 2 * day + 6e4)
  const t = setup({ stored: [stale, aging] })
  t.q.enable(true)
  t.q.add(ev(3))
  t.q.flush()
  assert.deepEqual(t.posts, [[aging, ev(3)]])
  t.q.flush(1)
  assert.deepEqual([t.beacons, t.saved], [[], []])
})

test("the queue is bounded to the newest 100 events", () => {
  const t = setup()
  t.q.enable(false)
  for (let i = 0; i < 150; i++) t.q.add(ev(i))
  t.q.enable(true)
  assert.equal(t.posts.length, 0)
  const u = setup({ postOk: false })
  u.q.enable(true)
  for (let i = 0; i < 250; i++) u.q.add(ev(i))
  assert.ok(u.saved.length <= 100)
})

test("disabling forgets queued events", () => {
  const t = setup()
  t.q.add(ev(1))
  t.q.enable(false)
  t.q.enable(true)
  t.q.flush()
  assert.deepEqual(t.posts, [])
})

test("a failed POST is retried with a doubling delay until it goes through", async () => {
  let fails = 2
  const t = setup({ delay: 5, postOk: () => !(fails-- > 0) })
  t.q.enable(true)
  t.q.add(ev(1))
  const started = Date.now()
  while (t.posts.length < 3 && Date.now() - started < 2000) await new Promise((r) => setTimeout(r, 5))
  assert.equal(t.posts.length, 3) // two failures, then success, with no new event to push it
  assert.deepEqual(t.posts.map((b) => b[0].id), [ev(1).id, ev(1).id, ev(1).id])
  assert.ok(Date.now() - started >= 5 * 2 + 5 * 4, "the retries waited 10 ms, then 20 ms")
  await tick()
  assert.deepEqual(t.saved, [])
})
