"""Deterministic hashing and bucketing (docs/DESIGN.md "Hashing and bucketing").

The twin of sdk_js/src/hash.js: the same visitor gets the same bucket in the browser and here.
"""
import math

_MASK = 0xFFFFFFFF
HASH_VERSION = 1  # the scheme below; a bundle names the one its buckets use ("hash": 1)


def _utf8(text):
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        # A lone surrogate: encode as the browser's TextEncoder does (U+FFFD), keeping valid pairs.
        return text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace").encode("utf-8")


def fnv1a(text, h=0x811C9DC5):
    """FNV-1a 32-bit over the UTF-8 bytes of `text` (continuing from state `h` when given)."""
    for byte in _utf8(text):
        h = ((h ^ byte) * 0x01000193) & _MASK
    return h


def fmix32(h):
    """murmur3's finaliser: FNV-1a alone leaves ids that differ in the last character close together."""
    h = ((h ^ (h >> 16)) * 0x85EBCA6B) & _MASK
    h = ((h ^ (h >> 13)) * 0xC2B2AE35) & _MASK
    return h ^ (h >> 16)


def hash(seed, visitor_id):  # noqa: A001 - the contract's name
    """A float in [0, 1) from `seed` and `visitor_id` (both strings)."""
    return fmix32(fnv1a(f"{seed}:{visitor_id}")) / 2**32


def seed_state(seed):
    """The FNV-1a state after `seed:`, so hash_from(seed_state(seed), id) == hash(seed, id) while
    hashing only the id's bytes. Exact: FNV-1a runs byte by byte, and as the prefix ends in `:`
    its UTF-8 bytes never depend on what follows (no surrogate pair can span the `:`)."""
    return fnv1a(f"{seed}:")


def hash_from(state, id_utf8):
    """hash(seed, id) from seed_state(seed) and the id's UTF-8 bytes (bucketing._utf8(id))."""
    h = state
    for byte in id_utf8:
        h = ((h ^ byte) * 0x01000193) & _MASK
    h = ((h ^ (h >> 16)) * 0x85EBCA6B) & _MASK
    h = ((h ^ (h >> 13)) * 0xC2B2AE35) & _MASK
    return (h ^ (h >> 16)) / 2**32


def bucket_text(bucket):
    """`0.xxxx`, truncated (never rounded up to 1.0000): the form reasons print."""
    return f"0.{math.floor(bucket * 10000):04d}"
