"""Reading and saving a site's draft from the workspace: every save sends the ETag the page was
rendered with (If-Match header from htmx, or the form's `etag` field) and is audited."""
from flask import make_response, redirect, request
from werkzeug.http import parse_etags

from server.accounts import audit
from server.configs.drafts import load_draft, save_draft
from server.configs.validation import review_config
from server.errors import APIError


class Saved:
    """What a save did: `ok`, or `problems` (400: every one, by path) or `stale` (412)."""

    def __init__(self, ok=False, problems=(), stale=None, warnings=()):
        self.ok, self.problems, self.stale, self.warnings = ok, list(problems), stale, list(warnings)


def current(site):
    """(config dict, quoted etag) of the draft; an empty config when there is none yet."""
    draft = load_draft(site)
    return (draft.config if isinstance(draft.config, dict) else {}), draft.etag


def sent_etag():
    return request.headers.get("If-Match") or request.form.get("etag") or ""


def save(site, config, action, summary, details=None, form_problems=()):
    """Validate and save the whole config under the page's ETag. Problems of the form itself
    (JSON that does not parse) refuse the save as the server's problems do, all in one list."""
    if form_problems:
        problems = list(form_problems) + review_config(config).problems
        return Saved(problems=sorted(problems, key=lambda p: p["path"]))
    if_match = parse_etags(sent_etag())
    if not if_match:
        return Saved(stale="This page did not say which version of the config it edits: reload it.")
    try:
        review = save_draft(site, config, if_match)
    except APIError as e:
        if e.status == 412:
            return Saved(stale=e.message)
        return Saved(problems=e.details)
    audit.record(site, action, summary, details)
    return Saved(ok=True, warnings=review.warnings)


def go_to(url):
    """Where a successful form goes next: a redirect, or for htmx a full navigation (HX-Redirect),
    so the next page (and its flashed message) is shown whole."""
    if request.headers.get("HX-Request"):
        response = make_response("", 200)
        response.headers["HX-Redirect"] = url
        return response
    return redirect(url)
