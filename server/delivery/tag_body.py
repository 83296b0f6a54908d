"""tag.js bodies: SDK + `vitrina.init({endpoint, bundle, context})`.

Everything before the context is the same for every visitor of a version, so that prefix is
built and deflated once; a request deflates only its own short suffix, on a copy of the
compressor's state after the prefix, and splices it into one valid gzip member."""
import hashlib
import struct
import zlib

from server.cache import app_cache

GZIP_HEADER = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"  # deflate, no name, mtime 0, unknown OS


class Prefix:
    def __init__(self, data):
        self.data = data
        self.digest = hashlib.sha256(data).hexdigest()[:24]
        self.crc = zlib.crc32(data)
        self._deflate = zlib.compressobj(6, zlib.DEFLATED, -15)  # raw deflate: we write the gzip frame
        self.deflated = GZIP_HEADER + self._deflate.compress(data)

    def etag(self, suffix):
        return f"{self.digest}-{hashlib.sha256(suffix).hexdigest()[:16]}"

    def gzip(self, suffix):
        deflate = self._deflate.copy()
        tail = deflate.compress(suffix) + deflate.flush()
        size = (len(self.data) + len(suffix)) & 0xFFFFFFFF
        return self.deflated + tail + struct.pack("<II", zlib.crc32(suffix, self.crc), size)


def prefix_for(key, build):
    """The Prefix cached under `key` (site, version, signature, endpoint, SDK digest), built once."""
    prefixes = app_cache("tag prefixes", 64, "nothing: keyed by site, version, signature, endpoint and SDK digest")
    return prefixes.get_or_make(key, lambda: Prefix(build()))
