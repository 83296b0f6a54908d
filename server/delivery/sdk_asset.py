"""The built browser SDK: sdk_js/dist/vitrina.min.js (the SDK file: core and every module) and,
named by dist/manifest.json beside it, the core and each module that tag.js is assembled from.
Read once and re-read when rebuilt."""
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from flask import current_app

from server.errors import APIError

REPO_SDK = Path(__file__).resolve().parents[2] / "sdk_js" / "dist" / "vitrina.min.js"
_cache = {}


@dataclass(frozen=True, slots=True)
class SdkBuild:
    core: bytes
    modules: dict    # name -> bytes
    digest: str      # of everything above


def sdk_path():
    return Path(current_app.config.get("VITRINA_SDK_PATH") or REPO_SDK)


def _not_built(path):
    return APIError(503, "sdk_not_built", f"The browser SDK is missing at {path}: run 'npm run build'.")


def _read(path, make):
    """make(path) cached until the file's mtime changes; 503 when it is missing."""
    try:
        mtime = path.stat().st_mtime_ns
    except OSError:
        raise _not_built(path) from None
    cached = _cache.get(path)
    if cached is None or cached[0] != mtime:
        try:
            cached = _cache[path] = (mtime, make(path))
        except (OSError, ValueError, KeyError, TypeError):
            raise _not_built(path) from None
    return cached[1]


def sdk_source():
    """(bytes, short hash) of the SDK file; 503 with the fix when it has not been built."""
    return _read(sdk_path(), lambda path: (data := path.read_bytes(), hashlib.sha256(data).hexdigest()[:16]))


def _load_build(manifest_path):
    manifest = json.loads(manifest_path.read_text("utf-8"))
    folder = manifest_path.parent
    core = (folder / manifest["core"]).read_bytes()
    modules = {name: (folder / file).read_bytes() for name, file in sorted(manifest["modules"].items())}
    digest = hashlib.sha256(b"\0".join([core, *modules.values()])).hexdigest()[:16]
    return SdkBuild(core, modules, digest)


def sdk_build():
    """The core and modules tag.js is made of (dist/manifest.json is written last by the build,
    so its mtime says when to read them again); 503 when they have not been built."""
    return _read(sdk_path().with_name("manifest.json"), _load_build)
