"""The merchant workspace at /app/: server-rendered pages (Jinja, htmx for partial updates) where
a site's users build segments and campaigns, preview, publish, roll back and read results.
Signed-cookie sessions, CSRF on every form and htmx call, a strict CSP; the JSON API stays
Bearer-only (the session cookie is scoped to /app)."""
from datetime import timedelta

from flask_wtf.csrf import generate_csrf

from server.web.keys import iso_time
from server.workspace import guard
from server.workspace.assets import asset_url

SESSION_IDLE = timedelta(hours=12)


def init_app(app):
    keys = app.config["VITRINA_SECRET_KEYS"]
    app.secret_key, app.config["SECRET_KEY_FALLBACKS"] = keys[0], keys[1:]
    app.config.update(
        SESSION_COOKIE_NAME="vitrina_session", SESSION_COOKIE_PATH="/app", SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax", PERMANENT_SESSION_LIFETIME=SESSION_IDLE,
        WTF_CSRF_TIME_LIMIT=None,  # a token lives as long as its session
    )
    app.session_interface = guard.SessionInterface()
    app.jinja_env.globals.update(asset_url=asset_url, csrf_token=generate_csrf, may=guard.may)
    app.jinja_env.filters["pair"] = lambda value: (value, value)
    app.jinja_env.filters["when"] = iso_time
    app.jinja_env.trim_blocks = app.jinja_env.lstrip_blocks = True

    from server.workspace import account, campaigns, release, reports, site_admin
    for blueprint in (account.bp, campaigns.bp, release.bp, reports.bp, site_admin.bp):
        app.register_blueprint(blueprint)
    app.register_blueprint(guard.static_bp)
