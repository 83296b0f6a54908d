"""The built browser SDK (sdk_js/dist/vitrina.min.js), read once and re-read when rebuilt."""
import hashlib
from pathlib import Path

from flask import current_app

from server.errors import APIError

REPO_SDK = Path(__file__).resolve().parents[2] / "sdk_js" / "dist" / "vitrina.min.js"
_cache = {}


def sdk_path():
    return Path(current_app.config.get("VITRINA_SDK_PATH") or REPO_SDK)


def sdk_source():
    """(bytes, short hash) of the SDK; 503 with the fix when it has not been built."""
    path = sdk_path()
    try:
        mtime = path.stat().st_mtime_ns
    except OSError:
        raise APIError(503, "sdk_not_built", f"The browser SDK is missing at {path}: run 'npm run build'.") from None
    cached = _cache.get(path)
    if cached is None or cached[0] != mtime:
        data = path.read_bytes()
        cached = (mtime, data, hashlib.sha256(data).hexdigest()[:16])
        _cache[path] = cached
    return cached[1], cached[2]
