"""server/cache.py, the one cache layer: every cache the app makes while serving says what
invalidates it and is bounded; a full cache empties whole; a moved token empties it; and a
publish changes what the ASGI front answers at once."""
import asyncio
import json
import time

from server.cache import Cache, app_caches
from server.web.asgi import VitrinaASGI

UA = "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148"


def _call(front, method, path, headers=(), body=b""):
    """One request through the ASGI app as uvicorn delivers it: (status, headers, body)."""
    raw_path, _, query = path.encode().partition(b"?")
    scope = {"type": "http", "method": method, "path": raw_path.decode(), "raw_path": raw_path, "query_string": query,
             "http_version": "1.1", "scheme": "http", "root_path": "", "client": ("127.0.0.1", 50000),
             "server": ("127.0.0.1", 8000),
             "headers": [(b"host", b"127.0.0.1:8000"), *((k.lower().encode(), v.encode()) for k, v in headers)]}
    if body:
        scope["headers"].append((b"content-length", str(len(body)).encode()))
    messages = [{"type": "http.request", "body": body, "more_body": False}]
    sent = []

    async def receive():
        return messages.pop() if messages else {"type": "http.disconnect"}

    async def send(message):
        sent.append(message)

    asyncio.run(front(scope, receive, send))
    start = sent[0]
    return start["status"], dict(start["headers"]), b"".join(m.get("body", b"") for m in sent[1:])


def _serve_a_few_requests(front):
    for path in ("/v1/sites/shop/tag.js", "/v1/sites/shop/context.js", "/v1/sites/shop/bundle.json",
                 "/sdk/vitrina.min.js", "/v1/sites/nope/tag.js", "/healthz", "/v1/context"):
        for encoding in ("gzip", "identity"):
            _call(front, "GET", path, [("User-Agent", UA), ("Accept-Encoding", encoding)])
    batch = {"visitor_id": "v1." + "a" * 24, "events": [
        {"id": "event-0001", "type": "exposure", "version": 1, "ts": int(time.time() * 1000), "campaign": "cta-wording",
         "variation": "control", "holdout": False}]}
    status, _, _ = _call(front, "POST", "/v1/sites/shop/collect", [("Content-Type", "text/plain")],
                         json.dumps(batch).encode())
    assert status in (204, 400)  # recorded, or refused for bucketing: verified either way


def test_every_cache_says_what_invalidates_it_and_is_bounded(app, published):
    _serve_a_few_requests(VitrinaASGI(app))
    caches = app_caches(app)
    assert {"hot replies", "hot visitor replies", "latest versions", "verified versions", "tag.js bodies", "gzipped bodies", "SDK build",
            "SDK file", "SDK file mtime", "context literals", "known sites", "compiled bundles"} <= set(caches)
    for name, cache in caches.items():
        assert len(cache.invalidated_by.split()) >= 2, name  # a sentence, not a placeholder
        assert isinstance(cache.size, int) and 0 < cache.size <= 4096, name
        assert 0 < len(cache) <= cache.size, name


def test_a_full_cache_empties_whole_and_a_new_token_empties_it():
    token = [1]
    cache = Cache("test", 3, "the test's token", token=lambda: token[0])
    for n in range(3):
        cache.put(n, n)
    assert len(cache) == 3 and cache.get(0) == 0
    cache.put(3, 3)
    assert len(cache) == 1 and cache.get(0) is None and cache.get(3) == 3
    assert cache.get_or_make(4, lambda: "made") == "made" and cache.get_or_make(4, lambda: "again") == "made"
    token[0] = 2
    assert cache.get(3) is None and len(cache) == 0


def test_a_publish_changes_what_the_front_answers_at_once(app, client, published, demo_config):
    front = VitrinaASGI(app)

    def served():
        _, _, tag = _call(front, "GET", "/v1/sites/shop/tag.js", [("User-Agent", UA)])
        _, _, bundle = _call(front, "GET", "/v1/sites/shop/bundle.json")
        return tag, json.loads(bundle)["bundle"]["version"]

    tag, version = served()
    assert version == 1 and b'"version":1' in tag
    assert served() == (tag, 1)  # from the memo
    assert client.post("/api/v1/sites/shop/publish", headers=published).get_json()["version"] == 2
    tag, version = served()
    assert version == 2 and b'"version":2' in tag


def _scope(path, ua, client):
    return {"type": "http", "method": "GET", "path": path, "query_string": b"", "scheme": "http", "root_path": "",
            "client": (client, 50000), "server": ("127.0.0.1", 8000),
            "headers": [(b"host", b"127.0.0.1:8000"), (b"user-agent", ua.encode())]}


def test_context_js_is_answered_on_the_event_loop_per_visitor_and_tag_js_once_for_all(app, published):
    front = VitrinaASGI(app)
    android = "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Mobile Safari/537.36"
    replies = {(ua, ip): front.hot_reply(_scope("/v1/sites/shop/context.js", ua, ip))
               for ua in (UA, android) for ip in ("81.2.69.142", "89.160.20.112")}
    assert all(reply is not None and reply[0] == 200 for reply in replies.values())  # not handed to Flask
    assert b'"os":"ios"' in replies[(UA, "81.2.69.142")][2] and b'"os":"android"' in replies[(android, "81.2.69.142")][2]
    visitors = app_caches(app)["hot visitor replies"]
    assert len(visitors) == 4
    # Keyed by a process-salted hash of the address, never the address itself.
    for key in visitors._current():
        assert not any(ip in repr(key) for ip in ("81.2.69.142", "89.160.20.112")), key
    # The same visitor again: the reply from the memo.
    assert front.hot_reply(_scope("/v1/sites/shop/context.js", UA, "81.2.69.142")) is replies[(UA, "81.2.69.142")]
    # tag.js reads no visitor: one reply for every user agent and address.
    tags = {front.hot_reply(_scope("/v1/sites/shop/tag.js", ua, ip))[2] for ua, ip in replies}
    hot = app_caches(app)["hot replies"]
    assert len(tags) == 1 and sum(1 for key in hot._current() if key[0] == "tag.js") == 1
    # An unknown site goes to Flask (the API's error shape).
    assert front.hot_reply(_scope("/v1/sites/nope/context.js", UA, "81.2.69.142")) is None
