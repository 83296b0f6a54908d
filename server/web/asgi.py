"""The application gunicorn runs (worker class "asgi", one asyncio loop per worker).

The hot GETs every shop page makes (tag.js, bundle.json, the SDK) are answered right on the
event loop from per-process caches (server/delivery/serving.py): no thread hop, no Flask request. Every
other request, and any hot one that ends in an error, goes to the Flask app through
server/web/wsgi_bridge.py, so errors keep the API's one shape."""
import logging
import os
import time
from urllib.parse import parse_qs

from werkzeug.middleware.proxy_fix import ProxyFix
from werkzeug.sansio.utils import get_host

from server.configs import publishing
from server.delivery import serving
from server.delivery.sdk_asset import sdk_path
from server.web.catalog_api import body_limit
from server.web.wsgi_bridge import WSGIBridge

log = logging.getLogger(__name__)
SDK_PATH = "/sdk/vitrina.min.js"
MEMO_SIZE = 4096
_WANTED = {b"host": "host", b"user-agent": "user_agent", b"accept-encoding": "accept_encoding",
           b"if-none-match": "if_none_match", b"x-forwarded-for": "xff", b"x-forwarded-proto": "xfp",
           b"x-forwarded-host": "xfh"}


def _environ_of(environ, start_response):
    return environ


class VitrinaASGI:
    def __init__(self, flask_app, on_startup=None):
        self.flask_app = flask_app
        self.on_startup = on_startup
        self._memo, self._memo_generation = {}, None
        self._latest = self._sdk_path = self._sdk_mtime = None  # made on first use, in the forked worker
        self._sdk_checked = float("-inf")
        self.bridge = WSGIBridge(flask_app.wsgi_app, body_limit(flask_app.config))
        hops = flask_app.config["VITRINA_PROXY_HOPS"]
        # The same trusted-hops rule as the Flask side (werkzeug's ProxyFix), applied to a tiny environ.
        self._proxy_fix = ProxyFix(_environ_of, x_for=hops, x_proto=hops, x_host=hops) if hops else None

    async def __call__(self, scope, receive, send):
        kind = scope["type"]
        if kind == "http":
            if scope["method"] in ("GET", "HEAD"):
                reply = self.hot_reply(scope)
                if reply is not None:
                    status, raw, body, _ = reply
                    await send({"type": "http.response.start", "status": status, "headers": raw})
                    await send({"type": "http.response.body", "body": body})
                    return
            await self.bridge(scope, receive, send)
        elif kind == "lifespan":
            await self._lifespan(receive, send)

    def hot_reply(self, scope):
        """(status, raw headers, body, serialised header block) for a hot GET, or None to let
        Flask answer. Also called by server/web/hot_http.py with a scope of its own making."""
        path = scope["path"]
        if path == SDK_PATH:
            route = ("sdk", None)
        elif path.startswith("/v1/sites/") and path.endswith(("/tag.js", "/bundle.json")):
            site, _, what = path[len("/v1/sites/"):].partition("/")
            if what not in ("tag.js", "bundle.json"):
                return None
            route = (what, site)
        else:
            return None
        hot = self._request(scope)
        # A reply depends on nothing but the route, these request fields and the generation
        # (store changes, SDK rebuilds), so replies are memoised per process until it moves on.
        key = (route, hot.host_url, hot.user_agent, hash(hot.remote_addr), "gzip" in hot.accept_encoding,
               hot.if_none_match, hot.query_v)
        generation = self._generation()
        if generation != self._memo_generation:
            self._memo, self._memo_generation = {}, generation
        found = self._memo.get(key)
        if found is None:
            try:
                with self.flask_app.app_context():
                    what, site = route
                    if what == "sdk":
                        status, headers, body = serving.sdk(hot)
                    elif what == "tag.js":
                        status, headers, body = serving.tag(site, hot)
                    else:
                        status, headers, body = serving.bundle_json(site, hot)
            except Exception:  # 404, 503, a store outage...: Flask answers in the API's error shape
                return None
            raw = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers]
            if status == 200:
                raw.append((b"content-length", str(len(body)).encode()))
            if len(self._memo) >= MEMO_SIZE:
                self._memo = {}
            block = b"".join(b"%s: %s\r\n" % pair for pair in raw)
            found = self._memo[key] = (status, raw, body, block)
        return found

    def _generation(self):
        """Changes whenever a memoised reply may have: a new version, an SDK rebuild (looked for
        once a second: rebuilds are a development event, and a stat per request is not free)."""
        if self._latest is None:
            with self.flask_app.app_context():
                self._latest = publishing.latest_versions()
                self._sdk_path = str(sdk_path())
        now = time.monotonic()
        if now >= self._sdk_checked + 1.0:
            try:
                self._sdk_mtime = os.stat(self._sdk_path).st_mtime_ns
            except OSError:
                self._sdk_mtime = None
            self._sdk_checked = now
        return self._latest.token(), self._sdk_mtime

    def _request(self, scope):
        seen = {}
        for name, value in scope["headers"]:
            field = _WANTED.get(name)
            if field is not None:
                seen[field] = value.decode("latin-1")
        client = scope.get("client")
        scheme, host, remote = scope.get("scheme", "http"), seen.get("host"), client[0] if client else None
        if self._proxy_fix is not None and ("xff" in seen or "xfp" in seen or "xfh" in seen):
            environ = self._proxy_fix({"REMOTE_ADDR": remote, "HTTP_HOST": host, "wsgi.url_scheme": scheme,
                                       "SERVER_NAME": host, "SERVER_PORT": "",
                                       **{k: seen[f] for k, f in (("HTTP_X_FORWARDED_FOR", "xff"),
                                                                  ("HTTP_X_FORWARDED_PROTO", "xfp"),
                                                                  ("HTTP_X_FORWARDED_HOST", "xfh")) if f in seen}},
                                      None)
            scheme, host, remote = environ["wsgi.url_scheme"], environ["HTTP_HOST"], environ["REMOTE_ADDR"]
        query_v = None
        if scope["query_string"]:
            query_v = parse_qs(scope["query_string"].decode("latin-1")).get("v", [None])[0]
        host = get_host(scheme, host, scope.get("server"))  # as request.host_url has it
        return serving.Hot(f"{scheme}://{host}{scope.get('root_path', '')}/", remote, seen.get("user_agent", ""),
                           seen.get("accept_encoding", ""), seen.get("if_none_match", ""), query_v)

    async def _lifespan(self, receive, send):
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                if self.on_startup is not None:
                    self.on_startup()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                self.bridge.pool.shutdown(wait=True)
                await send({"type": "lifespan.shutdown.complete"})
                return
