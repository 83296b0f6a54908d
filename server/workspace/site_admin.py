"""Site settings (with the tag snippets), users and their roles, API keys, and the audit log."""
from flask import (
    Blueprint,
    abort,
    flash,
    g,
    redirect,
    render_template,
    request,
    url_for,
)

import server.workspace.forms as forms
from server.accounts import audit
from server.accounts.users import ROLES, ensure_user, link_url, may_reset, normal_email
from server.store import KeyExists, get_store
from server.web.auth import create_key, key_problems
from server.workspace.editing import current, save
from server.workspace.guard import protect, site_role

bp = Blueprint("site_admin", __name__, url_prefix="/app/s/<site>", template_folder="templates")
protect(bp)
SETTINGS_PATHS = {f"/settings/{name}" for name in ("holdout", "consent", "antiflicker_ms", "redirect_hosts",
                                                   "referral_exclusions", "timezone", "max_value")} | {"/settings"}


def _settings_from_form(form):
    settings = {}
    for name in ("holdout", "max_value"):
        if form.get(name, "").strip():
            settings[name] = forms.number(form[name])
    if form.get("antiflicker_ms", "").strip():
        settings["antiflicker_ms"] = forms.number(form["antiflicker_ms"], integer=True)
    for name in ("consent", "timezone"):
        if form.get(name, "").strip():
            settings[name] = form[name].strip()
    for name in ("redirect_hosts", "referral_exclusions"):
        hosts = [h.strip() for h in form.get(name, "").replace(",", "\n").splitlines() if h.strip()]
        if hosts:
            settings[name] = hosts
    return settings


@bp.route("/settings", methods=["GET", "POST"])
@site_role("viewer")
def settings(site):
    config, etag = current(site)
    values, problems, stale = config.get("settings", {}), [], None
    if request.method == "POST":
        if not forms.role_allows_edit(g.role):
            abort(403, "Viewers cannot change the settings.")
        values = _settings_from_form(request.form)
        config["settings"] = values
        saved = save(site, config, "settings.save", "changed the site settings", {"settings": values})
        if saved.ok:
            flash("Saved the settings to the draft: publish to apply them.")
            return redirect(url_for("site_admin.settings", site=site))
        problems, stale, etag = saved.problems, saved.stale, request.form.get("etag", etag)
    origin = request.host_url.rstrip("/")
    return render_template("admin/settings.html", values=values, etag=etag, problems=problems, stale=stale,
                           errors=forms.place(problems, SETTINGS_PATHS), origin=origin), \
        412 if stale else 400 if problems else 200


@bp.route("/users", methods=["GET", "POST"])
@site_role("owner")
def users(site):
    store, link, problem = get_store(), None, None
    if request.method == "POST":
        email, op = normal_email(request.form.get("email", "")), request.form.get("op", "invite")
        role = request.form.get("role", "viewer")
        if email is None:
            problem = "Give a valid email address."
        elif op == "invite":
            if role not in ROLES:
                abort(400, "Unknown role.")
            created = ensure_user(email)
            store.set_role(site, email, role)
            audit.record(site, "user.invite", f"gave {email} the role {role}", {"email": email, "role": role})
            if created or not store.get_user(email).password_hash:
                link = (email, link_url(email))
            else:
                flash(f"{email} already has an account: they see '{site}' the next time they sign in.")
        elif op == "remove":
            if email == g.user.email:
                problem = "You cannot remove yourself: ask another owner."
            elif store.remove_role(site, email):
                audit.record(site, "user.remove", f"removed {email} from the site", {"email": email})
                flash(f"Removed {email} from '{site}'.")
        elif op == "reset":
            if site not in store.roles_of(email):
                abort(404, f"{email} has no role on '{site}'.")
            if not may_reset(g.roles, store.roles_of(email)):
                problem = (f"{email} also works on sites you do not own: only the operator (vitrina users create) "
                           "can give them a new link.")
            else:
                link = (email, link_url(email))
                audit.record(site, "user.reset-link", f"made a password link for {email}", {"email": email})
    return render_template("admin/users.html", members=store.site_users(site), roles=ROLES, link=link, problem=problem)


@bp.route("/keys", methods=["GET", "POST"])
@site_role("owner")
def keys(site):
    store, secret, problems = get_store(), None, []
    if request.method == "POST":
        name, scope, op = request.form.get("name", "").strip(), request.form.get("scope", ""), request.form.get("op")
        if op == "revoke":
            listed = store.list_keys(site)
            if sum(k.scope == "owner" for k in listed) == 1 and any(k.name == name and k.scope == "owner" for k in listed):
                problems = [{"path": "/name", "message": f"'{name}' is the last owner key: create another first"}]
            elif store.revoke_key(site, name):
                audit.record(site, "key.revoke", f"revoked API key '{name}'", {"name": name})
                flash(f"Revoked key '{name}': it opens nothing from now on.")
        else:
            problems = key_problems(name, scope)
            if not problems:
                try:
                    secret = (name, create_key(site, name, scope))
                    audit.record(site, "key.create", f"created API key '{name}' (scope {scope})",
                                 {"name": name, "scope": scope})
                except KeyExists:
                    problems = [{"path": "/name", "message": "is taken: revoke that key first, or choose another name"}]
    return render_template("admin/keys.html", keys=store.list_keys(site), secret=secret,
                           errors=forms.place(problems, {"/name", "/scope"}), problems=problems)


@bp.get("/audit")
@site_role("viewer")
def audit_log(site):
    return render_template("admin/audit.html", entries=audit.entries(site, limit=500))
