"""Validate, save and publish a config from a file (the CLI's `publish`)."""
from pathlib import Path

from . import bundles
from .store import get_store
from .validation import parse_config, validate_config
import json


def publish_file(site, path):
    """(True, version) or (False, problems)."""
    if not get_store().site_exists(site):
        return False, [{"path": "", "message": f"no site {site!r}: run 'vitrina sites create {site}' first"}]
    try:
        raw = Path(path).read_bytes()
    except OSError as e:
        return False, [{"path": "", "message": f"cannot read the file: {e.strerror}"}]
    config, problems = parse_config(raw)
    problems = problems or validate_config(config)
    if problems:
        return False, problems
    get_store().save_draft(site, json.dumps(config, separators=(",", ":")))
    return True, bundles.publish_draft(site)
