"""The workspace's built assets (`npm run build` → server/workspace/static/, names carrying a
content hash, listed in static/manifest.json), served by Flask with a year's cache."""
import json
from pathlib import Path

from flask import current_app, url_for

from server.cache import app_cache

STATIC = Path(__file__).resolve().parent / "static"


def _manifest():
    path = STATIC / "manifest.json"
    try:
        stamp = path.stat().st_mtime_ns
    except OSError:
        raise RuntimeError(f"{path} is missing: run 'npm run build'") from None
    cache = app_cache("workspace asset manifest", 4, "nothing: keyed by the manifest's mtime (a rebuild is a new key)")
    return cache.get_or_make(stamp, lambda: json.loads(path.read_text()))


def asset_url(name):
    """The URL of a built asset by its source name (app.js, app.css)."""
    built = _manifest().get(name)
    if built is None:
        current_app.logger.error("workspace asset %s is not in the manifest: run 'npm run build'", name)
        built = name
    return url_for("workspace_static.static", filename=built)
