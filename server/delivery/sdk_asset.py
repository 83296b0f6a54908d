"""The built browser SDK (sdk_js/dist/vitrina.min.js), read once and re-read when rebuilt."""
import hashlib
import time
from pathlib import Path

from flask import current_app

from server.cache import app_cache
from server.errors import APIError

REPO_SDK = Path(__file__).resolve().parents[2] / "sdk_js" / "dist" / "vitrina.min.js"


def sdk_path(app=None):
    return Path((app or current_app).config.get("VITRINA_SDK_PATH") or REPO_SDK)


def sdk_source():
    """(bytes, short hash) of the SDK; 503 with the fix when it has not been built."""
    path = sdk_path()
    try:
        mtime = path.stat().st_mtime_ns
    except OSError:
        raise APIError(503, "sdk_not_built", f"The browser SDK is missing at {path}: run 'npm run build'.") from None
    files = app_cache("SDK file", 4, "nothing: entries are keyed by the file's path and mtime (a rebuild is a new key)")

    def read():
        data = path.read_bytes()
        return data, hashlib.sha256(data).hexdigest()[:16]
    return files.get_or_make((path, mtime), read)


def _this_second():
    return int(time.monotonic())


def sdk_mtime(app):
    """The SDK file's mtime (None when missing), looked at once a second: rebuilds are a
    development event, and a stat per request is not free. For memos of replies that hold it."""
    stamps = app_cache("SDK file mtime", 1, "the clock: the file is looked at again every second",
                       token=_this_second, app=app)

    def stat():
        try:
            return sdk_path(app).stat().st_mtime_ns
        except OSError:
            return None
    return stamps.get_or_make("mtime", stat)
