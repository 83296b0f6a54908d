"""The built browser SDK: sdk_js/dist/vitrina.min.js (the SDK file: core and every module tag.js may
carry) and, named by dist/manifest.json beside it, the core and each module that tag.js is
assembled from, and the modules the core fetches itself (the debug log's). Read once and re-read
when rebuilt."""
import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path

from flask import current_app

from server.cache import app_cache
from server.errors import APIError

REPO_SDK = Path(__file__).resolve().parents[2] / "sdk_js" / "dist" / "vitrina.min.js"
BY_MTIME = "nothing: entries are keyed by the file's path and mtime (a rebuild is a new key)"


@dataclass(frozen=True, slots=True)
class SdkBuild:
    core: bytes
    modules: dict    # name -> bytes: the modules tag.js may carry
    digest: str      # of the core and those modules
    lazy: dict       # name -> bytes: the modules the core fetches itself (/sdk/modules/<name>.min.js)


def sdk_path(app=None):
    return Path((app or current_app).config.get("VITRINA_SDK_PATH") or REPO_SDK)


def _not_built(path):
    return APIError(503, "sdk_not_built", f"The browser SDK is missing at {path}: run 'npm run build'.")


def _read(cache_name, path, make):
    """make(path), cached until the file's mtime changes; 503 when it is missing or unreadable."""
    try:
        mtime = path.stat().st_mtime_ns
    except OSError:
        raise _not_built(path) from None
    try:
        return app_cache(cache_name, 4, BY_MTIME).get_or_make((path, mtime), lambda: make(path))
    except (OSError, ValueError, KeyError, TypeError):
        raise _not_built(path) from None


def _load_file(path):
    data = path.read_bytes()
    return data, hashlib.sha256(data).hexdigest()[:16]


def sdk_source():
    """(bytes, short hash) of the SDK file; 503 with the fix when it has not been built."""
    return _read("SDK file", sdk_path(), _load_file)


def _load_build(manifest_path):
    manifest = json.loads(manifest_path.read_text("utf-8"))
    folder = manifest_path.parent
    core = (folder / manifest["core"]).read_bytes()
    modules = {name: (folder / file).read_bytes() for name, file in sorted(manifest["modules"].items())}
    digest = hashlib.sha256(b"\0".join([core, *modules.values()])).hexdigest()[:16]
    lazy = {name: (folder / file).read_bytes() for name, file in sorted(manifest.get("lazy", {}).items())}
    return SdkBuild(core, modules, digest, lazy)


def sdk_build():
    """The core and modules tag.js is made of (the build writes dist/manifest.json last, so its
    mtime says when to read them again); 503 when they have not been built."""
    return _read("SDK build", sdk_path().with_name("manifest.json"), _load_build)


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
