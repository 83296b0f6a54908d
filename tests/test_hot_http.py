"""server/web/hot_http.py on the wire, against real `vitrina serve`: raw sockets, so pipelining,
keep-alive, hand-over to gunicorn's protocol mid-connection and malformed or ambiguous requests
are exercised exactly as a client would send them."""
import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.request

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from server import create_app
from server.store import get_store
from server.web.auth import hash_key, new_api_key
from tests.conftest import DEMO_CONFIG
from tests.servers import REPO, free_port, gunicorn_server, wait_for

SECRET = "test-secret-key-0123456789"
TAG = "/v1/sites/shop/tag.js"
BUNDLE = "/v1/sites/shop/bundle.json"


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    return {"VITRINA_DATABASE": str(tmp_path_factory.mktemp("hot") / "hot.sqlite3"), "VITRINA_SECRET_KEY": SECRET}


@pytest.fixture(scope="module")
def stock(env, server):
    """The same app and store under gunicorn's stock asyncio worker (no lean front): the
    reference for what gunicorn answers. Yields (host, port)."""
    port = free_port()
    code = f"from server.web.gunicorn_app import run; run('127.0.0.1', {port}, 1, worker_class='asgi', accesslog=None)"
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=REPO, env={**os.environ, **env},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1).status == 200,
                 what="stock gunicorn")
        yield "127.0.0.1", port
    finally:
        proc.terminate()
        proc.wait(15)


@pytest.fixture(scope="module")
def server(env):
    """One published site under `vitrina serve`; yields (host, port, bundle.json body)."""
    key = new_api_key()
    app = create_app(env=env)
    with app.app_context():
        get_store().create_site("shop", hash_key(key))
    client = app.test_client()
    auth = {"Authorization": f"Bearer {key}"}
    assert client.put("/api/v1/sites/shop/config", json=json.loads(DEMO_CONFIG.read_text()), headers=auth).status_code == 200
    assert client.post("/api/v1/sites/shop/publish", headers=auth).status_code == 201
    bundle = client.get(BUNDLE).data
    with gunicorn_server(env, workers=1) as url:
        host, port = url[len("http://"):].split(":")
        yield host, int(port), bundle


def _connect(server):
    sock = socket.create_connection(server[:2], timeout=10)
    return sock


def _read_responses(sock, count, head_only=()):
    """`count` responses off one connection: [(status, headers, body)]; the ones at the
    indexes in `head_only` answer HEAD requests (no body whatever Content-Length says)."""
    data, out = b"", []
    while len(out) < count:
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(65536)
            if not chunk:
                return out
            data += chunk
        head, _, data = data.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
        size = 0 if len(out) in head_only else int(headers.get("content-length", 0))
        if headers.get("transfer-encoding") == "chunked":
            body = b""
            while True:
                while b"\r\n" not in data:
                    data += sock.recv(65536)
                line, _, data = data.partition(b"\r\n")
                n = int(line, 16)
                while len(data) < n + 2:
                    data += sock.recv(65536)
                body, data = body + data[:n], data[n + 2:]
                if n == 0:
                    break
        else:
            while len(data) < size:
                data += sock.recv(65536)
            body, data = data[:size], data[size:]
        out.append((status, headers, body))
    return out


def _get(path, extra=""):
    return f"GET {path} HTTP/1.1\r\nHost: shop.test\r\n{extra}\r\n".encode()


def test_pipelined_hot_requests_are_answered_in_order(server):
    with _connect(server) as sock:
        sock.sendall(_get(BUNDLE) + _get("/sdk/vitrina.min.js") + _get(BUNDLE, "Accept-Encoding: gzip\r\n")
                     + f"HEAD {BUNDLE} HTTP/1.1\r\nHost: shop.test\r\n\r\n".encode() + _get(BUNDLE))
        replies = _read_responses(sock, 5, head_only=(3,))
    statuses = [r[0] for r in replies]
    assert statuses == [200, 200, 200, 200, 200]
    assert replies[0][2] == server[2] and replies[4][2] == server[2]
    assert replies[1][1]["content-type"].startswith("application/javascript")
    assert replies[2][1]["content-encoding"] == "gzip"
    assert replies[3][2] == b"" and int(replies[3][1]["content-length"]) == len(server[2])


def test_a_connection_is_handed_to_gunicorn_mid_way_and_stays_correct(server):
    body = b'{"visitor_id":"not valid"}'
    post = (f"POST /v1/sites/shop/collect HTTP/1.1\r\nHost: shop.test\r\nContent-Type: text/plain\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode() + body
    with _connect(server) as sock:
        sock.sendall(_get(BUNDLE) + post + _get(BUNDLE) + _get("/healthz"))
        replies = _read_responses(sock, 4)
    assert [r[0] for r in replies] == [200, 400, 200, 200]
    assert json.loads(replies[1][2])["error"] == "invalid_batch"
    assert replies[2][2] == server[2]
    assert json.loads(replies[3][2])["status"] == "ok"


def test_a_body_on_a_hot_get_is_never_read_as_a_request(server):
    """Content-Length on a GET goes to gunicorn, which frames the body: the bytes inside it,
    however much they look like a request, are not answered as one."""
    smuggled = _get("/sdk/vitrina.min.js")
    with _connect(server) as sock:
        sock.sendall(f"GET {BUNDLE} HTTP/1.1\r\nHost: shop.test\r\nContent-Length: {len(smuggled)}\r\n\r\n".encode()
                     + smuggled + _get("/healthz"))
        replies = _read_responses(sock, 2)
    assert replies[0][0] == 200 and replies[0][2] == server[2]
    assert json.loads(replies[1][2])["status"] == "ok"  # the next real request, not the smuggled one


@pytest.mark.parametrize("raw", [
    b"GET /v1/sites/shop/bundle.json HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    b"GET /v1/sites/shop/bundle.json HTTP/1.1\r\nHost: a\r\nX-Folded: one\r\n two\r\n\r\n",
    b"GET /v1/sites/shop/bundle.json HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
    b"GET /v1/sites/shop/bundle.json HTTP/1.1\r\n\r\n",
    b"GET /v1/sites/shop/bundle.json HTTP/1.1\nHost: a\n\n",
    b"GET /v1/sites/shop/bundle.json  HTTP/1.1\r\nHost: a\r\n\r\n",
    b"GET /v1/sites/shop/bundle.json HTTP/1.1\r\nHost: a\r\nBad Name: x\r\n\r\n",
    b"GET /v1/sites/shop/bundle.json HTTP/1.1\r\nHost: a\r\nX: a\x00b\r\n\r\n",
    b"GET /v1/sites/shop/bundle.json HTTP/1.1\r\nHost: a\r\nX_Under: 1\r\n\r\n",
    b"GET /v1/sites/shop/bundle.json HTTP/1.1\r\nHost: a\r\nX-Forwarded-Proto: https\r\n\r\n",
    b"GET /v1/sites/shop/bundle.json HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\n\r\n",
    b"GET /v1/sites/shop/bundle.json HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
    b"\r\nGET /v1/sites/shop/bundle.json HTTP/1.1\r\nHost: a\r\n\r\n",
    b"GET /v1/sites/shop/bundle.json?v=%zz HTTP/1.1\r\nHost: a\r\n\r\n",
    b"GET /v1/sites/shop/bundle.json HTTP/1.1\r\nHost: a\r\n" + b"X-Long: " + b"y" * 9000 + b"\r\n\r\n",
])
def test_what_the_lean_front_does_not_understand_gets_stock_gunicorns_answer(server, stock, raw):
    """Byte for byte the same request to the lean front and to gunicorn's stock worker: the
    same statuses and bodies (whatever gunicorn makes of it: refused, framed, or served)."""
    answers = []
    for address in (server[:2], stock):
        with socket.create_connection(address, timeout=3) as sock:
            sock.sendall(raw)
            try:
                answers.append([(status, body) for status, _, body in _read_responses(sock, 1)])
            except (socket.timeout, ConnectionResetError):
                answers.append("no answer")
    assert answers[0] == answers[1] and answers[0], answers


def test_other_versions_and_methods_are_handed_over(server):
    with _connect(server) as sock:
        sock.sendall(f"GET {BUNDLE} HTTP/1.0\r\nHost: a\r\n\r\n".encode())
        (status, headers, body), = _read_responses(sock, 1)
        assert status == 200 and body == server[2]
    with _connect(server) as sock:
        sock.sendall(f"POST {BUNDLE} HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n".encode())
        assert _read_responses(sock, 1)[0][0] == 405
    with _connect(server) as sock:  # percent-encoded, unknown site, error replies: Flask's answers
        sock.sendall(_get("/v1/sites/sh%6fp/bundle.json") + _get("/v1/sites/nope/tag.js"))
        replies = _read_responses(sock, 2)
        assert replies[0][0] == 200 and replies[0][2] == server[2]
        assert replies[1][0] == 404 and json.loads(replies[1][2])["error"] == "site_not_found"


def test_connection_close_is_honoured(server):
    with _connect(server) as sock:
        sock.sendall(_get(BUNDLE, "Connection: close\r\n"))
        (status, headers, body), = _read_responses(sock, 1)
        assert status == 200 and headers["connection"] == "close"
        sock.settimeout(5)
        assert sock.recv(10) == b""  # closed by the server


def test_a_slow_or_idle_client_is_closed_after_keep_alive(server):
    with _connect(server) as sock:
        sock.sendall(b"GET /v1/sites/shop/bundle.json HTTP/1.1\r\nHost: a\r\n")  # head never finished
        sock.settimeout(15)
        started = time.monotonic()
        assert sock.recv(10) == b""
        assert time.monotonic() - started < 8  # keep-alive is 5 s, checked every second


def test_revalidation_and_gzip_match_the_flask_view(server):
    with _connect(server) as sock:
        sock.sendall(_get(TAG, "User-Agent: test\r\nAccept-Encoding: gzip\r\n"))
        (status, headers, body), = _read_responses(sock, 1)
        assert status == 200 and headers["content-encoding"] == "gzip" and re.match(r'^"[0-9a-f-]+"$', headers["etag"])
        sock.sendall(_get(TAG, f"User-Agent: test\r\nAccept-Encoding: gzip\r\nIf-None-Match: {headers['etag']}\r\n"))
        (status, headers2, body), = _read_responses(sock, 1)
        assert (status, body, headers2["etag"]) == (304, b"", headers["etag"])
        assert "content-length" not in headers2


# --- property: the lean front never answers differently from gunicorn's stock worker -----------

_PATHS = [BUNDLE, "/sdk/vitrina.min.js", "/sdk/vitrina.min.js?v=0123", BUNDLE + "?x=1&y", "/v1/sites/SHOP/bundle.json",
          "/v1/sites/shop//bundle.json", "//v1/sites/shop/bundle.json", BUNDLE + "#frag", "/v1/sites/sh%6fp/bundle.json",
          "http://shop.test" + BUNDLE, "*", "/v1/sites/shop/bundle.json/", "/v1/sites/-/bundle.json", "/healthz"]
_HEADER_LINES = ["Accept-Encoding: gzip", "Accept-Encoding: br, gzip;q=0.5", "If-None-Match: *", "If-None-Match: W/\"x\"",
                 "Connection: keep-alive", "Connection: close, TE", "User-Agent: test", "User-Agent:", "X-Empty:",
                 "X-Tab:\tvalue\t", "X-High: caf\xe9", "X-Ctl: a\x01b", "X-Del: a\x7fb", "Content-Length: 0",
                 "Content-Length: 00",
                 "Host: other.test", "host: shop.test", "Host:", "Host: a b", "Host: [::1]:80", "Host: shop.test:80", "X_Under: 1", "X-Forwarded-For: 198.51.100.7",
                 "X-Forwarded-Proto: https", "Forwarded: for=1.2.3.4", "Upgrade: h2c", "Expect: 100-continue",
                 "!#$%&'*+.^`|~: token-name", "X Space: 1", ": no-name", "NoColon", " X-Leading-Space: 1",
                 "X-Trailing-Space : 1", "X-Long: " + "v" * 300]


def _wire(method, path, version, lines, host, eol):
    head = [f"{method} {path} {version}"] + (["Host: shop.test"] if host else []) + lines
    return (eol.join(head) + eol + eol).encode("latin-1")


def _answer(address, raw):
    with socket.create_connection(address, timeout=3) as sock:
        sock.sendall(raw)
        own = f":{address[1]}".encode()  # without a Host header, URLs in bodies carry each server's port
        try:
            return [(status, body.replace(own, b":PORT"))
                    for status, _, body in _read_responses(sock, 1, head_only=(0,) if raw.startswith(b"HEAD") else ())]
        except (socket.timeout, ConnectionResetError):
            return "no answer"


@settings(max_examples=120, deadline=None)
@given(method=st.sampled_from(["GET", "HEAD", "POST", "get", "OPTIONS"]), path=st.sampled_from(_PATHS),
       version=st.sampled_from(["HTTP/1.1", "HTTP/1.1", "HTTP/1.0", "HTTP/2.0", "http/1.1"]),
       lines=st.lists(st.sampled_from(_HEADER_LINES), max_size=5), host=st.booleans() | st.just(True),
       eol=st.sampled_from(["\r\n", "\r\n", "\n"]))
def test_lean_front_and_stock_gunicorn_answer_alike(server, stock, method, path, version, lines, host, eol):
    raw = _wire(method, path, version, lines, host, eol)
    assert _answer(server[:2], raw) == _answer(stock, raw), raw
