"""The draft config of a site with its entity tag: what both the JSON API and the workspace read
and save, so two people editing at once never overwrite each other silently (a save that names a
stale tag is refused with 412 and stores nothing)."""
import json

from server.configs.validation import review_config
from server.errors import APIError
from server.identity.customers import known_types
from server.predict.models import predict_warnings
from server.store import draft_etag, get_store

STALE_MESSAGE = ("Someone saved this site's config after you loaded it: nothing was saved. Reload to see "
                 "their version, then make your change again.")


class Draft:
    """The stored draft (`config`, None when there is none) and its `etag` (quoted, for headers)."""

    def __init__(self, raw):
        self.raw = raw
        self.config = json.loads(raw) if raw is not None else None
        self.etag = f'"{draft_etag(raw)}"'


def load_draft(site):
    return Draft(get_store().get_draft(site))


def reviewed(config, crm_types=None):
    """review_config (crm.* checked against `crm_types`, the site's CRM attributes, when given),
    raising 400 `invalid_config` with every problem when there is one."""
    review = review_config(config, crm_types)
    if review.problems:
        raise APIError(400, "invalid_config", f"The config has {len(review.problems)} problem(s); nothing was saved.",
                       review.problems)
    return review


def save_draft(site, config, if_match=None):
    """Validate, sanitise and store `config` as the site's draft; returns the Review (with the new
    `etag`). `if_match`
    is werkzeug's ETags of an If-Match header (None or empty: no condition): unless it holds the
    current draft's tag, 412 and nothing stored; the check and the write are one atomic step."""
    review = reviewed(config, known_types(site))
    review.warnings = review.warnings + predict_warnings(site, review.config)
    text = json.dumps(review.config, separators=(",", ":"))
    store = get_store()
    review.etag = f'"{draft_etag(text)}"'
    if not if_match:
        store.save_draft(site, text)
        return review
    current = load_draft(site)
    tag = current.etag.strip('"')
    if not (if_match.contains(tag) or (if_match.star_tag and current.raw is not None)):
        raise _stale()
    if not store.save_draft(site, text, if_etag=tag):
        raise _stale()
    return review


def _stale():
    return APIError(412, "stale_config", STALE_MESSAGE, [{"path": "", "message": "the config changed since it was read"}])
