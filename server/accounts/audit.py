"""Each site's audit log: who changed what, when. Written for every change, from the workspace
(`user:<email>`), the JSON API (`key:<name>`) and the CLI (`cli`)."""
import json
from datetime import datetime, timezone

from flask import g, has_request_context

from server.store import get_store

MAX_SUMMARY = 500


def actor():
    """Who is making the current change: the signed-in user, the API key, or the CLI."""
    return (g.get("actor") if has_request_context() else None) or "cli"


def record(site, action, summary, details=None, who=None):
    entry = {"at": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"), "who": who or actor(),
             "action": action, "summary": summary[:MAX_SUMMARY], "details": details or {}}
    get_store().add_audit(site, json.dumps(entry, separators=(",", ":")))


def entries(site, limit=200):
    return [json.loads(text) for text in get_store().audit_log(site, limit)]
