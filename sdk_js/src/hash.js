// @ts-check
// docs/DESIGN.md "Hashing and bucketing"; server/decisions/bucketing.py is the twin.

const te = new TextEncoder()

// The scheme below; a bundle names the one its buckets use ("hash": 1).
export const HASH_VERSION = 1

/** @param {string} s */
export const fnv1a = (s) => {
  let h = 0x811c9dc5
  for (const b of te.encode(s)) h = Math.imul(h ^ b, 0x01000193)
  return h >>> 0
}

// murmur3's finaliser: FNV-1a alone leaves ids that differ in the last character close together.
/** @param {number} h */
export const fmix32 = (h) => {
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b)
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35)
  return (h ^ (h >>> 16)) >>> 0
}

/** @param {string} seed @param {string} id */
export const hash = (seed, id) => fmix32(fnv1a(seed + ":" + id)) / 2 ** 32

// Truncated, not rounded, so the text never reads 1.0000 and both languages print the same.
/** @param {number} b */
export const bucketText = (b) => "0." + String(Math.floor(b * 1e4)).padStart(4, "0")
