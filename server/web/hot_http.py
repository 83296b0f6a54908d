"""A lean HTTP/1.1 front for the hot GETs, in front of gunicorn's own ASGI protocol.

gunicorn's asyncio worker parses every request in pure Python and goes through the ASGI
message machinery: ~60 µs a request, three quarters of the cost of serving tag.js. This
protocol owns each new connection first. A request it can answer on its own — GET or HEAD
of tag.js, bundle.json or the SDK, plain HTTP/1.1, no body, no header it does not fully
understand, answered by the per-process memo of server/web/asgi.py — it answers straight away.
At the first request it cannot (any other path, a body, Transfer-Encoding, Upgrade, Expect,
forwarded-scheme headers gunicorn would interpret, underscores in names, obsolete folding, a
malformed line, an error reply, ...), it hands the connection with every unanswered byte to
gunicorn's ASGIProtocol, which then serves it for good, exactly as if it had had it from the
start. Requests are answered strictly in order; nothing it does not parse completely is
consumed, so there is no second reading of a request by a different parser."""
import asyncio
import datetime
import re
import time
from email.utils import formatdate

from gunicorn.asgi.protocol import ASGIProtocol
from gunicorn.workers import gasgi
from gunicorn.workers.gasgi import ASGIWorker

MAX_HEAD = 8190            # gunicorn's limit_request_line; longer heads go to gunicorn (and its 4xx)
MAX_FIELDS = 100           # gunicorn's limit_request_fields
TICK_S = 1.0               # idle and shutdown checks
HOT_PATH = re.compile(rb"/(?:sdk/vitrina\.min\.js|v1/sites/[a-z0-9][a-z0-9-]{0,62}/(?:tag\.js|bundle\.json))\Z")
FIELD_NAME = re.compile(rb"[!#$%&'*+.^`|~0-9A-Za-z-]+\Z")   # RFC 9110 token, minus '_' (gunicorn drops those)
BAD_VALUE = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")
QUERY = re.compile(rb"[\x21-\x7e]*\Z")
# Fields whose meaning we would have to implement (body framing, upgrades, and the ones
# gunicorn reads for the scheme from trusted proxies): present means "gunicorn's job".
PASS_ON = frozenset({b"content-length", b"transfer-encoding", b"upgrade", b"expect", b"http2-settings",
                     b"x-forwarded-proto", b"x-forwarded-protocol", b"x-forwarded-ssl", b"x-forwarded-scheme",
                     b"forwarded", b"front-end-https"})
REASONS = {200: b"OK", 304: b"Not Modified"}


class _Sent:
    """What the access logger reads of a response."""
    __slots__ = ("status", "sent", "headers")

    def __init__(self, status, sent):
        self.status, self.sent, self.headers = status, sent, ()


_date = [0, b""]


def _date_line():
    now = int(time.time())
    if now != _date[0]:
        _date[0], _date[1] = now, f"Date: {formatdate(now, usegmt=True)}\r\n".encode("latin-1")
    return _date[1]


class HotConnection(asyncio.Protocol):
    def __init__(self, worker, front):
        self.worker, self.front = worker, front
        self.keepalive = max(1, worker.cfg.keepalive)
        self.transport = None
        self.buffer = b""
        self.handed = False
        self.paused = False
        self.deadline = 0.0
        self.timer = None

    # -- connection ---------------------------------------------------------------------------

    def connection_made(self, transport):
        self.transport = transport
        self.worker.nr_conns += 1
        ssl_object = transport.get_extra_info("ssl_object")
        alpn = ssl_object.selected_alpn_protocol() if ssl_object is not None else None
        self.scheme = "https" if ssl_object is not None else "http"
        self.peer = transport.get_extra_info("peername")
        self.sockname = transport.get_extra_info("sockname")
        if alpn == "h2" or not self.front.plain_http1:
            self._hand_over()  # HTTP/2, uWSGI, PROXY protocol, h2c sniffing: gunicorn's
            return
        self.deadline = time.monotonic() + self.keepalive
        self.timer = self.worker.loop.call_later(TICK_S, self._tick)

    def connection_lost(self, exc):
        if not self.handed:
            self.worker.nr_conns -= 1
            if self.timer is not None:
                self.timer.cancel()

    def pause_writing(self):
        self.paused = True
        self.transport.pause_reading()

    def resume_writing(self):
        self.paused = False
        self.transport.resume_reading()
        self._serve()

    def _tick(self):
        """Close when idle past keep-alive (or a head arriving too slowly), or on shutdown."""
        self.timer = None
        if self.handed or self.transport.is_closing():
            return
        if time.monotonic() >= self.deadline or (not self.worker.alive and not self.buffer):
            self.transport.close()
            return
        self.timer = self.worker.loop.call_later(TICK_S, self._tick)

    def _hand_over(self):
        """gunicorn's ASGIProtocol takes the connection and whatever is still unanswered."""
        self.handed = True
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        self.worker.nr_conns -= 1  # the new protocol counts it again
        protocol = ASGIProtocol(self.worker)
        self.transport.set_protocol(protocol)
        protocol.connection_made(self.transport)
        if self.paused:
            protocol.pause_writing()
        buffered, self.buffer = self.buffer, b""
        if buffered:
            protocol.data_received(buffered)

    # -- requests -----------------------------------------------------------------------------

    def data_received(self, data):
        self.buffer += data
        self._serve()

    def _serve(self):
        while self.buffer and not self.paused and not self.handed:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(self.buffer) > MAX_HEAD or b"\n" in self.buffer.replace(b"\r\n", b""):
                    self._hand_over()  # too long, or bare-LF line ends: gunicorn answers those
                return  # wait for the rest of the head
            started = time.monotonic()
            answer = self._answer(self.buffer[:end])
            if answer is None:
                self._hand_over()
                return
            self.buffer = self.buffer[end + 4:]
            response, status, sent, close, log_fields = answer
            self.transport.write(response)
            self.deadline = time.monotonic() + self.keepalive
            self._log(status, sent, log_fields, started)
            if close or not self.worker.alive:
                self.transport.close()
                return

    def _answer(self, head):
        """(response bytes, status, body length, close?, log fields) or None: not ours."""
        if len(head) > MAX_HEAD:
            return None
        lines = head.split(b"\r\n")
        request_line = lines[0]
        parts = request_line.split(b" ")
        if len(parts) != 3 or parts[2] != b"HTTP/1.1" or parts[0] not in (b"GET", b"HEAD"):
            return None
        method, target = parts[0], parts[1]
        path, _, query = target.partition(b"?")
        if not HOT_PATH.match(path) or not QUERY.match(query) or len(lines) - 1 > MAX_FIELDS:
            return None
        headers, host, close = [], 0, False
        for line in lines[1:]:
            name, colon, value = line.partition(b":")
            if not colon or not FIELD_NAME.match(name) or BAD_VALUE.search(value):
                return None  # also rejects obs-fold (a line starting with whitespace)
            name = name.lower()
            if name in PASS_ON:
                return None
            value = value.strip(b" \t")
            if name == b"host":
                host += 1
            elif name == b"connection":
                tokens = {t.strip().lower() for t in value.split(b",")}
                if b"upgrade" in tokens or b"http2-settings" in tokens:
                    return None
                close = b"close" in tokens
            headers.append((name, value))
        if host != 1:
            return None
        scope = {"type": "http", "method": method.decode(), "path": path.decode(), "query_string": query,
                 "headers": headers, "client": self.peer and self.peer[:2], "server": self.sockname and self.sockname[:2],
                 "scheme": self.scheme, "root_path": self.front.root_path}
        reply = self.front.app.hot_reply(scope)
        if reply is None:
            return None  # errors are rendered by Flask, behind gunicorn's protocol
        status, raw, body, block = reply
        out = [b"HTTP/1.1 %d %s\r\nServer: gunicorn/asgi\r\n" % (status, REASONS.get(status, b"")), _date_line(), block]
        if close:
            out.append(b"Connection: close\r\n")
        out.append(b"\r\n")
        sent = 0
        if method == b"GET" and status == 200:
            out.append(body)
            sent = len(body)
        return b"".join(out), status, sent, close, (method, target)

    def _log(self, status, sent, log_fields, started):
        log = self.worker.log
        if not log.access_log_enabled:
            return
        method, target = log_fields
        elapsed = datetime.timedelta(seconds=time.monotonic() - started)
        environ = {"REQUEST_METHOD": method.decode(), "RAW_URI": target.decode("latin-1"),
                   "SERVER_PROTOCOL": "HTTP/1.1"}
        log.access(_Sent(status, sent), None, environ, elapsed)


class HotWorker(ASGIWorker):
    """gunicorn's asyncio worker whose connections start on HotConnection. gunicorn builds each
    connection's protocol from the name ASGIProtocol in its worker module: in this worker
    process that name is pointed at our factory (gunicorn is pinned below 28 for this)."""

    def run(self):
        if hasattr(self.asgi, "hot_reply"):  # not on gunicorn's error app after a failed reload
            gasgi.ASGIProtocol = HotFront(self, self.asgi)
        super().run()


class HotFront:
    """What every HotConnection of a worker shares."""

    def __init__(self, worker, app):
        cfg = worker.cfg
        self.worker, self.app = worker, app
        self.root_path = getattr(cfg, "root_path", "") or ""
        from gunicorn.http2 import negotiation
        self.plain_http1 = (getattr(cfg, "protocol", "http") == "http" and getattr(cfg, "proxy_protocol", "off") == "off"
                            and getattr(cfg, "http2_cleartext", "off") in ("off", None, "")
                            and not negotiation.prior_knowledge_allowed(cfg, ("127.0.0.1", 0)))

    def __call__(self, worker=None):
        return HotConnection(self.worker, self)
