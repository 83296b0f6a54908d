"""Conversion-probability targeting on the server (server/predict): feature vectors through
collect into both stores' rows, training and its floor, the models part of the revision, decide
with predict.<goal>, warnings on saving, the CLI and the API. The twins' parity is spec/08-predict.json."""
import json
import random
import time
import uuid

import pytest
from conftest import make_site

from server.cli import main
from server.delivery.sdk_asset import REPO_SDK
from server.predict import jobs
from server.predict.features import features
from server.predict.scorer import score
from server.predict.synthetic import generate, visitor_tree
from server.predict.training import AUC_FLOOR, examples, train
from server.store import get_store

NOW = int(time.time() * 1000)
MANIFEST = json.loads((REPO_SDK.parent / "manifest.json").read_text())
PREDICT_MODULE = (REPO_SDK.parent / MANIFEST["modules"]["predict"]).read_bytes()
DISCOUNT = [{"selector": "#offer", "text": "10% off today"}]
CONFIG = {
    "segments": {"unlikely": {"predict.purchase": {"$lt": 0.1}}, "likely": {"predict.purchase": {"$gte": 0.4}}},
    "campaigns": [
        {"key": "hero", "type": "experiment", "variations": [{"key": "control"}, {"key": "b"}], "goals": ["purchase"]},
        {"key": "discount", "segment": "unlikely", "variations": [{"key": "offer", "actions": DISCOUNT}],
         "goals": ["purchase"]},
    ],
    "goals": {"purchase": {"event": "purchase"}},
    "settings": {"holdout": 0},
}


def _publish(client, auth, config=CONFIG):
    saved = client.put("/api/v1/sites/shop/config", json=config, headers=auth)
    assert saved.status_code == 200, saved.get_json()
    assert client.post("/api/v1/sites/shop/publish", headers=auth).status_code == 201
    return saved.get_json()["warnings"]


def _bundle(client):
    return client.get("/v1/sites/shop/bundle.json").get_json()["bundle"]


def _record_generated(app, sessions, seed=0, site="shop"):
    rows, truth = generate(sessions, seed=seed)
    with app.app_context():
        store = get_store()
        for row in rows:
            store.record_features(site, row["visitor"], [{**row, "features": json.dumps(row["features"])}])
    return truth


def _collect(client, visitor, events):
    return client.post("/v1/sites/shop/collect", data=json.dumps({"visitor_id": visitor, "events": events}),
                       headers={"Content-Type": "text/plain;charset=UTF-8"})


def _event(kind, **fields):
    base = {"id": uuid.uuid4().hex[:20], "type": kind, "version": 1, "ts": NOW}
    base.update({"campaign": "hero", "variation": "control", "holdout": False} if kind == "exposure"
                else {"goal": "purchase"})
    return {**base, **fields}


def _hero_control_visitor(client):
    from server.events.batch import bucketed_assignment
    bundle = _bundle(client)
    hero = next(c for c in bundle["campaigns"] if c["key"] == "hero")
    return next(v for v in (f"v1.{i:024x}" for i in range(1000)) if bucketed_assignment(bundle, hero, v)[1] == "control")


# --- compiling, serving, warnings ---

def test_a_config_reading_predict_lists_its_goals_and_tag_js_carries_the_module(client, shop):
    _publish(client, shop)
    assert _bundle(client)["predict"] == ["purchase"]
    assert PREDICT_MODULE in client.get("/v1/sites/shop/tag.js").data


def test_a_config_without_predict_carries_neither_the_list_nor_the_module(client, shop):
    config = {**CONFIG, "segments": {}, "campaigns": CONFIG["campaigns"][:1]}
    _publish(client, shop, config)
    assert "predict" not in _bundle(client)
    assert PREDICT_MODULE not in client.get("/v1/sites/shop/tag.js").data


def test_saving_warns_of_each_condition_on_a_goal_without_a_model_or_no_goal_at_all(client, shop):
    hero = {**CONFIG["campaigns"][0], "conditions": {"$not": {"predict.purchse": {"$gt": 0.5}}}}
    config = {**CONFIG, "campaigns": [hero, CONFIG["campaigns"][1]]}
    warnings = client.put("/api/v1/sites/shop/config", json=config, headers=shop).get_json()["warnings"]
    by_path = {w["path"]: w["message"] for w in warnings}
    assert "no published model" in by_path["/segments/unlikely"]
    assert "no published model" in by_path["/segments/likely"]
    assert "names no goal" in by_path["/campaigns/0/conditions"]
    # an unknown goal is still listed, so conditions on it are false rather than missing (which $lt matches)
    client.post("/api/v1/sites/shop/publish", headers=shop)
    assert _bundle(client)["predict"] == ["purchase", "purchse"]


# --- collect: the feature vector ---

def test_collect_keeps_feature_vectors_apart_from_the_event_log(app, client, shop):
    _publish(client, shop)
    visitor = _hero_control_visitor(client)
    vector = features(visitor_tree(random.Random(1)))
    exposure, conversion = _event("exposure", features=vector), _event("conversion", value=12.5, features=vector)
    response = _collect(client, visitor, [exposure, conversion])
    assert response.status_code == 204, response.get_json()
    with app.app_context():
        store = get_store()
        rows = store.feature_rows("shop")
        assert [(r["id"], r["visitor"], r["kind"], r["goal"]) for r in rows] == [
            (exposure["id"], visitor, "exposure", None), (conversion["id"], visitor, "conversion", "purchase")]
        assert rows[0]["features"] == vector and rows[0]["ts"] == NOW
        bodies = [json.loads(b) for (b,) in store._db().execute("SELECT body FROM events WHERE site='shop'")]
    assert len(bodies) == 2 and not any("features" in body for body in bodies)


def test_a_batch_level_vector_goes_with_each_exposure_and_conversion_without_one(app, client, shop):
    _publish(client, shop)
    visitor = _hero_control_visitor(client)
    own = {"utm": 1}
    events = [_event("exposure"), _event("conversion", features=own)]
    body = {"visitor_id": visitor, "events": events, "features": {"visit.count": 0.69}}
    response = client.post("/v1/sites/shop/collect", data=json.dumps(body), headers={"Content-Type": "text/plain"})
    assert response.status_code == 204, response.get_json()
    with app.app_context():
        rows = get_store().feature_rows("shop")
    assert [r["features"] for r in rows] == [{"visit.count": 0.69}, own]
    bad = {**body, "features": {"visit.count": 99}, "events": [_event("exposure")]}
    response = client.post("/v1/sites/shop/collect", data=json.dumps(bad), headers={"Content-Type": "text/plain"})
    assert response.status_code == 400 and response.get_json()["details"][0]["path"] == "/features/visit.count"


@pytest.mark.parametrize("vector, path", [
    ({"visit.count": 26}, "/events/0/features/visit.count"),
    ({"Visit.count": 1}, "/events/0/features"),
    ({"visit.count": "1"}, "/events/0/features/visit.count"),
    ({"visit.count": True}, "/events/0/features/visit.count"),
    ({f"f_{chr(97 + i % 26) * (1 + i // 26)}": 1 for i in range(49)}, "/events/0/features"),
    ([1, 2], "/events/0/features"),
])
def test_collect_refuses_a_feature_vector_out_of_bounds_with_its_path(app, client, shop, vector, path):
    _publish(client, shop)
    response = _collect(client, _hero_control_visitor(client), [_event("exposure", features=vector)])
    assert response.status_code == 400
    assert any(d["path"].startswith(path) for d in response.get_json()["details"]), response.get_json()
    with app.app_context():
        assert get_store().feature_rows("shop") == []


# --- training ---

def test_examples_are_page_views_labelled_by_a_later_conversion_in_the_same_session():
    def row(visitor, ts, kind="exposure", goal=None, count=0.69, pageviews=0.69):
        return {"visitor": visitor, "ts": ts, "kind": kind, "goal": goal,
                "features": {"visit.count": count, "visit.pageviews": pageviews}}
    rows = [row("a", 1), row("a", 2), row("a", 3, pageviews=1.1), row("a", 4, "conversion", "purchase"),
            row("a", 5, pageviews=1.39),  # after the conversion
            row("b", 1), row("b", 2, "conversion", "signup"),  # another goal
            row("c", 1, count=1.1), row("c", 2, "conversion", "purchase", count=0.69)]  # another session
    vectors, labels, visitors = examples(rows, "purchase")
    assert visitors == ["a", "b", "c", "a", "a"]
    assert labels == [1, 0, 0, 1, 0]


def test_a_generated_site_trains_a_calibrated_model_above_the_floor():
    rows, truth = generate(4000, seed=5)
    report = train(rows, "purchase")
    assert report["status"] == "published" and report["auc"] > AUC_FLOOR
    assert report["examples"] == 4000 and report["held_out"] == pytest.approx(1000, abs=150)
    # the correction for class balancing makes predictions real rates: the curve follows the diagonal
    assert sum(b["n"] for b in report["calibration"]) == report["held_out"]
    mean_predicted = sum(b["predicted"] * b["n"] for b in report["calibration"]) / report["held_out"]
    mean_observed = sum(b["observed"] * b["n"] for b in report["calibration"]) / report["held_out"]
    assert mean_predicted == pytest.approx(mean_observed, abs=0.03)
    assert {t["feature"] for t in report["top"][:5]} & {"cart.value", "visit.pageviews", "medium.email"}
    model = report["model"]
    assert len(model["weights"]) <= 40 and all(len(repr(w)) <= 14 for w in model["weights"].values())


def test_labels_unrelated_to_the_features_stay_below_the_floor_and_ship_nothing():
    rows, _ = generate(3000, seed=6)
    rng = random.Random(0)
    shuffled = [dict(r) for r in rows if r["kind"] == "exposure"]
    rows = shuffled + [{**r, "kind": "conversion", "goal": "purchase", "ts": r["ts"] + 1}
                       for r in shuffled if rng.random() < 0.2]
    report = train(rows, "purchase")
    assert report["status"] == "below_floor" and report["auc"] <= AUC_FLOOR and report["model"] is None


def test_too_few_examples_is_said_and_fits_nothing():
    rows, _ = generate(100, seed=7)
    report = train(rows, "purchase")
    assert report["status"] == "not_enough_data" and report["model"] is None and report["examples"] == 100


# --- shipping, decide, CLI, API ---

def test_cli_trains_ships_the_model_in_a_revision_and_decide_scores_with_it(app, client, shop, capsys, monkeypatch):
    _publish(client, shop)
    _record_generated(app, 4000, seed=2)
    monkeypatch.setenv("VITRINA_DATABASE", app.config["VITRINA_DATABASE"])
    monkeypatch.setenv("VITRINA_SECRET_KEY", "test-secret-key-0123456789")
    assert main(["models", "train", "shop"]) == 0
    out = capsys.readouterr()
    assert "purchase: published (held-out AUC 0." in out.out and "revision: 1" in out.out
    assert "models" in out.err  # the progress bar
    model = _bundle(client)["revision"]["models"]["purchase"]
    assert set(model) == {"features", "intercept", "weights"}
    # training again ships nothing new when the model is the same: no new revision
    with app.app_context():
        assert jobs.ship("shop") is None

    high, low = visitor_tree(random.Random(3), high_intent=True), visitor_tree(random.Random(4), high_intent=False)
    for tree, expect_discount in ((high, False), (low, True)):
        body = {"visitor_id": "v1." + "0" * 24, "attributes": {**tree, "predict": {"purchase": 0.5}}}
        answer = client.post("/api/v1/sites/shop/decide", json=body, headers=shop).get_json()
        assert answer["resolved"]["predict"]["purchase"] == pytest.approx(score(model, features(tree)), abs=1e-12)
        assert ("discount" in answer["variations"]) is expect_discount, answer
        assert {"path": "/attributes/predict", "message": "ignored: only the site's models set predict"} in answer["ignored"]
    assert score(model, features(high)) >= 0.4 > 0.1 > score(model, features(low))

    assert main(["models", "report", "shop"]) == 0
    text = capsys.readouterr().out
    assert "predict.purchase: published, held-out AUC 0." in text and "calibration" in text and "top features" in text
    api = client.get("/api/v1/sites/shop/models", headers=shop).get_json()
    assert api["floor"] == AUC_FLOOR and api["goals"]["purchase"]["model"] == model
    assert client.get("/api/v1/sites/shop/models").status_code == 401


def test_without_a_model_decide_matches_no_predict_condition_even_lt(client, shop):
    _publish(client, shop)
    body = {"visitor_id": "v1." + "0" * 24, "attributes": visitor_tree(random.Random(4), high_intent=False)}
    answer = client.post("/api/v1/sites/shop/decide", json=body, headers=shop).get_json()
    assert "discount" not in answer["variations"] and answer["resolved"].get("predict", {}) == {}


def test_a_new_version_gets_the_models_again_from_the_worker_job(app, client, shop):
    _publish(client, shop)
    _record_generated(app, 3000, seed=9)
    with app.app_context():
        store = get_store()
        assert jobs.is_due("shop", time.time(), 3600)
        summary = jobs.run_due(store, "shop", 3600)
        assert summary["goals"]["purchase"]["status"] == "published" and summary["revision"] == 1
        assert not jobs.is_due("shop", time.time(), 3600)
    _publish(client, shop, {**CONFIG, "settings": {"holdout": 0.01}})  # version 2: no revision of its own yet
    assert "revision" not in _bundle(client)
    with app.app_context():
        assert jobs.is_due("shop", time.time(), 3600) and not jobs.training_due("shop", time.time(), 3600)
        assert jobs.run_due(get_store(), "shop", 3600) == {"site": "shop", "goals": {}, "revision": 2}
    assert _bundle(client)["revision"]["models"]["purchase"]["weights"]


def test_a_retraining_below_the_floor_keeps_the_shipped_model(app, client, shop):
    _publish(client, shop)
    _record_generated(app, 3000, seed=10)
    with app.app_context():
        store = get_store()
        first = jobs.train_site(store, "shop")["goals"]["purchase"]
        rng = random.Random(1)  # now labels are noise
        for i in range(4000):
            row = {"id": f"n{i}", "kind": "exposure", "goal": None, "ts": NOW + i,
                   "features": json.dumps(features(visitor_tree(rng)))}
            store.record_features("shop", f"v1.n{i:022d}", [row] + ([{**row, "id": f"m{i}", "kind": "conversion",
                                                                       "goal": "purchase"}] if rng.random() < 0.3 else []))
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(store, "feature_rows", lambda site: store.__class__.feature_rows(store, site)[-4500:])
            second = jobs.train_site(store, "shop")
    report = second["goals"]["purchase"]
    assert report["status"] == "below_floor" and report["model"] == first["model"]
    assert report["model_from"] == first["trained_at"] and second["revision"] is None


def test_models_of_one_site_never_reach_another(app, client, shop):
    _publish(client, shop)
    other = make_site(app, "other")
    _record_generated(app, 3000, seed=11)
    with app.app_context():
        jobs.train_site(get_store(), "shop")
        assert get_store().model_reports("other") == {}
    assert client.get("/api/v1/sites/other/models", headers=other).get_json()["goals"] == {}
    assert client.get("/api/v1/sites/shop/models", headers=other).status_code in (401, 403)
