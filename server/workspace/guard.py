"""Who is signed in, what they may do on the site of the URL, and the protections every
workspace response carries: sessions in signed cookies, CSRF tokens, a strict CSP, and a rate
limit on signing in."""
import functools
import hashlib
import time

from flask import (
    Blueprint,
    abort,
    current_app,
    g,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask.sessions import SecureCookieSessionInterface
from flask_wtf.csrf import ValidationError, validate_csrf
from werkzeug.exceptions import HTTPException

from server.accounts.users import role_allows
from server.store import UNAVAILABLE, get_store, site_exists
from server.wire.ids import SITE_RE

SESSION_MAX_S = 7 * 86_400  # signed in at most this long, however active (idle: PERMANENT_SESSION_LIFETIME)
SIGN_IN_WINDOW_S = 300
SIGN_IN_PER_EMAIL, SIGN_IN_PER_CLIENT = 10, 50
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
       "form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")

class _StaticBlueprint(Blueprint):
    def get_send_file_max_age(self, filename):
        return 365 * 86_400  # every built name carries its content's hash


static_bp = _StaticBlueprint("workspace_static", __name__, static_folder="static", static_url_path="/app/static")


class SessionInterface(SecureCookieSessionInterface):
    """Flask's signed-cookie session, marked Secure whenever the request came over https
    (behind a proxy: with VITRINA_PROXY_HOPS, from X-Forwarded-Proto)."""

    def get_cookie_secure(self, app):
        return request.is_secure


def protect(bp):
    """Every workspace blueprint: CSRF on unsafe methods, the user on `g`, security headers,
    HTML error pages."""
    bp.before_request(_before)
    bp.after_request(secure_headers)
    bp.register_error_handler(HTTPException, _error_page)


def _before():
    g.user, g.roles = _signed_in_user(), {}
    if g.user is not None:
        g.roles = get_store().roles_of(g.user.email)
        g.actor = f"user:{g.user.email}"
    if request.method not in SAFE_METHODS:
        try:
            validate_csrf(request.form.get("csrf_token") or request.headers.get("X-CSRFToken"))
        except ValidationError:
            abort(400, "This form has expired (or came from another site): reload the page and try again.")


def secure_headers(response):
    response.headers.setdefault("Content-Security-Policy", CSP)
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Referrer-Policy"] = "no-referrer"  # set-password links carry their token in the path
    if request.blueprint != "workspace_static":
        response.headers["Cache-Control"] = "no-store"
    return response


def _error_page(e):
    return render_template("error.html", error=e), e.code


def _signed_in_user():
    email = session.get("email")
    if not email:
        return None
    user = get_store().get_user(email)
    if (user is None or session.get("epoch") != user.sessions_epoch
            or time.time() - session.get("signed_in_at", 0) > SESSION_MAX_S):
        session.clear()
        return None
    return user


def sign_in(user):
    session.clear()  # a new session (and CSRF token) at every sign-in: no fixation
    session.permanent = True
    session.update(email=user.email, epoch=user.sessions_epoch, signed_in_at=int(time.time()))


def sign_out():
    session.clear()


def sign_in_allowed(email):
    """Count this attempt; False when the email or this client made too many in the window."""
    window = int(time.time() // SIGN_IN_WINDOW_S)
    salt = current_app.config["VITRINA_SECRET_KEYS"][0]
    client = hashlib.sha256(f"{salt}|{request.remote_addr}".encode()).hexdigest()[:20]
    who = hashlib.sha256(f"{salt}|{email}".encode()).hexdigest()[:20]
    store = get_store()
    try:
        return (store.hit_window(f"vitrina:signin:e:{who}", window, 2 * SIGN_IN_WINDOW_S) <= SIGN_IN_PER_EMAIL
                and store.hit_window(f"vitrina:signin:c:{client}", window, 2 * SIGN_IN_WINDOW_S) <= SIGN_IN_PER_CLIENT)
    except UNAVAILABLE:
        return True  # the sign-in itself needs the store and will fail on its own


def signed_in(view):
    @functools.wraps(view)
    def wrapper(*args, **kwargs):
        if g.user is None:
            return redirect(url_for("account.sign_in", next=request.full_path if request.method == "GET" else None))
        return view(*args, **kwargs)
    return wrapper


def site_role(needed):
    """The view's `site` must be one the user has at least role `needed` on: sign in first
    (redirect), 404 for a site they have no role on (whether or not it exists), 403 below `needed`."""
    def decorate(view):
        @functools.wraps(view)
        @signed_in
        def wrapper(site, *args, **kwargs):
            role = g.roles.get(site)
            if role is None or not SITE_RE.match(site) or not site_exists(site):
                abort(404, f"You have no site '{site}'.")
            if not role_allows(role, needed):
                abort(403, f"Your role on '{site}' is {role}; this needs {needed} or above.")
            g.site, g.role = site, role
            return view(site, *args, **kwargs)
        return wrapper
    return decorate


def safe_next(target):
    """Where to go after signing in: a workspace path only (never another host)."""
    if isinstance(target, str) and target.startswith("/app/") and not target.startswith("//") and "\\" not in target:
        return target
    return url_for("account.home")


def may(needed):
    """In templates and views: whether the current user's role on g.site includes `needed`."""
    return role_allows(g.get("role"), needed)
