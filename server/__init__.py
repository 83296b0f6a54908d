"""Vitrina server: Flask app factory."""
from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix

from server import errors, store, workspace
from server.events import spool
from server.settings import load_config


def create_app(test_config=None, env=None):
    app = Flask(__name__)
    # Defaults and environment, validated: a bad VITRINA_* setting fails here, by name.
    app.config.update(load_config(env))
    # A test's dict overrides both.
    app.config.update(test_config or {})
    # Bodies above the largest accepted config are refused before they are read.
    app.config["MAX_CONTENT_LENGTH"] = app.config["VITRINA_CONFIG_MAX_BYTES"]
    app.json.sort_keys = False
    if app.config["VITRINA_PROXY_HOPS"]:
        # Trust exactly N proxies for the client address (never stored; used for geo only).
        hops = app.config["VITRINA_PROXY_HOPS"]
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops)
    errors.init_app(app)
    store.init_app(app)
    spool.init_app(app)

    from server.web.catalog_api import bp as catalog_bp
    from server.web.customers_api import bp as customers_bp
    from server.web.identity_public import bp as identity_public_bp
    from server.web.keys import bp as keys_bp
    from server.web.merchant import bp as merchant_bp
    from server.web.openapi import bp as api_docs_bp
    from server.web.public import bp as public_bp
    from server.web.recs_public import bp as recs_public_bp
    app.register_blueprint(public_bp)
    app.register_blueprint(merchant_bp)
    app.register_blueprint(keys_bp)
    app.register_blueprint(catalog_bp)
    app.register_blueprint(recs_public_bp)
    app.register_blueprint(identity_public_bp)
    app.register_blueprint(customers_bp)
    app.register_blueprint(api_docs_bp)
    workspace.init_app(app)
    return app
