"""Known customers end to end through the app: identity secrets (CLI), tokens and their forgeries
(/identify), the signed identity in collect, CRM data (import, read, types, erasure), config
validation of crm.*, decide with customer_id/ip/user_agent/now/timezone, and email content."""
import hashlib
import hmac
import json
import os
import re
import time
import urllib.error
import urllib.parse
import urllib.request
from datetime import datetime, timedelta, timezone

import jwt
import pytest
from conftest import database_bytes, make_site
from hypothesis import given, settings
from hypothesis import strategies as st
from servers import REPO, gunicorn_server, redis_server, vitrina

from server import create_app
from server.decisions.bucketing import hash as bucket_hash
from server.decisions.decide import decide
from server.identity.customers import stored
from server.identity.site_secrets import ROTATION_GRACE_S, current_secret, customer_key
from server.identity.tokens import TokenRefused, verify_token
from server.store import get_store
from server.web.access_log import redacted

IDENTIFY = "/v1/sites/shop/identify"
COLLECT = "/v1/sites/shop/collect"
VISITOR, PHONE = "v1.0123456789abcdef01234567", "v1.fedcba9876543210fedcba98"
DAY = 86_400
CONFIG = {
    "segments": {"gold": {"crm.tier": "gold"}, "lapsed": {"crm.days_since_last_order": {"$gt": 90}}},
    "goals": {"purchase": {"event": "purchase"}},
    "campaigns": [
        {"key": "loyalty", "segment": "gold", "bucket_by": "customer", "goals": ["purchase"],
         "variations": [{"key": "gold-hero", "actions": [{"selector": "#hero", "text": "Welcome back, gold member"}]}]},
        {"key": "winback", "segment": "lapsed", "bucket_by": "customer", "goals": ["purchase"],
         "variations": [{"key": "control"}, {"key": "offer", "actions": [{"selector": "#banner", "text": "10% off"}]}]},
        {"key": "split", "bucket_by": "customer", "goals": ["purchase"],
         "variations": [{"key": "control"}, {"key": "b", "actions": [{"selector": "#cta", "text": "Buy now"}]}]},
        {"key": "morning", "conditions": {"time.hour": {"$lt": 12}},
         "variations": [{"key": "coffee", "actions": [{"selector": "#promo", "text": "Coffee time"}]}]},
    ],
    "settings": {"holdout": 0},
}


def days_ago(n):
    return (datetime.now(timezone.utc) - timedelta(days=n)).strftime("%Y-%m-%d")


def jsonl(*records):
    return "\n".join(json.dumps(r) for r in records).encode()


@pytest.fixture
def site(app, client, shop):
    """Site 'shop' with CONFIG published and three customers stored."""
    body = jsonl({"customer_id": "1042", "tier": "gold", "ltv": 1250.5, "last_order_at": days_ago(12)},
                 {"customer_id": "77", "tier": "silver", "ltv": 80, "last_order_at": days_ago(200)},
                 {"customer_id": "9", "tier": "bronze", "newsletter": True, "vip_since": "2024-05-01"})
    answer = client.put("/api/v1/sites/shop/customers", data=body, headers={**shop, "Content-Type": "application/x-ndjson"})
    assert answer.get_json() == {"received": 3, "upserted": 3, "removed": 0, "errors": []}
    assert client.put("/api/v1/sites/shop/config", json=CONFIG, headers=shop).status_code == 200
    assert client.post("/api/v1/sites/shop/publish", headers=shop).status_code == 201
    return shop


def secret(app, site_name="shop", rotate=False):
    with app.app_context():
        return current_secret(site_name, rotate=rotate)[0]


def token(key, sub="1042", lifetime=600, algorithm="HS256", **claims):
    now = int(time.time())
    payload = {"sub": sub, "iat": now, "exp": now + lifetime, **claims}
    return jwt.encode({k: v for k, v in payload.items() if v is not None}, key, algorithm)


def identify(client, jwt_token, visitor=VISITOR, **query):
    return client.post(IDENTIFY, query_string=query, data=json.dumps({"token": jwt_token, "visitor_id": visitor}),
                       headers={"Content-Type": "text/plain"})


# --- the identity secret -------------------------------------------------------------------------

def test_the_cli_prints_the_secret_alone_rotates_it_and_never_stores_it(tmp_path):
    env = {**os.environ, "VITRINA_DATABASE": str(tmp_path / "v.sqlite3"), "VITRINA_SECRET_KEY": "cli-secret-key-0123456789"}
    assert vitrina(env, "sites", "create", "shop").returncode == 0
    first = vitrina(env, "sites", "identity-secret", "shop")
    assert first.returncode == 0, first.stderr
    old = first.stdout.strip().splitlines()[-1]
    assert old.startswith("vis_") and len(old) == 47
    assert vitrina(env, "sites", "identity-secret", "shop").stdout.strip().splitlines()[-1] == old
    rotated = vitrina(env, "sites", "identity-secret", "shop", "--rotate")
    new = rotated.stdout.strip().splitlines()[-1]
    assert new != old and new.startswith("vis_") and "24 h" in rotated.stdout
    assert vitrina(env, "sites", "identity-secret", "nope").returncode == 2
    app = create_app(env={k: env[k] for k in ("VITRINA_DATABASE", "VITRINA_SECRET_KEY")})
    stored = database_bytes(app)
    assert old.encode() not in stored and new.encode() not in stored and old[4:].encode() not in stored
    with app.app_context():
        get_store().save_draft("shop", json.dumps(CONFIG))
    client = app.test_client()
    assert identify(client, token(old)).status_code == 200  # two valid during the rotation
    assert identify(client, token(new)).status_code == 200
    newest = vitrina(env, "sites", "identity-secret", "shop", "--rotate").stdout.strip().splitlines()[-1]
    assert identify(client, token(newest)).status_code == 200 and identify(client, token(new)).status_code == 200
    refused = identify(client, token(old))  # rotating again within the grace period drops the oldest
    assert refused.status_code == 400 and refused.get_json()["details"][0]["code"] == "signature"


def test_the_previous_secret_expires_after_the_grace_period(app, client, site):
    old = secret(app)
    new = secret(app, rotate=True)
    with app.app_context():
        record = json.loads(get_store().get_identity("shop"))
        assert record["secrets"][1]["expires_at"] == pytest.approx(time.time() + ROTATION_GRACE_S, abs=5)
        record["secrets"][1]["expires_at"] = time.time() - 1
        get_store().put_identity("shop", json.dumps(record))
    assert identify(client, token(new)).status_code == 200
    assert identify(client, token(old)).get_json()["details"][0]["code"] == "signature"


def test_a_secret_made_with_a_removed_server_key_is_refused_by_name_then_replaced(app, client, site, tmp_path):
    old = secret(app)
    moved = create_app(env={"VITRINA_DATABASE": app.config["VITRINA_DATABASE"],
                            "VITRINA_SECRET_KEY": "another-server-key-0123456789"})
    answer = identify(moved.test_client(), token(old))
    assert answer.status_code == 503 and answer.get_json()["error"] == "identity_unavailable"
    with moved.app_context():
        fresh = current_secret("shop")[0]
    assert moved.test_client().post("/api/v1/sites/shop/publish", headers=site).status_code == 201  # its bundles too
    assert fresh != old and identify(moved.test_client(), token(fresh)).status_code == 200


# --- /identify ----------------------------------------------------------------------------------

def test_a_gold_customer_gets_only_the_crm_attributes_live_campaigns_use(app, client, site):
    answer = identify(client, token(secret(app), crm={"ltv": 99999}))
    assert answer.status_code == 200
    body = answer.get_json()
    with app.app_context():
        assert body["customer"] == customer_key("shop", "1042")
    # the bundle lists the names segments read: tier and days_since_last_order; ltv is not used
    assert body["crm"] == {"tier": "gold", "days_since_last_order": 12}
    assert body["expires_at"] > time.time() * 1000 + 23 * 3600_000
    assert answer.headers["Access-Control-Allow-Origin"] == "*" and answer.headers["Cache-Control"] == "no-store"
    assert "1042" not in body["customer"] and "1042" not in body["identity"]


def test_token_claims_override_stored_attributes_and_email_records_merge(app, client, site, shop):
    email = "ab" * 32
    client.patch("/api/v1/sites/shop/customers", data=jsonl({"email_sha256": email, "tier": "platinum"}),
                 headers={**shop, "Content-Type": "application/x-ndjson"})
    assert identify(client, token(secret(app), sub="new-customer", email_sha256=email)).get_json()["crm"] == \
        {"tier": "platinum"}
    assert identify(client, token(secret(app), crm={"tier": "silver"})).get_json()["crm"]["tier"] == "silver"
    anonymous = identify(client, token(secret(app), sub="nobody")).get_json()
    assert anonymous["crm"] == {} and anonymous["identity"]


def _alg_none(sub="1042"):
    header = jwt.utils.base64url_encode(json.dumps({"alg": "none", "typ": "JWT"}).encode()).decode()
    now = int(time.time())
    payload = jwt.utils.base64url_encode(json.dumps({"sub": sub, "iat": now, "exp": now + 600}).encode()).decode()
    return f"{header}.{payload}."


def _tampered(key):
    header, _, signature = token(key, sub="77").split(".")
    now = int(time.time())
    payload = jwt.utils.base64url_encode(json.dumps({"sub": "1042", "iat": now, "exp": now + 600}).encode()).decode()
    return f"{header}.{payload}.{signature}"


FORGERIES = {
    "another site's secret": (lambda own, other: token(other), "signature"),
    "a guessed secret": (lambda own, other: token("vis_" + "A" * 43), "signature"),
    "alg none": (lambda own, other: _alg_none(), "algorithm"),
    "HS512": (lambda own, other: token(own + own, algorithm="HS512"), "algorithm"),
    "a payload swapped under a real signature": (lambda own, other: _tampered(own), "signature"),
    "expired": (lambda own, other: token(own, lifetime=-120), "expired"),
    "issued in the future": (lambda own, other: jwt.encode({"sub": "1042", "iat": int(time.time()) + 3600,
                                                            "exp": int(time.time()) + 7200}, own, "HS256"),
                             "not_yet_valid"),
    "for another audience": (lambda own, other: token(own, aud="other"), "audience"),
    "living a year": (lambda own, other: token(own, lifetime=365 * DAY), "lifetime"),
    "without sub": (lambda own, other: jwt.encode({"iat": int(time.time()), "exp": int(time.time()) + 60}, own,
                                                  "HS256"), "claims"),
    "without exp": (lambda own, other: jwt.encode({"sub": "1042", "iat": int(time.time())}, own, "HS256"), "claims"),
    "a sub with a slash": (lambda own, other: token(own, sub="a/b"), "subject"),
    "bad crm claims": (lambda own, other: token(own, crm={"Tier": "gold", "ok": {"nested": 1}}), "claims"),
    "a bad email hash": (lambda own, other: token(own, email_sha256="nope"), "claims"),
    "not a JWT": (lambda own, other: "hello", "malformed"),
    "a huge string": (lambda own, other: "a." * 4500, "malformed"),
}


@pytest.mark.parametrize("forgery", FORGERIES, ids=list(FORGERIES))
def test_forged_and_broken_tokens_are_refused_with_a_reason(app, client, site, forgery):
    make_site(app, "other")
    make, code = FORGERIES[forgery]
    answer = identify(client, make(secret(app), secret(app, "other")))
    assert answer.status_code == 400, answer.get_json()
    body = answer.get_json()
    assert body["error"] == "invalid_token" and body["message"].startswith("The identity token is refused: ")
    assert {d["code"] for d in body["details"]} == {code}
    assert answer.headers["Access-Control-Allow-Origin"] == "*"


def test_the_audience_may_name_the_site(app, client, site):
    assert identify(client, token(secret(app), aud="shop")).status_code == 200
    assert identify(client, token(secret(app), aud=["other", "shop"])).status_code == 200


def test_a_token_in_the_url_is_ignored(app, client, site):
    good = token(secret(app))
    answer = client.post(IDENTIFY, query_string={"token": good}, data=json.dumps({"visitor_id": VISITOR}))
    assert answer.status_code == 400
    assert answer.get_json()["details"] == [{"path": "/token", "message": "is required: the identity token, in the "
                                             "body (a token in the URL is ignored: URLs end up in logs)"}]
    # with one in the body as well, the body's counts and the URL's is not read
    assert identify(client, token(secret(app), sub="77"), token=good).get_json()["crm"]["tier"] == "silver"


@pytest.mark.parametrize("raw, path", [
    (b"", ""), (b"[]", ""), (b'{"token": 5, "visitor_id": "v1.0123456789abcdef01234567"}', "/token"),
    (b'{"token": "x", "visitor_id": "a b"}', "/visitor_id"), (b'{"token": "x", "visitor_id": "v1.aaaaaaaa", "x": 1}', ""),
])
def test_bad_identify_bodies_are_400_with_paths(client, site, raw, path):
    answer = client.post(IDENTIFY, data=raw)
    assert answer.status_code == 400 and path in [d["path"] for d in answer.get_json()["details"]]


def test_identify_errors(app, client, shop):
    assert client.post("/v1/sites/nope/identify", data=b"{}").status_code == 404
    answer = identify(client, token("vis_" + "A" * 43))  # no secret yet: made by the CLI
    assert answer.status_code == 400 and answer.get_json()["details"][0]["code"] == "no_secret"
    assert client.post(IDENTIFY, data=b"x" * 20_000).status_code == 413
    preflight = client.options(IDENTIFY)
    assert preflight.status_code == 204 and preflight.headers["Access-Control-Allow-Methods"] == "POST"


# --- collect with a signed identity --------------------------------------------------------------

def _exposure(event_id, campaign, variation, version=1):
    return {"id": event_id, "type": "exposure", "version": version, "ts": int(time.time() * 1000),
            "campaign": campaign, "variation": variation, "holdout": False}


def _conversion(event_id, value):
    return {"id": event_id, "type": "conversion", "version": 1, "ts": int(time.time() * 1000), "goal": "purchase",
            "value": value}


def _counters(app, channel=None):
    with app.app_context():
        return {(c["campaign"], c["variation"], c["goal"]): c for c in get_store().counters("shop", channel)}


def test_one_customer_on_two_devices_is_counted_once_and_converts_across_them(app, client, site):
    with app.app_context():
        key = customer_key("shop", "1042")
        bundle = json.loads(get_store().get_version("shop")[1])
    variation = decide(bundle, {}, "x", customer=key)["variations"]["split"]
    desktop = identify(client, token(secret(app))).get_json()["identity"]
    phone = identify(client, token(secret(app)), visitor=PHONE).get_json()["identity"]
    for visitor, identity, n in ((VISITOR, desktop, 1), (PHONE, phone, 2)):
        batch = {"visitor_id": visitor, "identity": identity,
                 "events": [_exposure(f"split-expo-{n}", "split", variation)]}
        assert client.post(COLLECT, data=json.dumps(batch)).status_code == 204
    # the phone buys; the conversion counts for the customer's assignment, once
    batch = {"visitor_id": PHONE, "identity": phone, "events": [_conversion("buy-000001", 30)]}
    assert client.post(COLLECT, data=json.dumps(batch)).status_code == 204
    counters = _counters(app)
    assert counters[("split", variation, None)]["visitors"] == 1
    assert counters[("split", variation, "purchase")]["conversions"] == 1
    assert counters[("split", variation, "purchase")]["revenue"] == 30
    with app.app_context():
        assert get_store().linked_visitors("shop", key) == sorted([VISITOR, PHONE])


def test_customer_exposures_need_a_valid_identity_of_this_visitor_and_site(app, client, site):
    make_site(app, "other")
    with app.app_context():
        get_store().save_draft("other", json.dumps(CONFIG))
    with app.app_context():
        bundle = json.loads(get_store().get_version("shop")[1])
        variation = decide(bundle, {}, "x", customer=customer_key("shop", "1042"))["variations"]["split"]
    own = identify(client, token(secret(app))).get_json()["identity"]
    foreign = client.post("/v1/sites/other/identify", data=json.dumps(
        {"token": token(secret(app, "other")), "visitor_id": VISITOR})).get_json()["identity"]
    events = [_exposure("split-expo-x", "split", variation)]
    cases = {"no identity": (None, "not_identified", "/events/0/campaign"),
             "another visitor's identity": (own, "identity", "/identity"),
             "another site's identity": (foreign, "identity", "/identity"),
             "a made-up identity": ("a" * 40, "identity", "/identity")}
    for name, (identity, code, path) in cases.items():
        visitor = PHONE if name == "another visitor's identity" else VISITOR
        batch = {"visitor_id": visitor, "events": events, **({"identity": identity} if identity else {})}
        answer = client.post(COLLECT, data=json.dumps(batch))
        assert answer.status_code == 400, name
        assert answer.get_json()["details"][0] == {**answer.get_json()["details"][0], "code": code, "path": path}
    assert ("split", variation, None) not in _counters(app)
    wrong = "control" if variation == "b" else "b"
    batch = {"visitor_id": VISITOR, "identity": own, "events": [_exposure("split-expo-y", "split", wrong)]}
    answer = client.post(COLLECT, data=json.dumps(batch))
    assert answer.status_code == 400 and answer.get_json()["details"][0]["code"] == "bucketing"
    with app.app_context():
        assert get_store().rejections("shop")["identity"] == 3


# --- CRM data -----------------------------------------------------------------------------------

def test_csv_import_types_cells_and_lists_bad_lines_with_their_paths(app, client, shop):
    csv = ("customer_id,tier,ltv,last_order_at,zip,newsletter,card\n"
           "1,gold,1250.5,2026-10-02,01234,true,4111111111111111\n"
           "2,silver,80,2026-10-02T10:00:00Z,75001,false,\n"
           "3/4,gold,1,,,,\n"
           "5,gold,1,,,,,extra\n").encode()
    answer = client.put("/api/v1/sites/shop/customers", data=csv, headers={**shop, "Content-Type": "text/csv"})
    body = answer.get_json()
    assert (body["received"], body["upserted"]) == (4, 2)
    assert body["errors"] == [
        {"line": 4, "path": "/customer_id", "message": "must be 1 to 128 characters, without control characters or /"},
        {"line": 5, "path": "", "message": "has 8 cells; the header has 7"}]
    one = client.get("/api/v1/sites/shop/customers/1", headers=shop).get_json()
    assert one["attributes"] == {"tier": "gold", "ltv": 1250.5, "last_order_at": "2026-10-02", "zip": "01234",
                                 "newsletter": True, "card": "4111111111111111"}
    schema = client.get("/api/v1/sites/shop/crm-attributes", headers=shop).get_json()
    assert schema["customers"] == 2
    types = {a["name"]: a["type"] for a in schema["attributes"]}
    assert types == {"crm.last_order_at": "date", "crm.days_since_last_order": "number", "crm.ltv": "number",
                     "crm.newsletter": "boolean", "crm.tier": "string", "crm.zip": "mixed", "crm.card": "string"}
    assert next(a for a in schema["attributes"] if a["name"] == "crm.zip")["types"] == {"string": 1, "number": 1}
    bad_header = client.put("/api/v1/sites/shop/customers", data=b"id,tier\n1,gold\n",
                            headers={**shop, "Content-Type": "text/csv"}).get_json()
    assert bad_header["errors"][0]["message"].endswith("among them customer_id or email_sha256")


def test_jsonl_import_refuses_bad_records_alone(client, shop):
    body = jsonl({"customer_id": "1", "tier": "gold"}, {"tier": "x"}, {"customer_id": "2", "email_sha256": "ab" * 32},
                 {"customer_id": "3", "Tier": "x", "days_since_x": 4, "n": 1e300,
                  "nested": {"a": 1}}, {"email_sha256": "zz"}) + b"\n{not json\n"
    answer = client.put("/api/v1/sites/shop/customers", data=body,
                        headers={**shop, "Content-Type": "application/x-ndjson"}).get_json()
    assert answer["upserted"] == 1
    assert [(e["line"], e["path"]) for e in answer["errors"]] == [
        (2, ""), (3, ""), (4, "/Tier"), (4, "/days_since_x"), (4, "/n"), (4, "/nested"), (5, "/email_sha256"), (6, "")]


def test_patch_merges_and_put_replaces(app, client, site, shop):
    headers = {**shop, "Content-Type": "application/x-ndjson"}
    client.patch("/api/v1/sites/shop/customers", data=jsonl({"customer_id": "1042", "ltv": None, "segment": "b2b"}),
                 headers=headers)
    assert client.get("/api/v1/sites/shop/customers/1042", headers=shop).get_json()["attributes"] == {
        "tier": "gold", "last_order_at": days_ago(12), "segment": "b2b"}
    names = {a["name"]: a["customers"] for a in client.get("/api/v1/sites/shop/crm-attributes", headers=shop)
             .get_json()["attributes"]}
    assert names["crm.ltv"] == 1 and names["crm.segment"] == 1
    answer = client.put("/api/v1/sites/shop/customers", data=jsonl({"customer_id": "9", "tier": "gold"}),
                        headers=headers).get_json()
    assert (answer["upserted"], answer["removed"]) == (1, 2)
    assert client.get("/api/v1/sites/shop/customers/1042", headers=shop).status_code == 404
    schema = client.get("/api/v1/sites/shop/crm-attributes", headers=shop).get_json()
    assert schema == {"site": "shop", "customers": 1, "attributes": [
        {"name": "crm.tier", "type": "string", "types": {"string": 1}, "customers": 1}]}


def test_customer_endpoints_check_keys_and_ids(app, client, site, shop):
    read = make_read_key(app)
    assert client.get("/api/v1/sites/shop/customers/1042", headers=read).status_code == 200
    assert client.delete("/api/v1/sites/shop/customers/1042", headers=read).status_code == 403
    assert client.put("/api/v1/sites/shop/customers", data=b"", headers=read).status_code == 403
    assert client.get("/api/v1/sites/shop/customers/1042").status_code == 401
    assert client.get("/api/v1/sites/shop/customers/%01", headers=shop).status_code == 400
    assert client.get("/api/v1/sites/shop/customers/1042?email_sha256=x", headers=shop).status_code == 400
    assert client.get("/api/v1/sites/shop/customers/unknown", headers=shop).get_json()["error"] == "customer_not_found"
    assert client.put("/api/v1/sites/shop/customers", data=b"x", headers={**shop, "Content-Type": "text/html"}
                      ).status_code == 415


@pytest.fixture(params=["sqlite", "redis"])
def any_app(request, tmp_path):
    env = {"VITRINA_DATABASE": str(tmp_path / "v.sqlite3"), "VITRINA_SECRET_KEY": "test-secret-key-0123456789"}
    if request.param == "sqlite":
        yield create_app(env=env)
        return
    with redis_server() as (url, _, _):
        yield create_app(env={**env, "VITRINA_REDIS_URL": url})


def test_erasure_removes_the_customer_their_links_and_events_on_both_stores(any_app):
    app, client = any_app, any_app.test_client()
    shop = make_site(app, "shop")
    _publish(client, shop)
    with app.app_context():
        key = customer_key("shop", "1042")
        bundle = json.loads(get_store().get_version("shop")[1])
    variation = decide(bundle, {}, "x", customer=key)["variations"]["split"]
    for visitor, n in ((VISITOR, 1), (PHONE, 2)):
        identity = identify(client, token(secret(app)), visitor=visitor).get_json()["identity"]
        batch = {"visitor_id": visitor, "identity": identity,
                 "events": [_exposure(f"erase-expo-{n}", "split", variation), _conversion(f"erase-conv-{n}", 5)]}
        assert client.post(COLLECT, data=json.dumps(batch)).status_code == 204
    other = identify(client, token(secret(app), sub="77"), visitor="v1.00000000000000000000other").get_json()
    client.post(COLLECT, data=json.dumps({"visitor_id": "v1.00000000000000000000other", "identity": other["identity"],
                                          "events": [_exposure("keep-expo-1", "split", decide(
                                              bundle, {}, "x", customer=other["customer"])["variations"]["split"])]}))
    before = _counters(app)
    answer = client.delete("/api/v1/sites/shop/customers/1042", headers=shop)
    assert answer.status_code == 200
    # each browser's conversion; under the customer, both browsers' exposures and the two conversions
    assert answer.get_json() == {"customer_id": "1042", "erased": {"customers": 1, "visitors": 2, "events": 6,
                                                                   "interactions": 0}}
    assert client.get("/api/v1/sites/shop/customers/1042", headers=shop).status_code == 404
    assert _counters(app) == before
    with app.app_context():
        store = get_store()
        assert store.linked_visitors("shop", key) == []
        if hasattr(store, "r"):
            raw = [f["visitor"] for _, f in store.r.xrange("vitrina:{shop}:events")]
        else:
            raw = [r[0] for r in store._db().execute("SELECT visitor_id FROM events WHERE visitor_id != ''")]
    assert raw == [other["customer"]]  # the other customer's exposure (of a customer-bucketed campaign) stays
    names = {a["name"] for a in client.get("/api/v1/sites/shop/crm-attributes", headers=shop).get_json()["attributes"]}
    assert "crm.ltv" in names  # 77 still has one
    assert client.delete("/api/v1/sites/shop/customers/1042", headers=shop).get_json()["erased"]["customers"] == 0


def _publish(client, shop):
    body = jsonl({"customer_id": "1042", "tier": "gold", "ltv": 1250.5, "last_order_at": days_ago(12)},
                 {"customer_id": "77", "tier": "silver", "ltv": 80, "last_order_at": days_ago(200)})
    client.put("/api/v1/sites/shop/customers", data=body, headers={**shop, "Content-Type": "application/x-ndjson"})
    assert client.put("/api/v1/sites/shop/config", json=CONFIG, headers=shop).status_code == 200
    assert client.post("/api/v1/sites/shop/publish", headers=shop).status_code == 201


# --- config validation of crm.* --------------------------------------------------------------------

def test_crm_conditions_are_checked_against_the_customers_data(client, site, shop):
    config = {**CONFIG, "segments": {**CONFIG["segments"], "big": {"crm.ltv": {"$gte": "1000"}},
                                     "unknown": {"crm.loyalty_points": {"$gt": 10}},
                                     "date": {"crm.last_order_at": {"$lt": 30}},
                                     "fine": {"crm.ltv": {"$in": [1, 2]}, "crm.last_order_at": {"$gt": "2026-01-01"}}}}
    answer = client.put("/api/v1/sites/shop/config", json=config, headers=shop)
    assert answer.status_code == 400
    assert answer.get_json()["details"] == [
        {"path": "/segments/big/crm.ltv/$gte", "message": "crm.ltv is a number in the site's customer data; "
                                                          "\"1000\" is not"},
        {"path": "/segments/date/crm.last_order_at/$lt", "message": "crm.last_order_at is a date in the site's "
         "customer data; 30 is not; for days, use crm.days_since_last_order"}]
    del config["segments"]["big"], config["segments"]["date"]
    answer = client.put("/api/v1/sites/shop/config", json=config, headers=shop).get_json()
    assert answer["warnings"] == [{"path": "/segments/unknown/crm.loyalty_points", "message": "no customer has "
                                   "crm.loyalty_points yet (GET .../crm-attributes lists the site's CRM attributes); "
                                   "only tokens' crm claims can set it"}]


def test_the_bundle_lists_the_crm_names_campaigns_read_and_customer_bucketing(app, client, site):
    bundle = json.loads(client.get("/v1/sites/shop/bundle.json").data)["bundle"]
    assert bundle["crm"] == ["days_since_last_order", "tier"]
    assert {c["key"]: c["bucket_by"] for c in bundle["campaigns"]} == {
        "loyalty": "customer", "winback": "customer", "split": "customer", "morning": "visitor"}


# --- decide with inputs ------------------------------------------------------------------------

DECIDE = "/api/v1/sites/shop/decide"
IPHONE = ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
          "Version/17.0 Mobile/15E148 Safari/604.1")


def _at(hour_utc):
    """Today at that hour UTC, in ms."""
    day = datetime.now(timezone.utc).replace(hour=hour_utc, minute=30, second=0, microsecond=0)
    return int(day.timestamp() * 1000)


def test_decide_resolves_crm_time_device_and_geo_as_the_browser_would(app, client, site):
    body = {"customer_id": "1042", "ip": "81.2.69.142", "user_agent": IPHONE, "now": _at(20),
            "timezone": "Europe/London"}
    answer = client.post(DECIDE, json=body, headers=site).get_json()
    assert answer["variations"]["loyalty"] == "gold-hero"
    assert answer["reasons"]["morning"] == "conditions not matched"  # 20:30 in London
    assert answer["resolved"]["crm"]["days_since_last_order"] == 12
    assert answer["resolved"]["device"] == {"type": "mobile", "os": "ios", "browser": "safari"}
    assert answer["resolved"]["geo"]["country"] == "GB"
    assert answer["resolved"]["time"]["timezone"] == "Europe/London"
    assert answer["resolved"]["customer"] == {"known": True} and answer["ignored"] == []
    # the same decision from the attributes the browser would collect
    with app.app_context():
        bundle = json.loads(get_store().get_version("shop")[1])
        key = customer_key("shop", "1042")
    browser = decide(bundle, {"crm": answer["resolved"]["crm"], "device": answer["resolved"]["device"],
                              "geo": answer["resolved"]["geo"], "time": {k: v for k, v in answer["resolved"]["time"]
                                                                         .items() if k != "timezone"}},
                     key, now=body["now"], customer=key)
    assert {k: answer[k] for k in browser} == browser
    morning = client.post(DECIDE, json={**body, "now": _at(8)}, headers=site).get_json()
    assert morning["variations"]["morning"] == "coffee"
    tokyo = client.post(DECIDE, json={**body, "now": _at(8), "timezone": "Asia/Tokyo"}, headers=site).get_json()
    assert tokyo["reasons"]["morning"] == "conditions not matched"  # 17:30 in Tokyo
    offset = client.post(DECIDE, json={"visitor_id": VISITOR, "now": _at(8), "utc_offset": 9 * 60}, headers=site)
    assert offset.get_json()["resolved"]["time"]["hour"] == 17


def test_without_a_time_zone_time_is_the_ip_s_zone_or_utc_never_missing(client, site):
    late = client.post(DECIDE, json={"visitor_id": VISITOR, "now": _at(20)}, headers=site).get_json()
    assert late["reasons"]["morning"] == "conditions not matched"  # before: a missing time.hour matched $lt 12
    assert late["resolved"]["time"]["timezone"] == "UTC"
    geo = client.post(DECIDE, json={"visitor_id": VISITOR, "now": _at(20), "ip": "81.2.69.142"},
                      headers=site).get_json()
    assert geo["resolved"]["time"]["timezone"] == "Europe/London"


def test_decide_says_which_inputs_it_ignored(client, site):
    body = {"visitor_id": VISITOR, "ip": "81.2.69.142", "user_agent": IPHONE, "timezone": "Europe/Paris",
            "utc_offset": 60, "attributes": {"geo": {"country": "FR"}, "device": {"type": "desktop", "os": "macos",
                                                                                   "browser": "chrome"}}}
    answer = client.post(DECIDE, json=body, headers=site).get_json()
    assert answer["ignored"] == [
        {"path": "/ip", "message": "ignored: attributes.geo is given"},
        {"path": "/user_agent", "message": "ignored: attributes.device gives type, os and browser"},
        {"path": "/utc_offset", "message": "ignored: timezone is given"}]
    partial = client.post(DECIDE, json={**body, "attributes": {"device": {"type": "tablet"}, "time": {"hour": 9}}},
                          headers=site).get_json()
    assert partial["resolved"]["device"] == {"os": "ios", "browser": "safari"}
    assert [i["path"] for i in partial["ignored"]] == ["/timezone", "/utc_offset"]
    assert partial["variations"]["morning"] == "coffee"


def test_decide_honours_caps_and_sticky_assignments_when_given(app, client, site):
    base = {"customer_id": "1042", "now": _at(8)}
    capped = client.post(DECIDE, json={**base, "counts": {"morning": {"visitor": 3}}}, headers=site).get_json()
    assert capped["variations"]["morning"] == "coffee"  # no cap in the config: counts change nothing
    with app.app_context():
        key = customer_key("shop", "1042")
    natural = client.post(DECIDE, json=base, headers=site).get_json()["variations"]["split"]
    other = "control" if natural == "b" else "b"
    sticky = {"split": {"seed": "split", "variation": other, "customer": key}}
    kept = client.post(DECIDE, json={**base, "sticky": sticky}, headers=site).get_json()
    assert (kept["variations"]["split"], kept["reasons"]["split"]) == (other, f"sticky {other}")
    stranger = {"split": {"seed": "split", "variation": other, "customer": "c1.someone-else"}}
    assert client.post(DECIDE, json={**base, "sticky": stranger}, headers=site).get_json()["variations"]["split"] == natural
    anonymous = client.post(DECIDE, json={"visitor_id": VISITOR, "now": _at(8)}, headers=site).get_json()
    assert anonymous["reasons"]["split"] == "not identified" and anonymous["reasons"]["loyalty"] == "not identified"


def test_caps_counts_apply_to_capped_campaigns(app, client, shop):
    config = {"campaigns": [{"key": "once", "cap": {"per_session": 1}, "variations": [{"key": "v", "actions": [
        {"selector": "#x", "text": "y"}]}]}]}
    client.put("/api/v1/sites/shop/config", json=config, headers=shop)
    client.post("/api/v1/sites/shop/publish", headers=shop)
    answer = client.post(DECIDE, json={"visitor_id": VISITOR, "counts": {"once": {"session": 1}}}, headers=shop)
    assert answer.get_json()["reasons"]["once"] == "capped"


@pytest.mark.parametrize("body, path", [
    ({"customer_id": "a/b"}, "/customer_id"), ({"customer_id": ""}, "/customer_id"),
    ({"visitor_id": "v1", "ip": "999.1.1.1"}, "/ip"), ({"visitor_id": "v1", "timezone": "Mars/Olympus"}, "/timezone"),
    ({"visitor_id": "v1", "timezone": "../../etc/passwd"}, "/timezone"),
    ({"visitor_id": "v1", "utc_offset": 900}, "/utc_offset"), ({"visitor_id": "v1", "utc_offset": 1.5}, "/utc_offset"),
    ({"visitor_id": "v1", "sticky": {"a": {"seed": "a"}}}, "/sticky/a/variation"),
    ({"visitor_id": "v1", "counts": {"a": {"visitor": -1}}}, "/counts/a/visitor"), ({}, "/visitor_id"),
])
def test_bad_decide_inputs_are_400_with_their_path(client, site, body, path):
    answer = client.post(DECIDE, json=body, headers=site)
    assert answer.status_code == 400, answer.get_json()
    assert path in [d["path"] for d in answer.get_json()["details"]]


# --- email content ---------------------------------------------------------------------------------

def test_email_content_gives_the_customer_s_variation_and_records_an_email_exposure(app, client, site):
    read = make_read_key(app)
    url = "/api/v1/sites/shop/customers/77/content?campaigns=winback,split,loyalty"
    answer = client.get(url, headers=read)
    assert answer.status_code == 200 and answer.headers["Cache-Control"] == "no-store"
    body = answer.get_json()
    decided = client.post(DECIDE, json={"customer_id": "77"}, headers=site).get_json()
    by_key = {c["key"]: c for c in body["campaigns"]}
    assert [c["key"] for c in body["campaigns"]] == ["winback", "split", "loyalty"]
    for key in ("winback", "split"):
        assert by_key[key]["variation"] == decided["variations"][key]
    assert by_key["loyalty"] == {"key": "loyalty", "variation": None, "holdout": False,
                                 "reason": "segment gold not matched", "actions": [], "recommendations": []}
    if by_key["winback"]["variation"] == "offer":
        assert by_key["winback"]["actions"] == [{"selector": "#banner", "text": "10% off"}]
    email = _counters(app, "email")
    assert email[("winback", by_key["winback"]["variation"], None)]["visitors"] == 1
    assert ("loyalty", "gold-hero", None) not in email and _counters(app, "web") == {}
    # the same customer on the site later: counted once, in the channel of the first exposure
    identity = identify(client, token(secret(app), sub="77")).get_json()["identity"]
    events = [_exposure("web-winback-1", "winback", by_key["winback"]["variation"]), _conversion("web-buy-0001", 12)]
    assert client.post(COLLECT, data=json.dumps({"visitor_id": VISITOR, "identity": identity, "events": events})
                       ).status_code == 204
    email = _counters(app, "email")
    assert email[("winback", by_key["winback"]["variation"], None)]["visitors"] == 1
    assert email[("winback", by_key["winback"]["variation"], "purchase")]["revenue"] == 12
    assert ("winback", by_key["winback"]["variation"], None) not in _counters(app, "web")


def make_read_key(app):
    from server.web.auth import create_key
    with app.app_context():
        return {"Authorization": "Bearer " + create_key("shop", "mailer", "read")}


def test_email_content_refuses_unknown_campaigns_and_unpublished_sites(app, client, shop, site):
    answer = client.get("/api/v1/sites/shop/customers/77/content?campaigns=winback,nope&x=1", headers=shop)
    assert answer.status_code == 400
    assert [d["path"] for d in answer.get_json()["details"]] == ["", "/campaigns/1"]
    assert client.get("/api/v1/sites/shop/customers/77/content", headers=shop).status_code == 400
    assert client.get("/api/v1/sites/shop/customers/77/content?campaigns=split&timezone=Nowhere",
                      headers=shop).status_code == 400
    other = make_site(app, "other")
    assert client.get("/api/v1/sites/other/customers/77/content?campaigns=split", headers=other).status_code == 409


def test_email_content_shows_recommendations_as_data(app, site):
    """A `recommend` action (issue 11's shape) in a variation: its items, from the catalogue."""
    from server.catalog.importer import import_orders, import_products
    from server.identity.email import content
    from server.recs.build import build_site
    feed = [{"id": f"sku-{i}", "title": f"Mug {i}", "link": f"https://shop.example/p/{i}",
             "image_link": f"https://shop.example/i/{i}.png", "price": f"{10 + i}.00 EUR", "availability": "in_stock",
             "product_type": "Kitchen > Mugs"} for i in range(3)]
    orders = [{"order_id": f"o{n}", "customer_id": f"c{n}", "items": [{"id": "sku-1"}]} for n in range(3)]
    with app.app_context():
        store = get_store()
        import_products(store, "shop", ((n, p, None) for n, p in enumerate(feed, 1)), replace=True)
        import_orders(store, "shop", ((n, o, None) for n, o in enumerate(orders, 1)))
        build_site(store, "shop")
        bundle = json.loads(store.get_version("shop")[1])
        recommending = {"key": "recs", "seed": "recs", "bucket_by": "customer", "variations": [
            {"key": "v", "weight": 1, "actions": [{"selector": "#reco", "recommend": {"strategy": "bestsellers", "n": 2}}]}]}
        answer = content("shop", {**bundle, "campaigns": [recommending]}, "77", ["recs"], timezone.utc)
    (campaign,) = answer["campaigns"]
    assert campaign["variation"] == "v"
    (recs,) = campaign["recommendations"]
    assert (recs["selector"], recs["strategy"], recs["served_by"]) == ("#reco", "bestsellers", "bestsellers")
    assert [item["id"] for item in recs["items"]] == ["sku-1"]
    assert recs["items"][0]["title"] == "Mug 1" and recs["items"][0]["price"] == 11.0


# --- logs ---------------------------------------------------------------------------------------------

def test_the_access_log_never_holds_a_customer_id_or_a_token():
    assert redacted(b"/api/v1/sites/shop/customers/jane%40example.com/content?campaigns=a&email_sha256=abc") == \
        b"/api/v1/sites/shop/customers/-/content?campaigns=a&email_sha256=-"
    assert redacted(b"/v1/sites/shop/identify?token=eyJhbGciOi.x.y&v=2") == b"/v1/sites/shop/identify?token=-&v=2"
    assert redacted(b"/v1/sites/shop/tag.js?v=3") == b"/v1/sites/shop/tag.js?v=3"


def test_the_bucket_a_customer_gets_is_their_key_s_not_their_id_s(app, site):
    with app.app_context():
        key = customer_key("shop", "1042")
    assert key.startswith("c1.") and len(key) == 35
    assert bucket_hash("split", key) != bucket_hash("split", "1042")


def test_results_filter_by_channel(app, client, site):
    client.get("/api/v1/sites/shop/customers/77/content?campaigns=split", headers=site)
    email = client.get("/api/v1/sites/shop/results?channel=email", headers=site).get_json()
    web = client.get("/api/v1/sites/shop/results?channel=web", headers=site).get_json()
    both = client.get("/api/v1/sites/shop/results", headers=site).get_json()
    visitors = {name: sum(v["visitors"] for c in answer["campaigns"] if c["key"] == "split" for v in c["variations"])
                for name, answer in (("email", email), ("web", web), ("both", both))}
    assert visitors == {"email": 1, "web": 0, "both": 1}
    assert email["channel"] == "email" and "channel" not in both
    assert client.get("/api/v1/sites/shop/results?channel=sms", headers=site).status_code == 400


def test_the_python_minting_example_of_the_reference_gives_a_token_identify_takes(app, client, site):
    text = (REPO / "docs" / "reference" / "identity.md").read_text()
    block = re.search(r"```python\n(.*?)```", text, re.S).group(1)
    assert len(block.strip().splitlines()) == 3
    scope = {"SECRET": secret(app), "customer_id": 1042}
    exec(block, scope)  # the reference's own three lines
    assert identify(client, scope["token"]).get_json()["crm"]["tier"] == "gold"


# --- the real CLI and server ------------------------------------------------------------------------

def test_customers_import_cli_lists_bad_lines_and_stores_good_ones(tmp_path):
    env = {**os.environ, "VITRINA_DATABASE": str(tmp_path / "v.sqlite3"), "VITRINA_SECRET_KEY": "cli-secret-key-0123456789"}
    assert vitrina(env, "sites", "create", "shop").returncode == 0
    crm = tmp_path / "crm.csv"
    crm.write_text("customer_id,tier,ltv\n1042,gold,1250.5\n3/4,gold,1\n")
    run = vitrina(env, "customers", "import", "shop", str(crm))
    assert run.returncode == 1
    assert json.loads(run.stdout) == {"received": 2, "upserted": 1, "removed": 0}
    assert f"{crm}:3: /customer_id: must be 1 to 128 characters" in run.stderr
    patch = tmp_path / "more.jsonl"
    patch.write_text(json.dumps({"customer_id": "1042", "ltv": None, "segment": "b2b"}) + "\n")
    assert vitrina(env, "customers", "import", "shop", str(patch), "--patch").returncode == 0
    app = create_app(env={k: env[k] for k in ("VITRINA_DATABASE", "VITRINA_SECRET_KEY")})
    with app.app_context():
        assert stored("shop", "1042")["attributes"] == {"tier": "gold", "segment": "b2b"}


def test_the_server_log_holds_no_customer_id_email_hash_token_or_secret(tmp_path):
    env = {"VITRINA_DATABASE": str(tmp_path / "v.sqlite3"), "VITRINA_SECRET_KEY": "log-secret-key-0123456789"}
    full = {**os.environ, **env}
    key = vitrina(full, "sites", "create", "shop").stdout.strip().splitlines()[-1]
    identity_secret = vitrina(full, "sites", "identity-secret", "shop").stdout.strip().splitlines()[-1]
    customer, email = "jane.doe@example.com", "cd" * 32
    jane = token(identity_secret, sub=customer, email_sha256=email)
    log = tmp_path / "gunicorn.log"

    def call(method, url, body=None, content_type="application/json"):
        request = urllib.request.Request(url, data=body, method=method, headers={
            "Authorization": f"Bearer {key}", "Content-Type": content_type})
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status
        except urllib.error.HTTPError as e:
            return e.code

    with gunicorn_server(env, workers=1, log_path=log) as url:
        api, quoted = f"{url}/api/v1/sites/shop", urllib.parse.quote(customer)
        assert call("PUT", api + "/customers", jsonl({"customer_id": customer, "tier": "gold"}),
                    "application/x-ndjson") == 200
        assert call("PUT", api + "/config", json.dumps(CONFIG).encode()) == 200
        assert call("POST", api + "/publish") == 201
        body = json.dumps({"token": jane, "visitor_id": VISITOR}).encode()
        assert call("POST", f"{url}/v1/sites/shop/identify?token={jane}", body, "text/plain") == 200
        assert call("GET", f"{api}/customers/{quoted}?email_sha256={email}") == 200
        assert call("GET", f"{api}/customers/{quoted}/content?campaigns=split") == 200
        assert call("POST", api + "/decide", json.dumps({"customer_id": customer}).encode()) == 200
        assert call("DELETE", f"{api}/customers/{quoted}") == 200
    text = log.read_text()
    assert text.count("/customers/-") == 3 and "identify?token=- " in text
    for secret_text in (customer, quoted, email, jane, jane.split(".")[2], identity_secret):
        assert secret_text not in text


# --- tokens against anything --------------------------------------------------------------------------

JSON_VALUES = st.recursive(st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats(allow_nan=False)
                           | st.text(max_size=20),
                           lambda kids: st.lists(kids, max_size=3) | st.dictionaries(st.text(max_size=8), kids,
                                                                                   max_size=3), max_leaves=10)
CLAIMS = st.fixed_dictionaries({}, optional={
    "sub": st.one_of(st.text(max_size=140), JSON_VALUES), "iat": st.one_of(st.integers(0, 2**40), JSON_VALUES),
    "exp": st.one_of(st.integers(0, 2**40), JSON_VALUES), "nbf": JSON_VALUES, "aud": JSON_VALUES,
    "crm": JSON_VALUES, "email_sha256": JSON_VALUES, "x": JSON_VALUES})


def _signed(header, payload, key):
    """A JWS with exactly this header and payload, HMAC-SHA256-signed whatever the header says."""
    part = lambda value: jwt.utils.base64url_encode(json.dumps(value).encode())  # noqa: E731
    head = part(header) + b"." + part(payload)
    return (head + b"." + jwt.utils.base64url_encode(hmac.new(key.encode(), head, hashlib.sha256).digest())).decode()


@settings(max_examples=300, deadline=None)
@given(claims=CLAIMS, header=st.dictionaries(st.sampled_from(["alg", "typ", "kid", "crit", "b64"]), JSON_VALUES,
                                             max_size=3), raw=st.text(max_size=200))
def test_any_token_is_either_claims_or_a_refusal_with_a_code(claims, header, raw):
    key = "vis_" + "k" * 43
    now = int(time.time())
    signed = _signed({"alg": "HS256", "typ": "JWT", **header}, {"iat": now, "exp": now + 60, **claims}, key)
    for candidate in (signed, raw, signed[:-3], ".".join(signed.split(".")[:2]) + "."):
        try:
            found = verify_token("shop", candidate, [key])
        except TokenRefused as e:
            assert e.code in {"malformed", "algorithm", "signature", "expired", "not_yet_valid", "audience",
                              "lifetime", "subject", "claims"} and str(e)
        else:
            assert isinstance(found["sub"], str) and found["exp"] - found["iat"] <= 7 * DAY
