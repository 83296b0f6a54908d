"""Revisions (server/configs/publishing.py): signed documents added to a published version without
a new version; tag.js and bundle.json serve version and revision together."""
import json

import pytest
from conftest import EXPERIMENT_CONFIG

from server import create_app
from server.configs import publishing
from server.configs.signing import (
    REVISION_SALT,
    SignatureInvalid,
    canonical_json,
    verify,
)
from server.store import get_store

KEYS = ["test-secret-key-0123456789"]


def _publish(client, auth, config=EXPERIMENT_CONFIG):
    assert client.put("/api/v1/sites/shop/config", json=config, headers=auth).status_code == 200
    return client.post("/api/v1/sites/shop/publish", headers=auth).get_json()["version"]


def _revise(app, parts):
    with app.app_context():
        return publishing.publish_revision("shop", parts)


def _bundle_json(client, **headers):
    return client.get("/v1/sites/shop/bundle.json", headers=headers)


def test_nothing_published_means_no_revision(app, shop):
    assert _revise(app, {"allocations": {}}) is None


def test_a_revision_is_served_with_its_version_signed_apart(app, client, shop):
    _publish(client, shop)
    before = _bundle_json(client)
    assert "revision" not in before.get_json()["bundle"]
    assert _revise(app, {"allocations": {"hero": {"weights": {"default": [0.2, 0.8]}}}}) == 1
    after = _bundle_json(client)
    body = after.get_json()
    assert after.headers["ETag"] != before.headers["ETag"] and "-r1-" in after.headers["ETag"]
    revision = body["bundle"]["revision"]
    assert revision["revision"] == 1 and revision["version"] == 1 and revision["site"] == "shop"
    assert revision["allocations"] == {"hero": {"weights": {"default": [0.2, 0.8]}}}
    # The version's signature covers the bundle without its revision; the revision's, the revision.
    plain = {k: v for k, v in body["bundle"].items() if k != "revision"}
    verify(canonical_json(plain), body["signature"], KEYS)
    verify(canonical_json(revision), body["revision_signature"], KEYS, REVISION_SALT)
    with pytest.raises(SignatureInvalid):  # never interchangeable
        verify(canonical_json(revision), body["revision_signature"], KEYS)
    tag = client.get("/v1/sites/shop/tag.js")
    assert b'"revision":{' in tag.data and b'"allocations"' in tag.data
    # a revalidation with the old ETag gets the new body
    assert _bundle_json(client, **{"If-None-Match": before.headers["ETag"]}).status_code == 200
    assert _bundle_json(client, **{"If-None-Match": after.headers["ETag"]}).status_code == 304


def test_parts_are_kept_across_revisions_and_dropped_by_none(app, client, shop):
    _publish(client, shop)
    _revise(app, {"allocations": {"a": 1}})
    _revise(app, {"models": {"m": 2}})
    revision = _bundle_json(client).get_json()["bundle"]["revision"]
    assert (revision["revision"], revision["allocations"], revision["models"]) == (2, {"a": 1}, {"m": 2})
    _revise(app, {"models": None})
    revision = _bundle_json(client).get_json()["bundle"]["revision"]
    assert revision["revision"] == 3 and "models" not in revision and revision["allocations"] == {"a": 1}
    with pytest.raises(ValueError):
        _revise(app, {"version": 9})


def test_a_new_version_is_served_without_the_older_versions_revision(app, client, shop):
    _publish(client, shop)
    _revise(app, {"allocations": {"a": 1}})
    assert _publish(client, shop) == 2
    bundle = _bundle_json(client).get_json()["bundle"]
    assert bundle["version"] == 2 and "revision" not in bundle
    assert b'"revision"' not in client.get("/v1/sites/shop/tag.js").data
    # and the parts of the older version's revision do not carry over to the new version's
    _revise(app, {"models": {"m": 1}})
    revision = _bundle_json(client).get_json()["bundle"]["revision"]
    assert (revision["version"], revision["revision"], "allocations" in revision) == (2, 2, False)


def test_another_process_serves_a_revision_at_once(app, client, shop, tmp_path):
    """Two apps over one database stand for two server processes: the revision one makes moves
    the version token every process watches, as a publish does."""
    _publish(client, shop)
    other = create_app(env={"VITRINA_DATABASE": app.config["VITRINA_DATABASE"], "VITRINA_SECRET_KEY": KEYS[0]})
    other_client = other.test_client()
    assert "revision" not in _bundle_json(other_client).get_json()["bundle"]  # memoised in `other`
    _revise(app, {"allocations": {"a": 1}})
    assert _bundle_json(other_client).get_json()["bundle"]["revision"]["revision"] == 1


def test_a_tampered_revision_is_not_served(app, client, shop):
    _publish(client, shop)
    with app.app_context():
        store = get_store()
        store.add_revision("shop", lambda n: (1, json.dumps({"site": "shop", "version": 1, "revision": n,
                                                              "made_at": "x", "allocations": {}}), "forged", "x"))
        publishing.latest_versions().announce("shop")
    response = _bundle_json(client)
    assert response.status_code == 200 and "revision" not in response.get_json()["bundle"]
