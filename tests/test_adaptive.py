"""Adaptive allocation end to end on the server: a published adaptive campaign, visitors decided by
`decide` (the twin of the SDK) on the served bundle and counted through the real collect, weights
recomputed by `vitrina allocate`'s job and served as a revision."""
import json
import random
import subprocess
import sys
import time

import numpy as np
import pytest
from test_workspace import signed_in

from server import create_app
from server.allocation.recompute import allocate, is_due, slice_counts
from server.allocation.thompson import adaptive_weights, probability_best
from server.decisions.decide import decide
from server.recs.worker import run_pass
from server.store import get_store

NOW = int(time.time() * 1000)  # collect refuses events more than 3 days old
CONFIG = {
    "segments": {"newsletter": {"utm.source": "newsletter"}},
    "goals": {"purchase": {"event": "purchase"}},
    "campaigns": [{"key": "hero", "type": "experiment", "goals": ["purchase"],
                   "allocation": {"mode": "adaptive", "goal": "purchase", "by": ["segment:newsletter", "device.type"],
                                  "explore": 0.1, "min_visitors": 100},
                   "variations": [{"key": "control", "weight": 0.2}, {"key": "b", "weight": 0.4},
                                  {"key": "c", "weight": 0.4}]}],
    "settings": {"holdout": 0.05},
}
# per slice, each variation's conversion rate: b wins for newsletter readers, c on mobile
RATES = {"segment:newsletter": {"control": 0.05, "b": 0.25, "c": 0.05},
         "device.type=mobile": {"control": 0.05, "b": 0.05, "c": 0.25},
         "device.type=desktop": {"control": 0.1, "b": 0.1, "c": 0.1}}


@pytest.fixture
def app(tmp_path):
    """Many simulated visitors from one test client: no per-client rate limit."""
    return create_app(env={"VITRINA_DATABASE": str(tmp_path / "vitrina.sqlite3"), "VITRINA_RATE_CLIENT": "0",
                           "VITRINA_SECRET_KEY": "test-secret-key-0123456789"})


HOLDOUT_RATE = 0.05


def _publish(client, auth, config=CONFIG):
    assert client.put("/api/v1/sites/shop/config", json=config, headers=auth).status_code == 200
    return client.post("/api/v1/sites/shop/publish", headers=auth).get_json()["version"]


def _served(client):
    return client.get("/v1/sites/shop/bundle.json").get_json()["bundle"]


def _attributes(kind):
    if kind == "segment:newsletter":
        return {"utm": {"source": "newsletter"}, "device": {"type": "mobile"}}
    return {"device": {"type": kind.split("=")[1]}}


def _visit(client, bundle, visitor, kind, rng, sticky=None):
    """One visitor's page view and maybe purchase, as the tag would report them; returns the
    exposure sent (or None) and the collect answer."""
    decision = decide(bundle, _attributes(kind), visitor, now=NOW, sticky=sticky)
    events = []
    for key, variation in [*decision["variations"].items(), *((k, None) for k in decision["holdout_campaigns"])]:
        event = {"id": f"x{rng.getrandbits(64):016x}", "type": "exposure", "version": bundle["version"],
                 "ts": NOW, "campaign": key, "variation": variation, "holdout": variation is None}
        events.append(event)
        if rng.random() < (RATES[kind][variation] if variation else HOLDOUT_RATE):
            events.append({"id": f"c{rng.getrandbits(64):016x}", "type": "conversion", "version": bundle["version"],
                           "ts": NOW, "goal": "purchase", "value": 10})
    # where each assignment was made, once per batch, as the adaptive module sends it
    body = {"visitor_id": visitor, "events": events, "made": decision.get("slices", {})}
    answer = client.post("/v1/sites/shop/collect", data=json.dumps(body))
    if events:
        events[0]["slice"], events[0]["revision"] = decision["slices"]["hero"]
    return (events[0] if events else None), answer

def _visited_and_allocated(app, client, shop, seed, visitors, prefix):
    """The campaign published, `visitors` simulated across the three slices, then one allocation;
    returns the random source, to draw on where the simulation stopped."""
    _publish(client, shop)
    rng = random.Random(seed)
    bundle = _served(client)
    for i in range(visitors):
        _visit(client, bundle, f"v1.{prefix}{i:06d}", list(RATES)[i % 3], rng)
    with app.app_context():
        allocate("shop")
    return rng



def test_weights_follow_each_slice_winner_and_visitors_keep_their_variation(app, client, shop):
    _publish(client, shop)
    rng = random.Random(7)
    bundle = _served(client)
    assert "revision" not in bundle
    with app.app_context():
        assert is_due("shop", 600)
    first = {}
    for i in range(1500):
        kind = list(RATES)[i % 3]
        visitor = f"v1.first{i:06d}"
        exposure, answer = _visit(client, bundle, visitor, kind, rng)
        assert answer.status_code == 204, answer.get_json()
        first[visitor] = (kind, exposure)
    with app.app_context():
        summary = allocate("shop")
        assert not is_due("shop", 600) and is_due("shop", 0) is False
    assert summary["revision"] == 1 and summary["version"] == 1
    served = _served(client)
    weights = served["revision"]["allocations"]["hero"]["weights"]
    assert set(weights) == set(RATES)
    for kind, winner in (("segment:newsletter", 1), ("device.type=mobile", 2)):
        assert weights[kind][0] == 0.2, "the control's share is never adapted"
        assert weights[kind][winner] > 0.6, weights
        assert min(weights[kind][1:]) >= 0.8 * 0.1 / 2 - 1e-4, "explore is spread over the adapted variations"
        assert abs(sum(weights[kind]) - 1) < 1e-3
    # a returning visitor keeps the variation they had (sticky, with the slice and revision it was
    # made in), and collect takes their exposure; a new visitor follows the new weights
    kept = 0
    for visitor, (kind, exposure) in list(first.items())[:300]:
        if exposure is None or exposure["holdout"]:
            continue
        sticky = {"hero": {"seed": "hero", "variation": exposure["variation"],
                           "made": [exposure["slice"], exposure["revision"]]}}
        again, answer = _visit(client, served, visitor, kind, rng, sticky)
        assert answer.status_code == 204, answer.get_json()
        assert (again["variation"], again["slice"], again["revision"]) == \
            (exposure["variation"], exposure["slice"], None)
        kept += 1
    assert kept > 200
    news = [_visit(client, served, f"v1.later{i:06d}", "segment:newsletter", rng)[0] for i in range(400)]
    shown = [e["variation"] for e in news if e and not e["holdout"]]
    assert shown.count("b") / len(shown) > 0.55 and all(e["revision"] == 1 for e in news if not e["holdout"])
    # results: per slice the weights served, the leader and its chance to be best; the gain of the
    # campaign as served, weighted by assignment probability; the split checked per revision
    hero = next(c for c in client.get("/api/v1/sites/shop/results", headers=shop).get_json()["campaigns"]
                if c["key"] == "hero")
    allocation = hero["allocation"]
    assert hero["srm"]["status"] == "not_applicable" and allocation["revision"] == 1
    slices = {s["slice"]: s for s in allocation["slices"]}
    assert slices["segment:newsletter"]["leader"] == "b" and slices["device.type=mobile"]["leader"] == "c"
    assert slices["segment:newsletter"]["probability_best"]["b"] > 0.95
    assert slices["device.type=mobile"]["weights"] == dict(zip(["control", "b", "c"], weights["device.type=mobile"]))
    gain = allocation["gain"]
    # had every visitor got variation v: the planted rates over the slices' visitors (weighting by
    # the assignment probability is unbiased; with weights down to 4% its noise is a few points)
    mix = {s["slice"]: s["visitors"] for s in allocation["slices"]}
    for key in ("control", "b", "c"):
        truth = sum(RATES[kind][key] * n for kind, n in mix.items()) / sum(mix.values())
        assert gain["single_variation_rates"][key] == pytest.approx(truth, abs=0.05), key
    assert gain["holdout_rate"] == pytest.approx(HOLDOUT_RATE, abs=0.04) and gain["vs_holdout"] > 0.5
    assert [(s["revision"], s["status"]) for s in allocation["srm"]] == [(None, "ok"), (1, "ok")]


def test_collect_checks_an_adaptive_exposure_against_the_revision_it_names(app, client, shop):
    rng = _visited_and_allocated(app, client, shop, 3, 600, "seed")
    served = _served(client)
    # a visitor whom the newsletter slice's new weights send elsewhere than the campaign's own weights
    for i in range(2000):
        visitor = f"v1.check{i:06d}"
        decision = decide(served, _attributes("segment:newsletter"), visitor, now=NOW)
        plain = decide({**served, "revision": {}}, _attributes("segment:newsletter"), visitor, now=NOW)
        if decision["variations"] and plain["variations"] and decision["variations"] != plain["variations"]:
            break
    event = {"id": "e0123456789", "type": "exposure", "version": 1, "ts": NOW, "campaign": "hero",
             "variation": decision["variations"]["hero"], "holdout": False, "slice": "segment:newsletter",
             "revision": 1}

    def send(**changes):
        body = {"visitor_id": visitor, "events": [{**event, **changes, "id": f"e{rng.getrandbits(40):012x}"}]}
        return client.post("/v1/sites/shop/collect", data=json.dumps(body))

    assert send().status_code == 204
    refused = [send(revision=None), send(slice="device.type=desktop"), send(revision=99),
               send(variation=plain["variations"]["hero"], revision=1, slice="segment:newsletter")]
    # the plain weights' variation is still valid without a revision (bucketed before any revision)
    assert [r.status_code for r in refused] == [400, 400, 400, 204]
    assert send(slice="no slice here").status_code == 400
    with app.app_context():
        rows = get_store().labelled_counters("shop")
    labels = {r["channel"] for r in rows if r["campaign"] == "hero"}
    assert "web|1|segment:newsletter" in labels and "web|0|device.type=mobile" in labels
    results = client.get("/api/v1/sites/shop/results", headers=shop).get_json()
    hero = next(c for c in results["campaigns"] if c["key"] == "hero")
    assert sum(v["visitors"] for v in hero["variations"]) == sum(
        r["visitors"] for r in rows if r["campaign"] == "hero" and r["goal"] is None and r["variation"])


def test_the_worker_allocates_a_new_version_within_a_pass_and_only_when_due(app, client, shop):
    _publish(client, shop)
    assert [s["line"] for s in run_pass(app, "test-owner")][0].startswith("allocated shop version 1: revision 1")
    assert run_pass(app, "test-owner") == []  # made within VITRINA_ALLOCATE_EVERY_S
    _publish(client, shop)
    assert [s["revision"] for s in run_pass(app, "test-owner")] == [2]
    assert _served(client)["revision"]["version"] == 2
    fixed = json.loads(json.dumps(CONFIG))
    del fixed["campaigns"][0]["allocation"]
    _publish(client, shop, fixed)
    assert run_pass(app, "test-owner") == []


def test_weights_recomputed_unchanged_are_not_published_again(app, client, shop):
    """A revision whose weights are those served would change only `made_at`, and every cached
    tag.js with it: the worker says "unchanged" and waits VITRINA_ALLOCATE_EVERY_S again."""
    _publish(client, shop)
    assert [s["revision"] for s in run_pass(app, "test-owner")] == [1]
    tag = client.get("/v1/sites/shop/tag.js")
    app.config["VITRINA_ALLOCATE_EVERY_S"] = 1
    time.sleep(2.1)  # made_at counts whole seconds
    assert [s["line"].split(" in ")[0] for s in run_pass(app, "test-owner")] == ["allocated shop version 1: revision unchanged"]
    assert run_pass(app, "test-owner") == []  # checked within the second
    assert _served(client)["revision"]["revision"] == 1
    assert client.get("/v1/sites/shop/tag.js", headers={"If-None-Match": tag.headers["ETag"]}).status_code == 304
    time.sleep(1.1)
    assert [s["revision"] for s in run_pass(app, "test-owner")] == [None]  # due again, still nothing moved


def test_vitrina_allocate_cli(app, client, shop, tmp_path):
    env = {"VITRINA_DATABASE": app.config["VITRINA_DATABASE"], "VITRINA_SECRET_KEY": "test-secret-key-0123456789",
           "PATH": "/usr/bin:/bin"}
    run = lambda *args: subprocess.run([sys.executable, "-m", "server.cli", *args], env=env,  # noqa: E731
                                       capture_output=True, text=True, timeout=60)
    nothing = run("allocate", "shop")
    assert nothing.returncode == 2 and "no adaptive campaign" in nothing.stderr
    _publish(client, shop)
    done = run("allocate", "shop")
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    assert (summary["version"], summary["revision"]) == (1, 1)
    assert _served(client)["revision"]["revision"] == 1  # this process sees the other's revision at once
    assert run("allocate", "nosuch").returncode == 2


def test_thompson_weights_are_the_probability_of_being_best():
    rng = np.random.default_rng(5)
    even = probability_best([(1000, 100), (1000, 100)], rng)
    assert abs(even[0] - 0.5) < 0.02
    clear = adaptive_weights([(5000, 250), (5000, 250), (5000, 400)], 0, 0.2, 0.1, rng)
    assert clear[0] == 0.2 and clear[2] == pytest.approx(0.8 * (0.9 + 0.05), abs=1e-3)
    assert clear[1] == pytest.approx(0.8 * 0.05, abs=1e-3)
    no_control = adaptive_weights([(0, 0), (0, 0), (0, 0)], None, 0, 0.3, rng)
    assert sum(no_control) == pytest.approx(1, abs=1e-3) and max(no_control) - min(no_control) < 0.05


def test_slice_counts_sum_revisions_and_leave_out_holdout_and_unlabelled():
    campaign = {"key": "hero", "allocation": {"goal": "purchase"},
                "variations": [{"key": "control"}, {"key": "b"}]}
    row = lambda label, variation, goal, n, k: {"campaign": "hero", "variation": variation, "goal": goal,  # noqa
                                                "channel": label, "visitors": n, "conversions": k}
    rows = [row("web|0|default", "b", None, 10, 0), row("web|3|default", "b", None, 5, 0),
            row("web|3|default", "b", "purchase", 0, 2), row("web|3|default", "b", "other", 0, 9),
            row("web|3|default", None, None, 7, 0), row("web", "b", None, 100, 0)]
    assert slice_counts(rows, campaign) == {"default": {"control": [0, 0], "b": [15, 2]}}


def test_the_workspace_shows_the_weights_per_slice_on_the_results_page(app, client, shop):
    _visited_and_allocated(app, client, shop, 11, 450, "ws")
    weights = _served(client)["revision"]["allocations"]["hero"]["weights"]
    viewer = signed_in(app, "vic@shop.example", "viewer")
    page = viewer.get("/app/s/shop/results/hero").get_data(as_text=True)
    section = page[page.index('id="allocation-title"'):]
    assert "revision 1 served now" in section
    for slice_name, row in weights.items():
        cells = section[section.index(f'<th scope="row">{slice_name}</th>'):].split("</tr>")[0]
        assert [f"{w * 100:.1f}%" in cells for w in row] == [True] * 3, (slice_name, cells)
    assert "Split check per revision" in section and "against the holdout" in section


def test_decide_api_answers_the_slice_and_takes_a_sticky_assignments_slice(app, client, shop):
    _publish(client, shop)
    with app.app_context():
        allocate("shop")
    body = {"visitor_id": "v1.apicaller01", "attributes": {"utm": {"source": "newsletter"}}, "now": NOW}
    answer = client.post("/api/v1/sites/shop/decide", json=body, headers=shop).get_json()
    assert not answer["holdout"]  # (bucketing is deterministic: this id is outside the 5% holdout)
    assert answer["slices"] == {"hero": ["segment:newsletter", None]}  # under min_visitors: own weights
    sticky = {"hero": {"seed": "hero", "variation": "c", "made": ["device.type=mobile", 1]}}
    kept = client.post("/api/v1/sites/shop/decide", json={**body, "sticky": sticky}, headers=shop).get_json()
    assert (kept["variations"], kept["slices"]) == ({"hero": "c"}, {"hero": ["device.type=mobile", 1]})
    bad = client.post("/api/v1/sites/shop/decide", json={**body, "sticky": {"hero": {**sticky["hero"],
                                                                                  "made": ["no way", 1]}}},
                      headers=shop)
    assert bad.status_code == 400 and bad.get_json()["details"][0]["path"] == "/sticky/hero/made/0"


def test_tag_js_carries_the_adaptive_module_only_for_adaptive_campaigns(app, client, shop):
    _publish(client, shop)
    assert b'_module("adaptive"' in client.get("/v1/sites/shop/tag.js").data
    fixed = json.loads(json.dumps(CONFIG))
    fixed["campaigns"][0]["allocation"] = {"mode": "fixed"}
    _publish(client, shop, fixed)
    assert "allocation" not in _served(client)["campaigns"][0]
    assert b'_module("adaptive"' not in client.get("/v1/sites/shop/tag.js").data


def test_settled_weights_keep_the_revision_that_made_them(app, client, shop):
    """With no new evidence the next allocation moves no weight and publishes nothing; when one
    slice's weights move, the others keep their weights and name the revision that made them, so
    their new assignments (and counters) are not split."""
    rng = _visited_and_allocated(app, client, shop, 5, 600, "settle")
    first = _served(client)["revision"]["allocations"]["hero"]
    with app.app_context():
        assert allocate("shop")["revision"] is None
    assert _served(client)["revision"]["revision"] == 1
    bundle = _served(client)
    for i in range(600):  # evidence for the desktop slice alone, where no variation leads
        _visit(client, bundle, f"v1.settle-desk{i:06d}", "device.type=desktop", rng)
    with app.app_context():
        assert allocate("shop")["revision"] == 2
    second = _served(client)["revision"]["allocations"]["hero"]
    moved = second["weights"].pop("device.type=desktop")
    assert moved != first["weights"].pop("device.type=desktop") and second["weights"] == first["weights"]
    assert second["since"] == dict.fromkeys(first["weights"], 1)  # the two settled slices
    exposure, answer = _visit(client, _served(client), "v1.settled-new", "segment:newsletter", rng)
    assert answer.status_code == 204 and (exposure["holdout"] or exposure["revision"] == 1)
    bundle = _served(client)
    for i in range(600):
        _visit(client, bundle, f"v1.settle-desk2{i:06d}", "device.type=desktop", rng)
    with app.app_context():
        assert allocate("shop")["revision"] == 3  # and a third time: still the first revision's
    assert _served(client)["revision"]["allocations"]["hero"]["since"] == dict.fromkeys(first["weights"], 1)


@pytest.mark.parametrize("by, problem", [
    ("predict.purchase", "predict.purchase is a number"),
    ("visit.count", "visit.count is a number"),
    ("visit.new", "visit.new is a boolean"),
])
def test_slicing_by_a_value_that_is_no_string_is_refused(by, problem):
    from server.configs.validation import validate_config
    config = json.loads(json.dumps(CONFIG))
    config["campaigns"][0]["allocation"]["by"] = ["segment:newsletter", by]
    problems = validate_config(config)
    assert [(p["path"], p["message"].split(";")[1].split(",")[0].strip()) for p in problems] == [
        ("/campaigns/0/allocation/by/1", problem)]


def test_slicing_by_string_attributes_and_set_values_is_accepted():
    from server.configs.validation import validate_config
    config = json.loads(json.dumps(CONFIG))
    config["campaigns"][0]["allocation"]["by"] = ["segment:newsletter", "device.type", "utm.medium", "user.plan"]
    assert validate_config(config) == []
