"""Keys that can be listed, added, rotated and revoked: scopes (owner > publish > read), the
keys API for owner keys only, the CLI, last use written at most once a minute, and a revoked
key refused at once by every worker of a real multi-worker gunicorn, on both stores."""
import json
import os
import time
import urllib.error
import urllib.request

import pytest

from server.store import get_store
from server.web.auth import hash_key
from tests.conftest import database_bytes, make_site
from tests.servers import gunicorn_server, redis_server, vitrina

SITE = "/api/v1/sites/shop"


def bearer(key):
    return {"Authorization": f"Bearer {key}"}


def new_key(client, owner, name, scope):
    response = client.post(f"{SITE}/keys", json={"name": name, "scope": scope}, headers=owner)
    assert response.status_code == 201, response.get_json()
    body = response.get_json()
    assert (body["site"], body["name"], body["scope"]) == ("shop", name, scope)
    return bearer(body["key"])


def error_of(response):
    body = response.get_json()
    assert set(body) == {"error", "message", "details"} and body["message"]
    return body["error"]


# What each request needs: GET (and decide) read, edits publish, keys owner.
REQUESTS = [
    ("read", "GET", "/config", None), ("read", "GET", "/versions", None), ("read", "GET", "/results", None),
    ("read", "POST", "/decide", {"visitor_id": "visitor-1"}),
    ("publish", "PUT", "/config", "demo"), ("publish", "POST", "/publish", None),
    ("publish", "POST", "/rollback", {"version": 1}),
    ("owner", "GET", "/keys", None), ("owner", "POST", "/keys", {"name": "minted", "scope": "owner"}),
    ("owner", "DELETE", "/keys/spare", None),
]
ORDER = ["read", "publish", "owner"]


@pytest.mark.parametrize("scope", ORDER)
def test_each_scope_allows_what_it_says_and_nothing_more(client, published, demo_config, scope):
    key = new_key(client, published, "tested", scope)
    new_key(client, published, "spare", "read")
    for needed, method, path, body in REQUESTS:
        json_body = demo_config if body == "demo" else body
        response = client.open(SITE + path, method=method, json=json_body, headers=key)
        if ORDER.index(scope) >= ORDER.index(needed):
            assert response.status_code < 400, (scope, method, path, response.get_json())
        else:
            assert response.status_code == 403, (scope, method, path)
            assert error_of(response) == "forbidden" and repr(needed) in response.get_json()["message"]


def test_a_publish_key_cannot_mint_or_revoke_keys(client, published):
    leaked = new_key(client, published, "ci", "publish")
    assert client.post(f"{SITE}/keys", json={"name": "mine", "scope": "owner"}, headers=leaked).status_code == 403
    assert client.delete(f"{SITE}/keys/default", headers=leaked).status_code == 403
    listed = client.get(f"{SITE}/keys", headers=published).get_json()["keys"]
    assert [(k["name"], k["scope"]) for k in listed] == [("default", "owner"), ("ci", "publish")]


def test_keys_are_listed_without_secrets_created_once_and_revoked_at_once(app, client, shop):
    ci = new_key(client, shop, "ci", "publish")
    assert client.get(f"{SITE}/versions", headers=ci).status_code == 200
    listing = client.get(f"{SITE}/keys", headers=shop)
    assert listing.headers["Cache-Control"] == "no-store"
    keys = listing.get_json()["keys"]
    assert [k["name"] for k in keys] == ["default", "ci"]
    assert set(keys[1]) == {"name", "scope", "created_at", "last_used_at"}
    assert keys[1]["created_at"].endswith("Z") and keys[1]["last_used_at"].endswith("Z")
    secret = ci["Authorization"].split()[1]
    assert secret not in listing.get_data(as_text=True) and hash_key(secret) not in listing.get_data(as_text=True)
    assert secret.encode() not in database_bytes(app) and hash_key(secret).encode() in database_bytes(app)

    duplicate = client.post(f"{SITE}/keys", json={"name": "ci", "scope": "read"}, headers=shop)
    assert duplicate.status_code == 409 and error_of(duplicate) == "key_exists"
    bad = client.post(f"{SITE}/keys", json={"name": "no spaces!", "scope": "admin", "x": 1}, headers=shop)
    assert bad.status_code == 400 and {d["path"] for d in bad.get_json()["details"]} == {"/name", "/scope", ""}
    for body in ("[]", "{", '"ci"'):
        response = client.post(f"{SITE}/keys", data=body, headers={**shop, "Content-Type": "application/json"})
        assert response.status_code == 400 and error_of(response) in ("invalid_json", "invalid_request")

    revoked = client.delete(f"{SITE}/keys/ci", headers=shop)
    assert revoked.status_code == 200 and revoked.get_json() == {"site": "shop", "name": "ci", "revoked": True}
    refused = client.get(f"{SITE}/versions", headers=ci)
    assert refused.status_code == 401 and error_of(refused) == "unauthorized"
    assert client.delete(f"{SITE}/keys/ci", headers=shop).status_code == 404
    # rotation: a new key under the old name
    rotated = new_key(client, shop, "ci", "publish")
    assert client.get(f"{SITE}/versions", headers=rotated).status_code == 200
    assert client.get(f"{SITE}/versions", headers=ci).status_code == 401


def test_the_last_owner_key_cannot_be_revoked_through_the_api(client, shop):
    last = client.delete(f"{SITE}/keys/default", headers=shop)
    assert last.status_code == 409 and error_of(last) == "last_owner_key"
    second = new_key(client, shop, "second-owner", "owner")
    assert client.delete(f"{SITE}/keys/default", headers=second).status_code == 200
    assert client.get(f"{SITE}/keys", headers=shop).status_code == 401
    assert client.delete(f"{SITE}/keys/second-owner", headers=second).status_code == 409


def test_a_key_opens_only_its_own_site_and_an_unknown_site_is_404(app, client, shop):
    other = make_site(app, "other")
    for path in ("/api/v1/sites/other/keys", "/api/v1/sites/other/config"):
        forbidden = client.get(path, headers=shop)
        assert forbidden.status_code == 403 and "does not open site 'other'" in forbidden.get_json()["message"]
    assert client.get("/api/v1/sites/other/keys", headers=other).status_code == 200
    missing = client.get("/api/v1/sites/nope/keys", headers=shop)
    assert missing.status_code == 404 and missing.get_json()["message"] == "There is no site 'nope'."
    # an invalid key learns nothing about which sites exist
    assert client.get("/api/v1/sites/nope/config", headers=bearer("vk_wrong")).status_code == 401


@pytest.mark.parametrize("path", ["/api/v1/sites/%C3%BC/config", "/api/v1/sites/%C3%BC/keys",
                                  "/api/v1/sites/%F0%9F%9B%92/results", "/api/v1/sites/a%00b/versions",
                                  "/api/v1/sites/SHOP/config", "/api/v1/sites/" + "s" * 300 + "/config"])
def test_an_odd_site_in_the_url_with_a_valid_key_is_404_not_500(client, shop, path):
    response = client.get(path, headers=shop)
    assert response.status_code == 404 and error_of(response) == "site_not_found"


def test_last_use_is_written_at_most_once_a_minute(app, client, published):
    dashboard = new_key(client, published, "dashboard", "read")
    key_hash = hash_key(dashboard["Authorization"].split()[1])
    with app.app_context():
        assert get_store().key_for_hash(key_hash).last_used_at is None
    writes = []
    with app.app_context():
        store = get_store()
        real = store.touch_key
        store.touch_key = lambda *args: writes.append(args) or real(*args)
    started = time.time()
    for _ in range(5):
        assert client.get(f"{SITE}/results", headers=dashboard).status_code == 200
    assert len(writes) == 1
    with app.app_context():
        first = get_store().key_for_hash(key_hash).last_used_at
        assert started <= first <= time.time()
        real(key_hash, time.time() - 61)  # its last use, a minute ago
    client.get(f"{SITE}/results", headers=dashboard)
    assert len(writes) == 2
    with app.app_context():
        assert get_store().key_for_hash(key_hash).last_used_at >= started


def test_rollback_to_a_version_beyond_any_integer_is_400_not_500(client, published):
    for version in (9223372036854775808, 10**30, -1, 0, 1.5, True):
        response = client.post(f"{SITE}/rollback", json={"version": version}, headers=published)
        assert response.status_code == 400, version
        assert response.get_json()["details"][0]["path"] == "/version"


# --- the CLI ---------------------------------------------------------------------------------

@pytest.fixture
def env(tmp_path):
    return {**os.environ, "VITRINA_DATABASE": str(tmp_path / "v.sqlite3")}


def test_cli_creates_lists_and_revokes_keys(env, tmp_path):
    owner = vitrina(env, "sites", "create", "shop").stdout.strip().splitlines()[-1]
    made = vitrina(env, "keys", "create", "shop", "--name", "ci", "--scope", "publish")
    assert made.returncode == 0, made.stderr
    ci = made.stdout.strip().splitlines()[-1]
    assert ci.startswith("vk_") and " " not in ci and ci != owner
    listing = vitrina(env, "keys", "list", "shop")
    assert listing.returncode == 0
    lines = listing.stdout.strip().splitlines()
    assert lines[0].split() == ["NAME", "SCOPE", "CREATED", "LAST", "USED"]
    assert [line.split()[:2] for line in lines[1:]] == [["default", "owner"], ["ci", "publish"]]
    assert all(line.split()[-1] == "never" for line in lines[1:])
    assert owner not in listing.stdout and ci not in listing.stdout and hash_key(ci) not in listing.stdout

    assert vitrina(env, "keys", "create", "shop", "--name", "ci", "--scope", "read").returncode == 2
    bad_name = vitrina(env, "keys", "create", "shop", "--name", "no spaces", "--scope", "read")
    assert bad_name.returncode == 2 and "key name" in bad_name.stderr
    assert vitrina(env, "keys", "create", "shop", "--name", "x", "--scope", "admin").returncode == 2
    for args in (("list", "nope"), ("create", "nope", "--name", "a", "--scope", "read"), ("revoke", "nope", "ci")):
        refused = vitrina(env, "keys", *args)
        assert refused.returncode == 2 and "no site 'nope'" in refused.stderr

    with gunicorn_server({"VITRINA_DATABASE": env["VITRINA_DATABASE"]}, workers=1) as url:
        assert _status(f"{url}{SITE}/versions", ci) == 200
        revoked = vitrina(env, "keys", "revoke", "shop", "ci")
        assert revoked.returncode == 0 and "Revoked key 'ci'" in revoked.stdout
        assert _status(f"{url}{SITE}/versions", ci) == 401
        assert _status(f"{url}{SITE}/keys", owner) == 200
    assert vitrina(env, "keys", "revoke", "shop", "ci").returncode == 2
    last_use = vitrina(env, "keys", "list", "shop").stdout.strip().splitlines()[1].split()
    assert last_use[0] == "default" and last_use[-1].endswith("Z")  # used once, above


def _status(url, key, method="GET"):
    request = urllib.request.Request(url, headers=bearer(key), method=method)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as e:
        return e.code


# --- revocation across workers, on both stores -----------------------------------------------

@pytest.fixture(params=["sqlite", "redis"])
def server_env(request, tmp_path):
    env = {"VITRINA_DATABASE": str(tmp_path / "v.sqlite3"), "VITRINA_SECRET_KEY": "keys-secret-key-0123456789"}
    if request.param == "sqlite":
        yield env
        return
    with redis_server() as (url, _, _):
        yield {**env, "VITRINA_REDIS_URL": url}


def test_a_revoked_key_is_refused_by_every_worker_within_a_second(server_env):
    env = {**os.environ, **server_env}
    owner = vitrina(env, "sites", "create", "shop").stdout.strip().splitlines()[-1]
    with gunicorn_server(server_env, workers=3) as url:
        created = urllib.request.Request(f"{url}{SITE}/keys", data=json.dumps({"name": "ci", "scope": "read"}).encode(),
                                         headers={**bearer(owner), "Content-Type": "application/json"}, method="POST")
        with urllib.request.urlopen(created, timeout=10) as response:
            ci = json.loads(response.read())["key"]
        # every request on a new connection: the workers take turns accepting them
        assert [_status(f"{url}{SITE}/results", ci) for _ in range(30)] == [200] * 30
        assert _status(f"{url}{SITE}/keys/ci", owner, "DELETE") == 200
        revoked_at = time.monotonic()
        answers = []
        while time.monotonic() < revoked_at + 1.2:
            answers.append((time.monotonic() - revoked_at, _status(f"{url}{SITE}/results", ci)))
        assert len(answers) >= 20
        assert [status for _, status in answers] == [401] * len(answers), answers[:5]
        # revoked from the CLI, another process altogether, likewise
        second = vitrina(env, "keys", "create", "shop", "--name", "ops", "--scope", "publish").stdout.split()[-1]
        assert [_status(f"{url}{SITE}/versions", second) for _ in range(10)] == [200] * 10
        assert vitrina(env, "keys", "revoke", "shop", "ops").returncode == 0
        assert [_status(f"{url}{SITE}/versions", second) for _ in range(20)] == [401] * 20
