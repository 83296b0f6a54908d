"""Draft and live previews: a short-lived signed token names a site, what to preview (the draft
as it was when the token was made, or a published version) and the variation to force. The tag,
seeing `?vitrina_preview=<token>` on a shop page, loads `GET /v1/sites/<site>/preview.json?token=`
(no-store: past any CDN cache), decides with that bundle and the forced variation, and sends no
event: a preview is never counted."""
from datetime import datetime, timezone

from flask import current_app
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

from server.configs import publishing
from server.configs.compiler import compile_bundle
from server.configs.drafts import load_draft
from server.configs.validation import review_config
from server.errors import APIError

SALT = "vitrina.preview"
MAX_AGE_S = 3600
DRAFT = "draft"


def _serializer():
    keys = current_app.config["VITRINA_SECRET_KEYS"]
    return URLSafeTimedSerializer(list(reversed(keys)), salt=SALT)


def mint(site, source, campaign, variation):
    """A token for `source` ("draft", or a published version number), forcing campaign:variation.
    A draft token also carries the draft's ETag: the link shows that draft, or nothing."""
    payload = {"site": site, "source": source, "force": {campaign: variation}}
    if source == DRAFT:
        payload["etag"] = load_draft(site).etag
    return _serializer().dumps(payload)


def _payload(site, token):
    try:
        payload, signed_at = _serializer().loads(token, max_age=MAX_AGE_S, return_timestamp=True)
    except SignatureExpired:
        raise APIError(410, "preview_expired", f"This preview link has expired (they last {MAX_AGE_S // 60} minutes): "
                                               "make a new one in the workspace.") from None
    except BadSignature:
        raise APIError(403, "preview_invalid", "This preview token is not valid.") from None
    if not isinstance(payload, dict) or payload.get("site") != site:
        raise APIError(403, "preview_invalid", "This preview token is for another site.")
    return payload, signed_at


def preview_body(site, token):
    """{bundle, force, source, expires_at} of a valid token, else APIError (403, 404, 410)."""
    payload, signed_at = _payload(site, token)
    source = payload.get("source")
    if source == DRAFT:
        draft = load_draft(site)
        if draft.raw is None or draft.etag != payload.get("etag"):
            raise APIError(410, "preview_stale", "The draft changed since this preview link was made: make a new one.")
        latest = publishing.latest_versions().get(site) or 0
        bundle = {**compile_bundle(site, latest + 1, review_config(draft.config).config), "preview": True}
    else:
        bundle = publishing.load_version(site, source) if isinstance(source, int) else None
        if bundle is None:
            raise APIError(404, "version_not_found", f"Site '{site}' has no version {source}.")
    expires = datetime.fromtimestamp(signed_at.timestamp() + MAX_AGE_S, timezone.utc)
    return {"bundle": bundle, "force": payload.get("force") or {}, "source": source,
            "expires_at": expires.strftime("%Y-%m-%dT%H:%M:%SZ")}
