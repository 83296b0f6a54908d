"""The ASGI front under real gunicorn (`vitrina serve`): hot GETs answered on the event loop
agree byte for byte with the Flask views, see a new publish at once on every worker (SQLite and
Redis), keep errors in the API's shape, bound request bodies, log no visitor address, and a
server told to stop while its workers boot stops."""
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from http.client import HTTPConnection

import pytest

from server import create_app
from server.configs.compiler import compile_bundle
from server.configs.latest import MAX_AGE_S
from server.configs.signing import canonical_json, sign
from server.store import get_store
from server.web.auth import hash_key, new_api_key
from tests.conftest import DEMO_CONFIG
from tests.servers import REPO, free_port, gunicorn_server, redis_server, wait_for

SECRET = "test-secret-key-0123456789"
UA = "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148"


def _site(env, site="shop"):
    key = new_api_key()
    app = create_app(env=env)
    with app.app_context():
        get_store().create_site(site, hash_key(key))
    app.extensions["vitrina_store"].close()
    return {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}


def _request(url, method="GET", body=None, headers=None):
    """(status, lower-case headers, body) on a fresh connection, 304s and errors included."""
    host, _, path = url[len("http://"):].partition("/")
    conn = HTTPConnection(*host.split(":"), timeout=10)
    try:
        conn.request(method, "/" + path, body=body, headers=headers or {})
        r = conn.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        conn.close()


def _publish(url, auth, config):
    assert _request(f"{url}/api/v1/sites/shop/config", "PUT", json.dumps(config), auth)[0] == 200
    status, _, body = _request(f"{url}/api/v1/sites/shop/publish", "POST", b"", auth)
    assert status == 201, body
    return json.loads(body)["version"]


def _served_versions(url):
    """The versions bundle.json and tag.js serve, each its own request (maybe to another worker)."""
    status, _, body = _request(f"{url}/v1/sites/shop/bundle.json")
    assert status == 200, body
    status, _, tag = _request(f"{url}/v1/sites/shop/tag.js", headers={"User-Agent": UA})
    assert status == 200, tag
    return json.loads(body)["bundle"]["version"], int(re.search(rb'"site":"shop","version":(\d+)[,}]', tag)[1])


def _served_version(url):
    """The version bundle.json and tag.js serve (the same one, or an AssertionError)."""
    versions = _served_versions(url)
    assert versions[0] == versions[1], versions
    return versions[0]


@pytest.fixture
def env(tmp_path):
    return {"VITRINA_DATABASE": str(tmp_path / "front.sqlite3"), "VITRINA_SECRET_KEY": SECRET}


def test_hot_replies_equal_the_flask_views(env):
    auth = _site(env)
    config = json.loads(DEMO_CONFIG.read_text())
    flask_client = create_app(env=env).test_client()
    with gunicorn_server(env) as url:
        _publish(url, auth, config)
        for path in ("/v1/sites/shop/tag.js", "/v1/sites/shop/bundle.json", "/sdk/vitrina.min.js"):
            for encoding in ("gzip", "identity"):
                headers = {"User-Agent": UA, "Accept-Encoding": encoding, "Host": url[len("http://"):]}
                status, got, body = _request(url + path, headers=headers)
                want = flask_client.get(path, headers=headers, environ_base={"REMOTE_ADDR": "127.0.0.1"})
                assert (status, body) == (200, want.data), path
                for name in ("etag", "cache-control", "vary", "content-type", "access-control-allow-origin"):
                    assert got.get(name) == want.headers.get(name), (path, name)
                assert got.get("content-encoding") == want.headers.get("Content-Encoding")
                assert int(got["content-length"]) == len(body)
                # a revalidation answers 304 without a body; HEAD gives the headers only
                status, _, body = _request(url + path, headers={**headers, "If-None-Match": got["etag"]})
                assert (status, body) == (304, b"")
                status, head, body = _request(url + path, "HEAD", headers=headers)
                assert (status, body, head.get("etag")) == (200, b"", got["etag"])
        # context.js, the visitor's own: no ETag, private.
        headers = {"User-Agent": UA, "Host": url[len("http://"):]}
        status, got, body = _request(url + "/v1/sites/shop/context.js", headers=headers)
        want = flask_client.get("/v1/sites/shop/context.js", headers=headers, environ_base={"REMOTE_ADDR": "127.0.0.1"})
        assert (status, body) == (200, want.data) and b'"os":"ios"' in body
        for name in ("cache-control", "content-type", "x-content-type-options"):
            assert got.get(name) == want.headers.get(name), name


def _publish_and_warm(url, auth, config):
    """Publish, then warm every worker's caches on that version (many connections, so every worker)."""
    version = _publish(url, auth, config)
    for _ in range(20):
        assert _served_version(url) == version
    return version


def _new_version_everywhere(url, auth, config, before):
    """Publish; every request after it (several connections, so several workers) serves the new version."""
    published = _publish(url, auth, config)  # the same config again still makes a new version
    assert published == before + 1
    seen = [_served_version(url) for _ in range(30)]
    return published, seen


def test_a_publish_is_served_at_once_on_every_worker_sqlite(env):
    auth = _site(env)
    config = json.loads(DEMO_CONFIG.read_text())
    with gunicorn_server(env, workers=3) as url:
        version = _publish_and_warm(url, auth, config)
        for _ in range(3):
            version, seen = _new_version_everywhere(url, auth, config, version)
            assert set(seen) == {version}


def test_a_publish_reaches_every_worker_within_moments_redis(env):
    with redis_server() as (redis_url, _, _):
        env = {**env, "VITRINA_REDIS_URL": redis_url}
        auth = _site(env)
        config = json.loads(DEMO_CONFIG.read_text())
        with gunicorn_server(env, workers=3) as url:
            version = _publish_and_warm(url, auth, config)
            for _ in range(3):
                version = _publish(url, auth, config)
                # The announcement crosses Redis pub/sub in milliseconds on an idle machine (the
                # bench's business); here, every worker serves it well before the version token's
                # one-second age bound would bring it anyway, and none goes back to an older one.
                deadline = time.monotonic() + 0.8
                # two requests, maybe to two workers, one of which may not have heard yet
                while {served for _ in range(6) for served in _served_versions(url)} != {version}:
                    assert time.monotonic() < deadline, "a worker still served an older version"
                    time.sleep(0.02)
                assert {_served_version(url) for _ in range(30)} == {version}


def _add_version_unannounced(env, config):
    """A new signed version written to the store without announcing it, as a process killed
    between its commit and its announcement leaves it."""
    app = create_app(env=env)

    def make_payload(version):
        bundle = compile_bundle("shop", version, config)
        payload = canonical_json(bundle)
        return payload, sign(payload, app.config["VITRINA_SECRET_KEYS"]), bundle["published_at"]
    with app.app_context():
        version = get_store().add_version("shop", make_payload)
    app.extensions["vitrina_store"].close()
    return version


def test_an_unannounced_version_reaches_every_worker_within_the_age_bound(env):
    auth = _site(env)
    config = json.loads(DEMO_CONFIG.read_text())
    with gunicorn_server(env, workers=3) as url:
        _publish_and_warm(url, auth, config)
        version = _add_version_unannounced(env, config)
        time.sleep(MAX_AGE_S + 0.2)  # the documented bound: the version token moves at least this often
        assert {_served_version(url) for _ in range(30)} == {version}


def test_hot_path_errors_keep_the_api_shape(env):
    _site(env)
    with gunicorn_server(env) as url:
        status, headers, body = _request(f"{url}/v1/sites/nope/tag.js")
        assert status == 404 and json.loads(body)["error"] == "site_not_found"
        assert headers["content-type"].startswith("application/json")
        status, _, body = _request(f"{url}/v1/sites/shop/bundle.json")
        assert status == 404 and json.loads(body)["error"] == "not_published"
        status, _, body = _request(f"{url}/v1/sites/Bad_Name/bundle.json")
        assert status == 404 and json.loads(body)["error"] == "site_not_found"
        # a path that only looks hot goes to Flask's router
        assert _request(f"{url}/v1/sites/shop/extra/tag.js")[0] == 404


def _send_oversized(url, method, path, body, headers):
    """Send a large body as a browser would, carrying on if the server answers (and closes)
    before it has all been sent; returns (status, JSON body) of the early answer."""
    host, port = url[len("http://"):].split(":")
    head = "".join(f"{k}: {v}\r\n" for k, v in {"Host": f"{host}:{port}", "Content-Length": len(body),
                                                  "Connection": "close", **headers}.items())
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        try:
            sock.sendall(f"{method} {path} HTTP/1.1\r\n{head}\r\n".encode() + body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server refused the body before reading it all
        reply = b""
        try:
            while chunk := sock.recv(65536):
                reply += chunk
        except ConnectionResetError:
            pass
    head, _, payload = reply.partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(payload)


def test_request_bodies_are_bounded_before_they_are_read(env):
    auth = _site(env)
    with gunicorn_server(env) as url:
        limit = create_app(env=env).config["VITRINA_CONFIG_MAX_BYTES"]
        status, body = _send_oversized(url, "PUT", "/api/v1/sites/shop/config", b"{" + b" " * limit + b"}", auth)
        assert status == 413 and body["error"] == "request_entity_too_large"
        status, body = _send_oversized(url, "POST", "/v1/sites/shop/collect", b"x" * (4 * 1024 * 1024),
                                       {"Content-Type": "text/plain"})
        assert status == 413 and body["error"] == "payload_too_large"
        # and a normal request on the same server still works
        assert _request(f"{url}/healthz")[0] == 200


def test_access_log_has_requests_but_no_visitor_address(env, tmp_path):
    _site(env)
    log = tmp_path / "gunicorn.log"
    with gunicorn_server(env, log_path=log) as url:
        _request(f"{url}/v1/sites/shop/tag.js", headers={"User-Agent": UA})
        _request(f"{url}/v1/sites/shop/bundle.json")
    text = log.read_text()
    assert '"GET /v1/sites/shop/tag.js HTTP/1.1" 200' in text
    assert '"GET /v1/sites/shop/bundle.json HTTP/1.1" 404' in text
    access_lines = [line for line in text.splitlines() if '"GET ' in line]
    assert access_lines and not any("127.0.0.1" in line for line in access_lines)


@pytest.mark.parametrize("delay", [0.0, 0.15, 0.4])
def test_a_server_stopped_while_its_workers_boot_stops(env, delay):
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "server.cli", "serve", "--port", str(port), "--workers", "3"],
                            cwd=REPO, env={**os.environ, **env}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        if delay:
            time.sleep(delay)
        else:
            wait_for(lambda: urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1).status == 200,
                     what="gunicorn")
        proc.send_signal(signal.SIGTERM)
        # within gunicorn's 30 s graceful timeout by far: no worker lost the signal (a master
        # signalled before it installed its own handlers dies of it at once, which is a stop too)
        assert proc.wait(10) in (0, -signal.SIGTERM)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
