"""collect as the ASGI front answers it (server/web/asgi.py running server/events/intake.py without
a WSGI request), under real gunicorn on a real Redis, against Flask's own view through the test
client on a twin store (another database of the same redis-server: the same site, version and
settings): the same status, headers and body for every kind of batch (accepted, refused in part,
invalid, too large, unknown site, unverified, bad identity, rate-limited, spooled; drawn by
Hypothesis too); slow and vanishing clients; and every rate-limit hit, rejection, exclusion and
event counted exactly once, though the front hands the requests whose answer is an error to Flask."""
import json
import re
import signal
import socket
import threading
import time
from contextlib import contextmanager
from http.client import HTTPResponse

import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from server import create_app
from server.configs import publishing
from server.events.batch import bucketed_assignment
from server.identity.tokens import issue_identity
from server.web.asgi import collect_site
from tests.conftest import EXPERIMENT_CONFIG, make_site
from tests.servers import BROWSER_UA, gunicorn_server, redis_server, wait_for

SECRET = "front-secret-key-0123456789"
CONFIG = {**EXPERIMENT_CONFIG, "settings": {"holdout": 0, "exclude_ips": ["203.0.113.0/24"]}}
GOOGLEBOT = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"
PROXY = "10.0.0.2"  # the address of the one proxy hop both servers trust
SHOPPER = "198.51.100.9"
# Headers of the transport, not of the answer: the test client has none of them.
TRANSPORT = {"date", "server", "connection", "transfer-encoding"}
COLLECT = "/v1/sites/shop/collect"


def _env(tmp, name, redis_url, **extra):
    return {"VITRINA_DATABASE": str(tmp / f"{name}.sqlite3"), "VITRINA_SECRET_KEY": SECRET,
            "VITRINA_REDIS_URL": redis_url, "VITRINA_SPOOL_DIR": str(tmp / f"spool-{name}"),
            "VITRINA_PROXY_HOPS": "1", "VITRINA_RATE_CLIENT": "0", **extra}


def _shop(env):
    """Site 'shop' with CONFIG published as version 1: (app, its test client, the key's headers, bundle)."""
    app = create_app(env=env)
    client = app.test_client()
    auth = make_site(app, "shop")
    assert client.put("/api/v1/sites/shop/config", json=CONFIG, headers=auth).status_code == 200
    assert client.post("/api/v1/sites/shop/publish", headers=auth).status_code == 201
    with app.app_context():
        bundle = publishing.load_version("shop", 1)
    return app, client, auth, bundle


class Pair:
    """The real server and its twin, the Flask view alone."""

    def __init__(self, url, log, twin, auth, twin_auth, bundle):
        self.url, self.log, self.twin, self.auth, self.twin_auth, self.bundle = url, log, twin, auth, twin_auth, bundle
        self.port = int(url.rsplit(":", 1)[1])

    def send(self, method, target, headers=(), body=b"", chunks=None, pause=0.0):
        """(status, lower-case headers, body) from the real server, on a connection of its own;
        the body sent at once with its length, or as `chunks` (Transfer-Encoding: chunked), each
        after `pause` seconds."""
        head = [f"{method} {target} HTTP/1.1", f"Host: 127.0.0.1:{self.port}", "Connection: close"]
        head += [f"{name}: {value}" for name, value in headers]
        head.append("Transfer-Encoding: chunked" if chunks is not None else f"Content-Length: {len(body)}")
        with socket.create_connection(("127.0.0.1", self.port), timeout=30) as sock:
            sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode("latin-1"))
            for chunk in (chunks if chunks is not None else [body]):
                time.sleep(pause)
                sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk) if chunks is not None else chunk)
            if chunks is not None:
                sock.sendall(b"0\r\n\r\n")
            response = HTTPResponse(sock, method=method)
            response.begin()
            return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()

    def both(self, body, user_agent=BROWSER_UA, forwarded=SHOPPER, target=COLLECT, method="POST", **how):
        """The server's answer, asserted equal to the twin's; (status, body)."""
        headers = [("Content-Type", "text/plain;charset=UTF-8"), ("User-Agent", user_agent),
                   ("X-Forwarded-For", forwarded)]
        status, got, data = self.send(method, target, headers, body, **how)
        want = self.twin.open(target, method=method, data=body, headers=headers, environ_base={"REMOTE_ADDR": PROXY})
        assert (status, data) == (want.status_code, want.data), target
        assert {k: v for k, v in got.items() if k not in TRANSPORT} == {k.lower(): v for k, v in want.headers.items()}
        return status, data

    def results(self):
        """(the server's results, the twin's), without the time they were computed."""
        status, _, body = self.send("GET", "/api/v1/sites/shop/results", [("Authorization", self.auth["Authorization"])])
        assert status == 200, body
        twin = self.twin.get("/api/v1/sites/shop/results", headers=self.twin_auth).get_json()
        return [{k: v for k, v in data.items() if k not in ("computed_at", "generated_at")} for data in (json.loads(body), twin)]

    def access_lines(self):
        return [line for line in self.log.read_text().splitlines() if f"{COLLECT} HTTP/1.1" in line]


@contextmanager
def serving_pair(tmp, **env):
    """A redis-server, `vitrina serve` on its database 0 and the twin on its database 1 (the same
    site and version, the same secret key): yields (Pair, the Redis URL, the redis-server process)."""
    with redis_server() as (redis_url, _, redis_process):
        server_env = _env(tmp, "server", redis_url, **env)
        setup, _, auth, bundle = _shop(server_env)
        setup.extensions["vitrina_store"].close()
        _, twin, twin_auth, _ = _shop(_env(tmp, "twin", redis_url[:-2] + "/1", **env))
        with gunicorn_server(server_env, workers=2, log_path=tmp / "gunicorn.log") as url:
            yield Pair(url, tmp / "gunicorn.log", twin, auth, twin_auth, bundle), redis_url, redis_process


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    with serving_pair(tmp_path_factory.mktemp("front")) as (pair, _, _):
        yield pair


def _events(bundle, visitor, value=20, variation=None, version=1):
    """The visitor's true exposure (or the given variation) and a purchase worth `value`."""
    _, assigned = bucketed_assignment(bundle, bundle["campaigns"][0], visitor)
    now = int(time.time() * 1000)
    return [{"id": f"x-{visitor}", "type": "exposure", "version": version, "ts": now, "campaign": "hero",
             "variation": assigned if variation is None else variation, "holdout": False},
            {"id": f"p-{visitor}", "type": "conversion", "version": version, "ts": now + 1, "goal": "purchase",
             "value": value}]


def _body(visitor, events, **extra):
    return json.dumps({"visitor_id": visitor, "events": events, **extra}).encode()


def _other(bundle, visitor):
    _, assigned = bucketed_assignment(bundle, bundle["campaigns"][0], visitor)
    return "b" if assigned == "control" else "control"


def test_collect_paths_are_those_flask_routes():
    assert collect_site("/v1/sites/shop/collect") == "shop"
    assert collect_site("/v1/sites/Bad!Site/collect") == "Bad!Site"  # the view answers its 404
    for path in ("/v1/sites/collect", "/v1/sites//collect", "/v1/sites/a/b/collect", "/v1/sites/shop/collect/",
                 "/v1/sites/shop/collectx", "/v2/sites/shop/collect", "/v1/sites/shop/tag.js"):
        assert collect_site(path) is None, path


def test_every_kind_of_batch_gets_the_views_answer_and_counts_once(pair):
    bundle, limit = pair.bundle, pair.twin.application.config["VITRINA_COLLECT_MAX_BYTES"]
    with pair.twin.application.app_context():  # the same secret key as the server's
        identity = issue_identity("shop", "c1.customer", "visitor-identified")[0]
    lines_before = len(pair.access_lines())
    before = pair.results()
    assert before[0] == before[1]
    expected = [  # (what, answer)
        (pair.both(_body("visitor-ok", _events(bundle, "visitor-ok"))), (204, b"")),
        (pair.both(_body("visitor-bot", _events(bundle, "visitor-bot")), user_agent=GOOGLEBOT), (204, b"")),
        (pair.both(_body("visitor-office", _events(bundle, "visitor-office")), forwarded="203.0.113.9"), (204, b"")),
        (pair.both(_body("visitor-chunked", _events(bundle, "visitor-chunked")),
                   chunks=[_body("visitor-chunked", _events(bundle, "visitor-chunked"))]), (204, b"")),
        (pair.both(_body("visitor-identified", _events(bundle, "visitor-identified"), identity=identity)), (204, b"")),
    ]
    for (status, body), want in expected:
        assert (status, body) == want
    # refused in part: the batch stands, the value out of bounds is refused alone
    status, body = pair.both(_body("visitor-part", _events(bundle, "visitor-part") + [
        {"id": "purchase-too-big", "type": "conversion", "version": 1, "ts": int(time.time() * 1000), "goal": "purchase",
         "value": 10**7}]))
    assert status == 200 and [p["path"] for p in json.loads(body)["refused"]] == ["/events/2/value"]
    errors = {
        "schema": (_body("visitor-schema", "not a list"), 400, "invalid_batch"),
        "bad json": (b'{"visitor_id": "visitor-json", "events": [', 400, "invalid_batch"),
        "empty": (b"", 400, "invalid_batch"),
        "too large": (b"{" + b" " * limit + b"}", 413, "payload_too_large"),
        "unverified": (_body("visitor-forged", _events(bundle, "visitor-forged", variation=_other(bundle, "visitor-forged"))), 400,
                       "unverified_events"),
        "unknown version": (_body("visitor-version", _events(bundle, "visitor-version", version=9)), 400, "unverified_events"),
        "bad identity": (_body("visitor-id", _events(bundle, "visitor-id"), identity=identity[:-4] + "AAAA"), 400,
                         "unverified_events"),
        "another visitor's identity": (_body("visitor-id2", _events(bundle, "visitor-id2"), identity=identity), 400,
                                       "unverified_events"),
    }
    for what, (body, status, code) in errors.items():
        got = pair.both(body)
        assert (got[0], json.loads(got[1])["error"]) == (status, code), what
    # a body past the limit, chunked (no length to refuse it by): read as far as the limit, refused
    got = pair.both(b"{" + b" " * limit + b"}", chunks=[b"{", b" " * limit, b"}"])
    assert got[0] == 413
    for target in ("/v1/sites/nosuch/collect", "/v1/sites/Bad!Site/collect", "/v1/sites/shop/collect/"):
        got = pair.both(_body("visitor-where", _events(bundle, "visitor-where")), target=target)
        assert got[0] == 404, target
    preflight = pair.both(b"", method="OPTIONS")
    assert preflight[0] == 204
    after = pair.results()
    assert after[0] == after[1]  # the twin counted exactly what the server did
    visitors = sum(v["visitors"] for v in after[0]["campaigns"][0]["variations"])
    visitors -= sum(v["visitors"] for v in before[0]["campaigns"][0]["variations"])
    assert visitors == 4  # ok, chunked, identified, part: the bot and the office only excluded
    assert _minus(after[0]["excluded"], before[0]["excluded"]) == {"bot": 2, "ip": 2}
    # one "invalid" per invalid batch; a refused batch's events each once, under its reason
    assert _minus(after[0]["rejected"], before[0]["rejected"]) == {
        "invalid": 3, "value": 1, "bucketing": 1, "unknown_version": 2, "identity": 4}
    lines = pair.access_lines()[lines_before:]
    # one line per request to shop's collect (accepted, refused in part, errors, chunked, preflight),
    # whether the front answered it or handed it over
    assert len(lines) == 5 + 1 + len(errors) + 1 + 1
    assert not any(address in line for line in lines for address in (SHOPPER, PROXY, "203.0.113", "127.0.0.1"))


def _minus(after, before):
    return {k: v - before.get(k, 0) for k, v in after.items() if v != before.get(k, 0)}


BATCH_KEYS = ("visitor_id", "events", "identity")
EVENT_KEYS = ("id", "type", "version", "ts", "campaign", "variation", "holdout", "goal", "value", "order_id",
              "internal", "forced", "slice", "segments")
json_values = st.recursive(st.none() | st.booleans() | st.integers(-2**63, 2**63) | st.floats(allow_nan=False)
                           | st.text(max_size=20), lambda inner: st.lists(inner, max_size=4)
                           | st.dictionaries(st.text(max_size=8), inner, max_size=4), max_leaves=10)


@st.composite
def batches(draw, bundle):
    """A body: random bytes, random JSON, or a true batch with something changed (or not)."""
    kind = draw(st.sampled_from(["bytes", "json", "batch", "batch", "batch"]))
    if kind == "bytes":
        return draw(st.binary(max_size=200))
    if kind == "json":
        return json.dumps(draw(json_values)).encode()
    visitor = f"visitor-drawn-{draw(st.integers(0, 40))}"  # few visitors: repeats, as browsers send them
    batch = {"visitor_id": visitor, "events": _events(bundle, visitor, value=draw(st.integers(0, 200)))}
    for _ in range(draw(st.integers(0, 2))):
        where = draw(st.sampled_from(["batch", "event", "drop"]))
        if where == "batch":
            batch[draw(st.sampled_from(BATCH_KEYS))] = draw(json_values)
        elif isinstance(batch.get("events"), list) and batch["events"]:  # (it may have been changed above)
            events = batch["events"]
            i = draw(st.integers(0, len(events) - 1))
            if where == "drop":
                events.pop(i)
            elif isinstance(events[i], dict):
                events[i][draw(st.sampled_from(EVENT_KEYS))] = draw(json_values)
    return json.dumps(batch).encode()


def test_drawn_batches_get_the_views_answer(pair):
    @settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(st.data())
    def one(data):
        body = data.draw(batches(pair.bundle))
        user_agent = data.draw(st.sampled_from([BROWSER_UA, GOOGLEBOT, ""]))
        forwarded = data.draw(st.sampled_from([SHOPPER, "203.0.113.20", "not an address"]))
        pair.both(body, user_agent=user_agent, forwarded=forwarded)
    one()  # (about half of the draws are accepted, answered by the front; the rest handed to Flask)
    server, twin = pair.results()
    assert server == twin


def test_a_slow_client_is_answered_and_one_gone_mid_body_changes_nothing(pair):
    body = _body("visitor-slow", _events(pair.bundle, "visitor-slow"))
    before = pair.results()[0]
    # the body in three chunks, a pause before each: the loop waits for it, no thread held
    assert pair.both(body, chunks=[body[:10], body[10:40], body[40:]], pause=0.3)[0] == 204
    lines = len(pair.access_lines())
    for cut in (0, len(body) // 2):  # headers only, then half the body, and the client leaves
        with socket.create_connection(("127.0.0.1", pair.port), timeout=10) as sock:
            sock.sendall(f"POST {COLLECT} HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body) + 100}\r\n"
                         f"X-Forwarded-For: {SHOPPER}\r\n\r\n".encode() + body[:cut])
            time.sleep(0.2)
    deadline = time.monotonic() + 5
    while len(pair.access_lines()) < lines + 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert [line.split('" ')[1].split()[0] for line in pair.access_lines()[lines:]] == ["499", "499"]
    after = pair.results()
    assert after[0] == after[1]
    variations = [v["visitors"] for v in after[0]["campaigns"][0]["variations"]]
    assert sum(variations) - sum(v["visitors"] for v in before["campaigns"][0]["variations"]) == 1
    assert (after[0]["rejected"], after[0]["excluded"]) == (before["rejected"], before["excluded"])
    # and the server goes on answering
    assert pair.both(_body("visitor-after", _events(pair.bundle, "visitor-after")))[0] == 204


def _without_seconds(body):
    return re.sub(rb"retry after \d+ s", b"retry after N s", body)


def test_rate_limited_batches_get_the_views_answer_and_each_request_is_one_hit(tmp_path):
    """Per client 3, per site 5, in one window of an hour: requests 4 and 5 are over the
    client's limit, 6 and 7 over the site's. Every request, handed over or not, is one hit of the
    site's window and, until the site's refuses it, one of the client's: counted once."""
    limits = {"VITRINA_RATE_CLIENT": "3", "VITRINA_RATE_SITE": "5", "VITRINA_RATE_WINDOW": "3600"}
    with serving_pair(tmp_path, **limits) as (pair, redis_url, _):
        answers = []
        for i in range(7):  # valid and invalid batches in turn
            body = _body(f"visitor-{i}", _events(pair.bundle, f"visitor-{i}")) if i % 2 == 0 else b"{nope"
            headers = [("Content-Type", "text/plain"), ("User-Agent", BROWSER_UA), ("X-Forwarded-For", SHOPPER)]
            status, got, data = pair.send("POST", COLLECT, headers, body)
            want = pair.twin.post(COLLECT, data=body, headers=headers, environ_base={"REMOTE_ADDR": PROXY})
            assert (status, _without_seconds(data)) == (want.status_code, _without_seconds(want.data))
            if status == 429:
                assert abs(int(got["retry-after"]) - int(want.headers["Retry-After"])) <= 1
                assert got["access-control-allow-origin"] == "*" and got["content-type"] == "application/json"
            answers.append((status, json.loads(data)["message"].split(";")[0] if data else ""))
        assert answers == [(204, ""), (400, answers[1][1]), (204, ""), (429, "Too many batches from this client"),
                           (429, "Too many batches from this client"), (429, "Too many batches from this site"),
                           (429, "Too many batches from this site")]
        window = int(time.time() // 3600)
        for db in (0, 1):  # on the server as on the twin
            client = redis.Redis.from_url(redis_url[:-2] + f"/{db}", decode_responses=True)
            hits = {key.split(":rate:")[1].split(":")[0]: int(client.get(key))
                    for key in client.scan_iter(match=f"vitrina:{{shop}}:rate:*:{window}")}
            assert hits == {"site": 7, "c": 5}, db
        server_results, twin_results = pair.results()
        assert server_results["rejected"] == twin_results["rejected"] == {"invalid": 1}


def test_a_store_outage_spools_each_batch_once_as_the_view_does(tmp_path):
    with serving_pair(tmp_path) as (pair, _, redis_process):
        bundle = pair.bundle
        for i in range(4):  # every worker knows the site and its version while the store is up
            assert pair.both(_body(f"visitor-up-{i}", _events(bundle, f"visitor-up-{i}")))[0] == 204
        redis_process.send_signal(signal.SIGTERM)
        redis_process.wait(10)
        for i in range(5):
            assert pair.both(_body(f"visitor-down-{i}", _events(bundle, f"visitor-down-{i}"))) == (202, b"")
        try:
            for name in ("server", "twin"):
                spooled = [p for p in (tmp_path / f"spool-{name}").iterdir() if p.is_file()]
                assert len(spooled) == 5, name
            lines = pair.access_lines()
            assert [line.split('" ')[1].split()[0] for line in lines] == ["204"] * 4 + ["202"] * 5
        finally:
            # The twin's replayer, this process's one, stops when its spool is empty: it must not
            # hold the place of the replayers of the tests after this one.
            for spooled in (tmp_path / "spool-twin").iterdir():
                if spooled.is_file():
                    spooled.unlink()
            wait_for(lambda: not any(t.name == "vitrina-spool" for t in threading.enumerate()), timeout=10,
                     what="the twin's spool replayer to stop")
