"""Publishing: immutable signed versions, rollback, key rotation, refusal of tampered bundles."""
import sqlite3

from server import create_app


def test_publish_compiles_live_campaigns_in_priority_order(client, published):
    bundle = client.get("/v1/sites/shop/bundle.json").get_json()["bundle"]
    assert bundle["version"] == 1 and bundle["site"] == "shop"
    assert [c["key"] for c in bundle["campaigns"]] == ["hero-newsletter", "cta-wording", "late-reco", "cart-cross-sell",
                                                      "product-upsell", "social-proof", "menu-affinity"]
    hero = bundle["campaigns"][0]
    assert hero["seed"] == "hero-newsletter" and hero["traffic"] == 1
    assert [v["weight"] for v in hero["variations"]] == [1.0]
    assert bundle["settings"] == {"holdout": 0.05, "consent": "implied", "antiflicker_ms": 400}


def test_paused_and_draft_campaigns_are_not_delivered(client, shop, demo_config):
    demo_config["campaigns"][0]["status"] = "paused"
    demo_config["campaigns"][1]["status"] = "draft"
    client.put("/api/v1/sites/shop/config", json=demo_config, headers=shop)
    client.post("/api/v1/sites/shop/publish", headers=shop)
    bundle = client.get("/v1/sites/shop/bundle.json").get_json()["bundle"]
    assert [c["key"] for c in bundle["campaigns"]] == ["late-reco", "cart-cross-sell", "product-upsell", "social-proof",
                                                      "menu-affinity"]


def test_publish_without_draft_is_409(client, shop):
    response = client.post("/api/v1/sites/shop/publish", headers=shop)
    assert response.status_code == 409
    assert response.get_json()["error"] == "no_draft"


def test_versions_are_listed_newest_first_and_rollback_republishes(client, published, demo_config):
    demo_config["campaigns"][0]["variations"][0]["actions"][0]["text"] = "second text"
    client.put("/api/v1/sites/shop/config", json=demo_config, headers=published)
    assert client.post("/api/v1/sites/shop/publish", headers=published).get_json()["version"] == 2
    versions = client.get("/api/v1/sites/shop/versions", headers=published).get_json()["versions"]
    assert [v["version"] for v in versions] == [2, 1]
    response = client.post("/api/v1/sites/shop/rollback", json={"version": 1}, headers=published)
    assert response.status_code == 201 and response.get_json()["version"] == 3
    bundle = client.get("/v1/sites/shop/bundle.json").get_json()["bundle"]
    assert bundle["version"] == 3 and bundle["rolled_back_from"] == 1
    assert bundle["campaigns"][0]["variations"][0]["actions"][0]["text"] == "10% off for our subscribers"


def test_rollback_to_unknown_version_is_404(client, published):
    assert client.post("/api/v1/sites/shop/rollback", json={"version": 9}, headers=published).status_code == 404
    assert client.post("/api/v1/sites/shop/rollback", json={"version": "1"}, headers=published).status_code == 400


def test_tampered_bundle_is_never_served(app, client, published):
    db = sqlite3.connect(app.config["VITRINA_DATABASE"])
    db.execute("UPDATE versions SET payload = replace(payload, '10% off', '90% off')")
    db.commit()
    for path in ("/v1/sites/shop/bundle.json", "/v1/sites/shop/tag.js"):
        response = client.get(path)
        assert response.status_code == 503, path
        assert b"90% off" not in response.data
        assert response.get_json()["error"] == "bundle_signature_invalid"


def test_rotated_keys_still_verify_and_unknown_keys_do_not(app, client, published, tmp_path):
    db = app.config["VITRINA_DATABASE"]
    rotated = create_app(env={"VITRINA_DATABASE": db,
                              "VITRINA_SECRET_KEY": "fresh-key-0123456789abcd,test-secret-key-0123456789"})
    assert rotated.test_client().get("/v1/sites/shop/bundle.json").status_code == 200
    stranger = create_app(env={"VITRINA_DATABASE": db, "VITRINA_SECRET_KEY": "another-key-0123456789abc"})
    assert stranger.test_client().get("/v1/sites/shop/bundle.json").status_code == 503


def test_new_versions_are_signed_with_the_first_key(app, client, published, demo_config):
    db = app.config["VITRINA_DATABASE"]
    rotated = create_app(env={"VITRINA_DATABASE": db,
                              "VITRINA_SECRET_KEY": "fresh-key-0123456789abcd,test-secret-key-0123456789"})
    rc = rotated.test_client()
    rc.put("/api/v1/sites/shop/config", json=demo_config, headers=published)
    assert rc.post("/api/v1/sites/shop/publish", headers=published).get_json()["version"] == 2
    only_new = create_app(env={"VITRINA_DATABASE": db, "VITRINA_SECRET_KEY": "fresh-key-0123456789abcd"})
    assert only_new.test_client().get("/v1/sites/shop/bundle.json").get_json()["bundle"]["version"] == 2
