"""The application each uvicorn worker runs (server/web/gunicorn_app.py).

The GETs every shop page makes (tag.js, context.js, bundle.json, the SDK) are answered right on
the event loop from a memo of finished replies: no thread hop, no Flask request. The events every
shop page sends (`POST .../collect`) are read on the loop and ingested in a thread by the steps
the Flask view runs too (server/events/intake.py), without a WSGI request. Every other request,
and any hot one or collect whose answer is an error, goes to the Flask app through a2wsgi's
WSGI-to-ASGI bridge, so errors keep the API's one shape. One access line per request, without
the visitor's address."""
import asyncio
import io
import time
from urllib.parse import parse_qs

from a2wsgi import WSGIMiddleware
from werkzeug.middleware.proxy_fix import ProxyFix
from werkzeug.sansio.utils import get_host

from server.cache import app_cache
from server.delivery import serving
from server.delivery.context import MAX_UA
from server.delivery.sdk_asset import sdk_mtime
from server.events import intake
from server.store import get_store
from server.web.access_log import AccessLog
from server.web.catalog_api import body_limit
from server.web.off_loop import OffLoopReads

SDK_PATH = "/sdk/vitrina.min.js"
SITE_ROUTES = {"tag.js": serving.tag, "context.js": serving.context_js, "bundle.json": serving.bundle_json}
# Routes whose reply reads the visitor (address, user agent): memoised per visitor, in a cache of
# their own, so that many visitors never push the replies every visitor shares out of theirs.
PER_VISITOR = frozenset({"context.js"})
REPLIES = 4096
VISITOR_REPLIES = 4096
# a2wsgi, set deliberately: Flask's threads per worker, the count of the bridge this replaced
# (a2wsgi's default is 10); response chunks queued between a thread and the loop, a2wsgi's
# default (Flask's answers here are one chunk).
FLASK_THREADS, FLASK_SEND_QUEUE = 8, 10
_WANTED = {b"host": "host", b"user-agent": "user_agent", b"accept-encoding": "accept_encoding",
           b"if-none-match": "if_none_match", b"x-forwarded-for": "xff", b"x-forwarded-proto": "xfp",
           b"x-forwarded-host": "xfh"}
CLIENT_CLOSED = 499  # logged (as nginx does) for a client gone before its request body arrived
SITES, COLLECT = "/v1/sites/", "/collect"
# What werkzeug's Response.get_wsgi_response needs of a request to finish a collect answer.
COLLECT_ENVIRON = {"REQUEST_METHOD": "POST"}


def _environ_of(environ, start_response):
    return environ


def collect_site(path):
    """The site of a `/v1/sites/<site>/collect` path, as Flask's route reads it (else None)."""
    if path.startswith(SITES) and path.endswith(COLLECT):
        site = path[len(SITES):-len(COLLECT)]
        if site and "/" not in site:
            return site
    return None


class VitrinaASGI:
    def __init__(self, flask_app):
        self.flask_app = flask_app
        self.flask = WSGIMiddleware(flask_app, workers=FLASK_THREADS, send_queue_size=FLASK_SEND_QUEUE)
        self.body_limit = body_limit(flask_app.config)  # path -> the largest body Flask will read
        self.collect_limit = flask_app.config["VITRINA_COLLECT_MAX_BYTES"]
        self.access_log = AccessLog()
        self.off_loop = OffLoopReads(flask_app)  # the store reads hot GETs need, never on the loop
        self._replies = self._visitor_replies = None  # made on first use, in the forked worker
        hops = flask_app.config["VITRINA_PROXY_HOPS"]
        # The same trusted-hops rule as the Flask side (werkzeug's ProxyFix), applied to a tiny environ.
        self._proxy_fix = ProxyFix(_environ_of, x_for=hops, x_proto=hops, x_host=hops) if hops else None

    async def __call__(self, scope, receive, send):
        kind = scope["type"]
        if kind == "http":
            started = time.monotonic()
            reply = site = None
            if scope["method"] in ("GET", "HEAD"):
                await self.off_loop.before_hot_get(scope["path"])
                reply = self.hot_reply(scope)
            elif scope["method"] == "POST":
                site = collect_site(scope["path"])
            if reply is not None:
                status, headers, body = reply
                await send({"type": "http.response.start", "status": status, "headers": headers})
                await send({"type": "http.response.body", "body": body})  # uvicorn sends none for HEAD
                sent = len(body) if scope["method"] == "GET" else 0
            elif site is not None:
                status, sent = await self._collect(site, scope, receive, send)
            else:
                status, sent = await self._flask(scope, receive, send)
            self.access_log.write(scope, status, sent, started)
        elif kind == "lifespan":
            await self._lifespan(receive, send)

    def hot_reply(self, scope):
        """(status, ASGI headers, body) for a hot GET, or None to let Flask answer."""
        path = scope["path"]
        if path == SDK_PATH:
            what, site = "sdk", None
        elif path.startswith("/v1/sites/"):
            site, _, what = path[len("/v1/sites/"):].partition("/")
            if what not in SITE_ROUTES:
                return None
        else:
            return None
        hot = self._request(scope)
        if self._replies is None:
            self._make_replies()
        if what in PER_VISITOR:
            # The user agent and a process-salted hash of the address: no address kept.
            key, replies = (what, site, hot.user_agent[:MAX_UA], hash(hot.remote_addr)), self._visitor_replies
        else:
            key = (what, site, hot.host_url, "gzip" in hot.accept_encoding, hot.if_none_match, hot.query_v)
            replies = self._replies
        found = replies.get(key)
        if found is None:
            try:
                with self.flask_app.app_context():
                    if what == "sdk":
                        status, headers, body = serving.sdk(hot)
                    else:
                        status, headers, body = SITE_ROUTES[what](site, hot)
            except Exception:  # 404, 503, a store outage...: Flask answers in the API's error shape
                return None
            raw = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers]
            if status == 200:
                raw.append((b"content-length", str(len(body)).encode()))
            found = replies.put(key, (status, raw, body))
        return found

    def _make_replies(self):
        with self.flask_app.app_context():
            store = get_store()
            self._visitor_replies = app_cache(
                "hot visitor replies", VISITOR_REPLIES, "the store's version token, which moves every second at "
                "least: a visitor's reply is kept a second at most",
                token=store.version_token)
            self._replies = app_cache(
                "hot replies", REPLIES, "a publish or a revision (the store's version token, which also moves every second) "
                "or an SDK rebuild (its file's mtime, looked at once a second)",
                token=lambda: (store.version_token(), sdk_mtime(self.flask_app)))

    def _request(self, scope):
        seen = {}
        for name, value in scope["headers"]:
            field = _WANTED.get(name)
            if field is not None:  # a repeated header's values joined, as Flask gets them from a2wsgi
                value = value.decode("latin-1")
                seen[field] = seen[field] + "," + value if field in seen else value
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

    async def _collect(self, site, scope, receive, send):
        """Answer a collect batch (server/events/intake.py) in a Flask thread without a WSGI
        request; an error is handed to Flask, which raises it (the steps are not run twice).
        (status, body bytes sent) for the access log."""
        read = await self._read_ahead(scope, receive, self.collect_limit)
        if read is None:
            return CLIENT_CLOSED, 0
        receive, parts = read
        declared = None
        for name, value in scope["headers"]:  # as Flask's request.content_length has it
            if name == b"content-length":
                declared = int(value) if value.isdigit() else None
        hot = self._request(scope)
        request = intake.CollectRequest(hot.user_agent, hot.remote_addr, declared, io.BytesIO(b"".join(parts)).read)
        outcome = await asyncio.get_running_loop().run_in_executor(self.flask.executor, self._ingest, site, request)
        if isinstance(outcome, Exception):
            scope[intake.FRONT_ERROR] = outcome
            return await self._flask(scope, receive, send, read_ahead=False)
        status, headers, body = outcome
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})
        return status, len(body)

    def _ingest(self, site, request):
        """(status, ASGI headers, body) of a collect answer as Flask would send it, or the
        exception the request met (in a Flask thread: the store is blocking)."""
        with self.flask_app.app_context():
            try:
                response = intake.answer(site, request)
            except Exception as e:  # noqa: BLE001 -- handed to Flask, whose handlers answer it
                return e
            chunks, status, headers = response.get_wsgi_response(COLLECT_ENVIRON)
            body = b"".join(chunks)
        return (int(status.split(" ", 1)[0]),
                [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers], body)

    async def _flask(self, scope, receive, send, read_ahead=True):
        """Run the request in Flask; (status, body bytes sent) for the access log."""
        if read_ahead:
            read = await self._read_ahead(scope, receive, self.body_limit(scope["path"]))
            if read is None:
                return CLIENT_CLOSED, 0
            receive = read[0]
        answer = [500, 0]

        async def counted(message):
            if message["type"] == "http.response.start":
                answer[0] = message["status"]
            elif scope["method"] != "HEAD":
                answer[1] += len(message.get("body", b""))
            await send(message)
        await self.flask(scope, receive, counted)
        return answer[0], answer[1]

    async def _read_ahead(self, scope, receive, limit):
        """Read the request body on the event loop, as far as `limit` plus one byte, so a slow
        upload holds no Flask thread and an aborted one never reaches Flask (None). A body
        declared larger than the limit is not read at all: Flask refuses it from Content-Length.
        Returns (a `receive` that replays what was read, the chunks of body read)."""
        for name, value in scope["headers"]:
            if name == b"content-length":
                if value.isdigit() and int(value) > limit:
                    return receive, ()
                break
        messages, size = [], 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return None  # http.disconnect
            messages.append(message)
            size += len(message.get("body", b""))
            if not message.get("more_body") or size > limit:
                break
        if any(name == b"transfer-encoding" for name, _ in scope["headers"]):
            # A chunked body, now read (or read past the limit): Flask gets its length, as WSGI
            # gives no other way to say where a body ends (and refuses one past the limit from it).
            scope["headers"] = [(n, v) for n, v in scope["headers"] if n not in (b"transfer-encoding", b"content-length")]
            scope["headers"].append((b"content-length", str(size).encode()))
        parts = [message.get("body", b"") for message in messages]
        messages.reverse()

        async def replay():
            return messages.pop() if messages else await receive()
        return replay, parts

    async def _lifespan(self, receive, send):
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                self.off_loop.start()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                self.off_loop.stop()
                self.flask.executor.shutdown(wait=True)
                await send({"type": "lifespan.shutdown.complete"})
                return
