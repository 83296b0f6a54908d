"""`vitrina serve` on the wire, as clients see it: raw sockets against the real server (gunicorn
running uvicorn workers), so pipelining, keep-alive, request framing, malformed and hostile
requests, slow and aborted uploads are exercised exactly as they arrive. No module of ours
parses HTTP: these tests hold the behaviour, whoever parses."""
import json
import re
import socket
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from server import create_app
from server.store import get_store
from server.web.auth import hash_key, new_api_key
from tests.conftest import DEMO_CONFIG
from tests.servers import gunicorn_server

SECRET = "test-secret-key-0123456789"
TAG = "/v1/sites/shop/tag.js"
BUNDLE = "/v1/sites/shop/bundle.json"
STATUS_LINE = re.compile(rb"HTTP/1\.1 (\d{3}) [^\r\n]*\Z")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """One published site under `vitrina serve` with one worker (so one pool of Flask threads);
    yields (host, port, bundle.json body, path of the server's log)."""
    work = tmp_path_factory.mktemp("http")
    env = {"VITRINA_DATABASE": str(work / "http.sqlite3"), "VITRINA_SECRET_KEY": SECRET}
    key = new_api_key()
    app = create_app(env=env)
    with app.app_context():
        get_store().create_site("shop", hash_key(key))
    client = app.test_client()
    auth = {"Authorization": f"Bearer {key}"}
    assert client.put("/api/v1/sites/shop/config", json=json.loads(DEMO_CONFIG.read_text()), headers=auth).status_code == 200
    assert client.post("/api/v1/sites/shop/publish", headers=auth).status_code == 201
    bundle = client.get(BUNDLE).data
    log = work / "server.log"
    with gunicorn_server(env, workers=1, log_path=log) as url:
        host, port = url[len("http://"):].split(":")
        yield host, int(port), bundle, log
    text = log.read_text()
    assert "Traceback" not in text and "Exception in ASGI application" not in text, text[-3000:]


def _connect(server, timeout=10):
    return socket.create_connection(server[:2], timeout=timeout)


def _read_responses(sock, count, head_only=()):
    """`count` responses off one connection: [(status, headers, body)], fewer if the server
    closes first. Each must be well formed: a status line, header lines, and a body framed by
    Content-Length or chunked encoding. The ones at the indexes in `head_only` answer HEAD (but
    a 400 says the server could not read the request, so it answers with a body)."""
    data, out = b"", []
    while len(out) < count:
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(65536)
            if not chunk:
                assert not data, f"the connection closed in the middle of a response: {data[:200]!r}"
                return out
            data += chunk
        head, _, data = data.partition(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        status_line = STATUS_LINE.match(lines[0])
        assert status_line, lines[0]
        status = int(status_line.group(1))
        headers = {}
        for line in lines[1:]:
            name, colon, value = line.partition(b":")
            assert colon and name and name == name.strip(), line
            headers[name.decode().lower()] = value.strip().decode("latin-1")
        if status == 100:
            continue  # an interim answer to Expect: 100-continue
        if headers.get("transfer-encoding") == "chunked":
            body = b""
            while True:
                while b"\r\n" not in data:
                    data += sock.recv(65536)
                size_line, _, data = data.partition(b"\r\n")
                size = int(size_line, 16)
                while len(data) < size + 2:
                    data += sock.recv(65536)
                body, data = body + data[:size], data[size + 2:]
                if size == 0:
                    break
        else:
            no_body = (len(out) in head_only and status != 400) or status in (204, 304)
            size = 0 if no_body else int(headers["content-length"])
            while len(data) < size:
                chunk = sock.recv(65536)
                assert chunk, "the connection closed before the body announced by Content-Length"
                data += chunk
            body, data = data[:size], data[size:]
        out.append((status, headers, body))
    return out


def _get(path, extra=""):
    return f"GET {path} HTTP/1.1\r\nHost: shop.test\r\n{extra}\r\n".encode()


def _post_collect(body, extra=""):
    return (f"POST /v1/sites/shop/collect HTTP/1.1\r\nHost: shop.test\r\nContent-Type: text/plain\r\n"
            f"Content-Length: {len(body)}\r\n{extra}\r\n").encode() + body


def test_pipelined_requests_are_answered_in_order(server):
    with _connect(server) as sock:
        sock.sendall(_get(BUNDLE) + _post_collect(b'{"visitor_id":"not valid"}') + _get("/sdk/vitrina.min.js")
                     + f"HEAD {BUNDLE} HTTP/1.1\r\nHost: shop.test\r\n\r\n".encode() + _get("/healthz")
                     + _get(BUNDLE, "Accept-Encoding: gzip\r\n"))
        replies = _read_responses(sock, 6, head_only=(3,))
    assert [r[0] for r in replies] == [200, 400, 200, 200, 200, 200]
    assert replies[0][2] == server[2]
    assert json.loads(replies[1][2])["error"] == "invalid_batch"
    assert replies[2][1]["content-type"].startswith("application/javascript")
    assert replies[3][2] == b"" and int(replies[3][1]["content-length"]) == len(server[2])
    assert json.loads(replies[4][2])["status"] == "ok"
    assert replies[5][1]["content-encoding"] == "gzip"


def test_a_body_on_a_get_is_framed_never_read_as_a_request(server):
    smuggled = _get("/sdk/vitrina.min.js")
    with _connect(server) as sock:
        sock.sendall(f"GET {BUNDLE} HTTP/1.1\r\nHost: shop.test\r\nContent-Length: {len(smuggled)}\r\n\r\n".encode()
                     + smuggled + _get("/healthz"))
        replies = _read_responses(sock, 2)
    assert replies[0][0] == 200 and replies[0][2] == server[2]
    assert json.loads(replies[1][2])["status"] == "ok"  # the next real request, not the smuggled one


@pytest.mark.parametrize("framing", [
    "Content-Length: 5\r\nTransfer-Encoding: chunked",
    "Content-Length: 5\r\nContent-Length: 6",
    "Transfer-Encoding: chunked, identity",
])
def test_ambiguous_framing_is_refused_and_nothing_behind_it_is_answered(server, framing):
    smuggled = _get("/healthz")
    with _connect(server) as sock:
        sock.sendall(f"POST /v1/sites/shop/collect HTTP/1.1\r\nHost: a\r\n{framing}\r\n\r\n0\r\n\r\n".encode() + smuggled)
        replies = _read_responses(sock, 2)
    assert len(replies) == 1 and replies[0][0] == 400, replies


@pytest.mark.parametrize("raw", [
    b"GET /healthz HTTP/1.1\r\nHost: a\r\nX-Folded: one\r\n two\r\n\r\n",
    b"GET /healthz HTTP/1.1\nHost: a\n\n",
    b"GET /healthz HTTP/1.1\r\nHost: a\r\nBad Name: x\r\n\r\n",
    b"GET /healthz HTTP/1.1\r\nHost: a\r\nX: a\x00b\r\n\r\n",
    b"GET /v1/sites/shop/bundle.json?\xe9 HTTP/1.1\r\nHost: a\r\n\r\n",
    b"GET /v1/sites/sh\xe9p/tag.js HTTP/1.1\r\nHost: a\r\n\r\n",
    b"get /healthz HTTP/1.1\r\nHost: a\r\n\r\n",
    b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
    b"garbage\r\n\r\n",
])
def test_malformed_requests_get_a_client_error(server, raw):
    with _connect(server) as sock:
        sock.sendall(raw)
        replies = _read_responses(sock, 1)
    assert len(replies) == 1 and 400 <= replies[0][0] < 500, replies


def test_head_answers_the_get_headers_without_a_body(server):
    for path in (TAG, BUNDLE, "/sdk/vitrina.min.js", "/healthz"):
        with _connect(server) as sock:
            sock.sendall(_get(path) + f"HEAD {path} HTTP/1.1\r\nHost: shop.test\r\n\r\n".encode() + _get("/healthz"))
            (get_status, get_headers, body), (status, headers, empty), (after, _, _) = _read_responses(
                sock, 3, head_only=(1,))
        assert (get_status, status, empty, after) == (200, 200, b"", 200), path
        assert headers.get("etag") == get_headers.get("etag") and int(headers["content-length"]) == len(body)


def test_connection_close_is_honoured(server):
    with _connect(server) as sock:
        sock.sendall(_get(BUNDLE, "Connection: close\r\n"))
        (status, headers, body), = _read_responses(sock, 1)
        assert status == 200 and headers["connection"] == "close"
        assert sock.recv(10) == b""  # closed by the server


def test_an_idle_keep_alive_connection_is_closed(server):
    with _connect(server, timeout=15) as sock:
        sock.sendall(_get(BUNDLE))
        assert _read_responses(sock, 1)[0][0] == 200
        started = time.monotonic()
        assert sock.recv(10) == b""
        assert time.monotonic() - started < 8  # keep-alive is 5 s


def test_slow_uploads_hold_no_flask_thread_and_aborted_ones_are_no_server_error(server):
    """More stalled uploads than the worker has Flask threads: other requests still answer at
    once (bodies are read on the event loop, not in Flask's threads). Dropping them is logged
    as the client's doing (499), not as a server error."""
    stalled = []
    try:
        for _ in range(12):
            sock = _connect(server)
            sock.sendall(_post_collect(b"x" * 1000)[:-990])  # the head and 10 bytes of the body
            stalled.append(sock)
        time.sleep(0.3)
        with _connect(server, timeout=5) as sock:
            sock.sendall(_get("/healthz") + _post_collect(b'{"visitor_id":"not valid"}'))
            assert [r[0] for r in _read_responses(sock, 2)] == [200, 400]
    finally:
        for sock in stalled:
            sock.close()
    deadline = time.monotonic() + 5
    while server[3].read_text().count('"POST /v1/sites/shop/collect HTTP/1.1" 499') < 12 and time.monotonic() < deadline:
        time.sleep(0.1)
    text = server[3].read_text()
    assert text.count('"POST /v1/sites/shop/collect HTTP/1.1" 499') == 12
    assert '"POST /v1/sites/shop/collect HTTP/1.1" 500' not in text


def test_a_body_declared_too_large_is_refused_before_it_is_sent(server):
    with _connect(server) as sock:
        sock.sendall(_post_collect(b"x" * 50_000_000)[:-(50_000_000 - 1)])  # the head and 1 byte of 50 MB
        (status, _, body), = _read_responses(sock, 1)
    assert status == 413 and json.loads(body)["error"] == "payload_too_large"


# --- property: whatever the request head, a well-formed answer and never a server error ---------

_METHODS = ["GET", "HEAD", "POST", "PUT", "OPTIONS", "DELETE", "get", "BREW", ""]
_PATHS = [TAG, BUNDLE, "/sdk/vitrina.min.js", "/sdk/vitrina.min.js?v=0123", BUNDLE + "?x=1&y", "/v1/sites/SHOP/bundle.json",
          "/v1/sites/shop//bundle.json", "//v1/sites/shop/bundle.json", BUNDLE + "#frag", "/v1/sites/sh%6fp/bundle.json",
          "http://shop.test" + BUNDLE, "*", "/v1/sites/shop/bundle.json/", "/v1/sites/-/tag.js", "/v1/sites/nope/tag.js",
          "/healthz", "/v1/context", "/v1/sites/shop/collect", "/api/v1/sites/shop/config", "/%00", "/a b", ""]
_HEADER_LINES = ["Accept-Encoding: gzip", "Accept-Encoding: br, gzip;q=0.5", "If-None-Match: *", 'If-None-Match: W/"x"',
                 "Connection: keep-alive", "Connection: close, TE", "User-Agent: test", "User-Agent:", "X-Empty:",
                 "X-Tab:\tvalue\t", "X-High: caf\xe9", "X-Ctl: a\x01b", "X-Del: a\x7fb", "Content-Length: 0",
                 "Content-Length: 00", "Content-Length: -1", "Content-Length: 99999999999999999999", "Content-Length: 3",
                 "Transfer-Encoding: chunked", "Transfer-Encoding: gzip", "Host: other.test", "host: shop.test", "Host:",
                 "Host: a b", "Host: [::1]:80", "Host: shop.test:80", "Host: shop.test:99999", "X_Under: 1",
                 "X-Forwarded-For: 198.51.100.7", "X-Forwarded-For: not-an-ip, ::1", "X-Forwarded-Proto: javascript",
                 "X-Forwarded-Host: evil.test", "Forwarded: for=1.2.3.4", "Upgrade: h2c", "Upgrade: websocket",
                 "Connection: Upgrade", "Expect: 100-continue", "Expect: nonsense", "Content-Type: application/json",
                 "Authorization: Bearer x", "Authorization: Basic !!", "Origin: null", "Cookie: a=b; c",
                 "!#$%&'*+.^`|~: token-name", "X Space: 1", ": no-name", "NoColon", " X-Leading-Space: 1",
                 "X-Trailing-Space : 1", "X-Long: " + "v" * 300]


def _wire(method, path, version, lines, host, eol, body):
    head = [f"{method} {path} {version}"] + (["Host: shop.test"] if host else []) + lines
    return (eol.join(head) + eol + eol).encode("latin-1") + body


@settings(max_examples=150, deadline=None)
@given(method=st.sampled_from(_METHODS), path=st.sampled_from(_PATHS),
       version=st.sampled_from(["HTTP/1.1", "HTTP/1.1", "HTTP/1.0", "HTTP/2.0", "http/1.1", "HTTP/1.1 x"]),
       lines=st.lists(st.sampled_from(_HEADER_LINES), max_size=6), host=st.booleans() | st.just(True),
       eol=st.sampled_from(["\r\n", "\r\n", "\n"]), body=st.sampled_from([b"", b"abc", b"0\r\n\r\n", b'{"a":1}']))
def test_any_request_head_gets_a_well_formed_answer_and_never_a_server_error(server, method, path, version, lines,
                                                                              host, eol, body):
    raw = _wire(method, path, version, lines, host, eol, body)
    with _connect(server, timeout=5) as sock:
        sock.sendall(raw + _get("/healthz", "Connection: close\r\n"))
        try:
            replies = _read_responses(sock, 2, head_only=(0,) if method == "HEAD" else ())
        except (socket.timeout, ConnectionResetError):
            replies = None  # waiting for a body it announced, or reset: no answer, and no error either
    if replies is not None:
        assert replies, raw  # a request the server read is answered
        assert all(status < 500 for status, _, _ in replies), (raw, replies)
