"""Preview (links with signed tokens, QR codes, and which campaigns a visitor would get),
publish with a summary of what changes, the versions with who published them, roll back."""
import io
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import segno
from flask import (
    Blueprint,
    abort,
    flash,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from markupsafe import Markup

from server.accounts import audit
from server.configs import publishing
from server.configs.compiler import compile_bundle
from server.configs.diff import changes
from server.configs.validation import review_config
from server.decisions.decide import decide
from server.delivery import preview as previews
from server.errors import APIError
from server.store import get_store
from server.workspace.editing import current
from server.workspace.guard import may, protect, site_role

bp = Blueprint("release", __name__, url_prefix="/app/s/<site>", template_folder="templates")
protect(bp)
VISITOR_FIELDS = [  # (attribute, label, example) of the "which campaigns would this visitor get" form
    ("page.url", "Page URL", "https://shop.example/product.html"), ("page.path", "Page path", "/product.html"),
    ("utm.source", "UTM source", "newsletter"), ("utm.medium", "UTM medium", "email"),
    ("utm.campaign", "UTM campaign", "spring-sale"), ("referrer.source", "Referrer source", "google"),
    ("device.type", "Device type", "mobile"), ("device.os", "Operating system", "ios"),
    ("geo.country", "Country (ISO code)", "FR"), ("visit.count", "Visit count", "3"),
    ("visit.new", "New visitor (true or false)", "true"), ("cart.value", "Cart value", "54.9"),
]


def _with_query(url, **params):
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k not in params]
    return urlunsplit(parts._replace(query=urlencode(query + list(params.items()))))


def qr_svg(url, label):
    """The QR code of `url` as inline SVG with an accessible name (segno; no style attributes)."""
    out = io.BytesIO()
    segno.make(url, error="m").save(out, kind="svg", xmldecl=False, svgns=True, title=label, nl=False, scale=3,
                                    border=2, svgclass="qr", lineclass=None)
    name = str(Markup.escape(label))
    return Markup(out.getvalue().decode().replace("<svg ", f'<svg role="img" aria-label="{name}" ', 1))


def _page_url(site):
    pages = session.setdefault("preview_pages", {})
    page = request.args.get("page")
    if page is not None:
        page = page.strip()[:2000]
        if urlsplit(page).scheme in ("http", "https") and urlsplit(page).netloc:
            pages[site] = page
            session.modified = True
    return pages.get(site, "")


def _sources(site):
    """[(label, source, bundle)] of what can be previewed: the draft (if valid) and the live version."""
    config, _ = current(site)
    out = []
    review = review_config(config)
    if config and not review.problems:
        out.append(("Draft", previews.DRAFT, compile_bundle(site, 0, review.config)))
    latest = publishing.load_latest(site)
    if latest:
        out.append((f"Live (version {latest[0]['version']})", latest[0]["version"], latest[0]))
    return out


@bp.get("/preview")
@site_role("viewer")
def preview(site):
    page = _page_url(site)
    groups = []
    for label, source, bundle in _sources(site):
        links = []
        for campaign in bundle["campaigns"]:
            for variation in campaign["variations"]:
                link = None
                if page:
                    token = previews.mint(site, source, campaign["key"], variation["key"])
                    link = _with_query(page, vitrina_preview=token, vitrina_debug="1")
                name = f"{campaign['key']}: {variation['key']}"
                links.append({"campaign": campaign["key"], "variation": variation["key"], "url": link,
                              "qr": qr_svg(link, f"QR code of the {label.lower()} preview of {name}") if link else None})
        groups.append({"label": label, "source": source, "links": links})
    return render_template("release/preview.html", page=page, groups=groups, fields=VISITOR_FIELDS,
                           max_age=previews.MAX_AGE_S // 60)


def _attributes(form):
    """The nested attribute tree of the form's fields (numbers and booleans typed)."""
    tree = {}
    for name, _, _ in VISITOR_FIELDS:
        text = form.get(name, "").strip()
        if not text:
            continue
        value = text
        if text in ("true", "false"):
            value = text == "true"
        else:
            try:
                value = float(text) if name in ("visit.count", "cart.value") else text
            except ValueError:
                pass
        node = tree
        *path, last = name.split(".")
        for part in path:
            node = node.setdefault(part, {})
        node[last] = value
    return tree


@bp.post("/preview/decide")
@site_role("viewer")
def preview_decide(site):
    source = request.form.get("source", "live")
    bundles = {str(src): bundle for _, src, bundle in _sources(site)}
    bundle = bundles.get("draft" if source == "draft" else next((k for k in bundles if k != "draft"), ""))
    visitor = request.form.get("visitor_id", "").strip()[:64] or "preview-visitor"
    result = None
    if bundle is not None:
        result = decide(bundle, _attributes(request.form), visitor)
    return render_template("release/decision.html", result=result, bundle=bundle, source=source, visitor=visitor)


@bp.route("/publish", methods=["GET", "POST"])
@site_role("viewer")
def publish_page(site):
    if request.method == "POST":
        if not _may_publish():
            abort(403, "Viewers cannot publish.")
        try:
            version, warnings = publishing.publish_draft(site)
        except APIError as e:
            flash(f"Not published: {e.message}")
            return redirect(url_for("release.publish_page", site=site))
        audit.record(site, "publish", f"published version {version}", {"version": version})
        flash(f"Published version {version}: it is live." + (" Sanitising removed: " + "; ".join(
            w["message"] for w in warnings) if warnings else ""))
        return redirect(url_for("release.versions", site=site))
    config, _ = current(site)
    latest = publishing.load_latest(site)
    review = review_config(config)
    summary = changes(site, latest[0] if latest else None, review.config) if config and not review.problems else None
    return render_template("release/publish.html", summary=summary, problems=review.problems if config else [],
                           latest=latest[0] if latest else None, has_draft=bool(config))


def _may_publish():
    return may("editor")


def _publishers(site):
    """{version: who} from the audit log."""
    who = {}
    for entry in audit.entries(site, limit=1000):
        version = entry.get("details", {}).get("version")
        if entry["action"] in ("publish", "rollback") and isinstance(version, int):
            who.setdefault(version, entry["who"])
    return who


@bp.get("/versions")
@site_role("viewer")
def versions(site):
    rows = get_store().list_versions(site)
    latest = rows[0][0] if rows else None
    return render_template("release/versions.html", rows=rows, latest=latest, who=_publishers(site))


@bp.post("/rollback")
@site_role("editor")
def rollback(site):
    version = request.form.get("version", "")
    if not version.isdecimal() or len(version) > 9:
        abort(400, "Choose a version to roll back to.")
    try:
        new = publishing.rollback(site, int(version))
    except APIError as e:
        abort(e.status if e.status < 500 else 400, e.message)
    audit.record(site, "rollback", f"rolled back to version {version} (published as version {new})",
                 {"version": new, "rolled_back_from": int(version)})
    flash(f"Rolled back: version {new} is live, a copy of version {version}.")
    return redirect(url_for("release.versions", site=site))
