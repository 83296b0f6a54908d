"""Results as a merchant reads them: the API's JSON from the store's counters, and the CLI's table
from that JSON. No contradiction survives (an interval against its p-value, a figure at 40
visitors, goals a campaign does not list, a split check with no p-value), settings.stats and a
campaign's stats choose the method, and the sample-size calculator answers on the API."""
import copy
import json
import math
import re
import subprocess
import sys
import uuid

import pytest
import redis
from hypothesis import given, settings
from hypothesis import strategies as st

from server import create_app
from server.results import report
from server.results.table import METRIC_NAMES, render
from server.store import get_store
from tests.conftest import REPO

CAMPAIGN = {"key": "hero", "type": "personalization", "goals": ["purchase"],
            "variations": [{"key": "control", "weight": 0.5}, {"key": "promo", "weight": 0.5}]}


def counters(arms):
    """{variation: (visitors, {goal: (conversions, revenue, revenue_sq, extra fields)})} -> the
    {variation: {goal: row}} that slice_result reads (goal None: the visitors row)."""
    out = {}
    for variation, (visitors, goals) in arms.items():
        rows = {None: {"visitors": visitors, "conversions": 0, "revenue": 0.0, "revenue_sq": 0.0}}
        for goal, (conversions, revenue, revenue_sq, *extra) in goals.items():
            rows[goal] = {"visitors": 0, "conversions": conversions, "revenue": revenue, "revenue_sq": revenue_sq,
                          **(extra[0] if extra else {})}
        out[variation] = rows
    return out


def result(arms, campaign=CAMPAIGN, site_stats=None, all_goals=False):
    return report.campaign_result(campaign["key"], campaign, counters(arms), site_stats, all_goals)


def comparison(data, variation, vs, goal="purchase", metric="conversion_rate"):
    return next(c for c in data["comparisons"]
                if (c["variation"], c["vs"], c["goal"], c["metric"]) == (variation, vs, goal, metric))


def test_the_new_users_40_visitors_say_not_enough_data():
    """`promo vs holdout: -60.0% [-81.5%, -38.5%] p=0.104` came from 40 visitors: now no figure."""
    data = result({"control": (40, {"purchase": (10, 0.0, 0.0)}), "promo": (40, {"purchase": (4, 0.0, 0.0)}),
                   None: (40, {"purchase": (10, 0.0, 0.0)})})
    for row in data["comparisons"]:
        assert row["status"] == "not_enough_data"
        assert row["uplift"] is row["ci"] is row["p_value"] is row["adjusted_p_value"] is row["bayes"] is None
    assert data["srm"] == {"status": "not_enough_data", "p_value": None, "ok": None}
    text = render({"site": "shop", "version": 1, "campaigns": [data], "rejected": {}})
    assert "not enough data" in text and "p=-" not in text and "ok (p" not in text
    assert "promo vs holdout" in text and "%" not in text.split("promo vs holdout")[1].splitlines()[0]


def test_only_the_campaigns_goals_unless_all_are_asked_for():
    arms = {"control": (500, {"purchase": (20, 0.0, 0.0), "newsletter": (50, 0.0, 0.0)}),
            "promo": (500, {"purchase": (30, 0.0, 0.0), "newsletter": (40, 0.0, 0.0)})}
    shown = result(arms)
    assert shown["goals"] == ["purchase"]
    assert {c["goal"] for c in shown["comparisons"]} == {"purchase"}
    assert set(shown["variations"][0]["goals"]) == {"purchase"}
    everything = result(arms, all_goals=True)
    assert everything["goals"] == ["purchase", "newsletter"]
    assert {c["goal"] for c in everything["comparisons"]} == {"purchase", "newsletter"}
    # a campaign no longer published has no list: every goal it has counters for
    gone = report.campaign_result("old", None, counters(arms))
    assert gone["goals"] == ["newsletter", "purchase"] and gone["srm"]["status"] == "not_applicable"


def test_a_revenue_goal_has_rate_and_revenue_per_visitor_each_with_its_interval():
    data = result({"control": (4000, {"purchase": (200, 200 * 55.0, 200 * 55.0**2 * 1.4)}),
                   "promo": (4000, {"purchase": (260, 260 * 52.0, 260 * 52.0**2 * 1.4)})})
    rate = comparison(data, "promo", "control")
    per_visitor = comparison(data, "promo", "control", metric="revenue_per_visitor")
    assert rate["uplift"] == pytest.approx(0.3, abs=1e-6)
    assert per_visitor["uplift"] == pytest.approx(260 * 52.0 / (200 * 55.0) - 1, rel=1e-5)
    assert rate["ci"] != per_visitor["ci"] and all(r["status"] == "ok" for r in (rate, per_visitor))
    assert not any(c["metric"] == "aov" for c in data["comparisons"])  # no orders counted yet
    assert data["variations"][1]["goals"]["purchase"] == {
        "conversions": 260, "rate": 0.065, "revenue": 13520.0, "revenue_per_visitor": 3.38, "orders": None, "aov": None}


def test_average_order_value_once_the_counters_have_orders():
    def purchases(buyers, orders, revenue):
        return (buyers, revenue, revenue**2 / buyers * 1.5,
                {"orders": orders, "orders_sq": orders * 1.6, "revenue_orders": revenue * 1.5})
    data = result({"control": (3000, {"purchase": purchases(150, 190, 190 * 60.0)}),
                   "promo": (3000, {"purchase": purchases(150, 185, 185 * 70.0)})})
    aov = comparison(data, "promo", "control", metric="aov")
    assert aov["status"] == "ok" and aov["uplift"] == pytest.approx(70 / 60 - 1, rel=1e-5)
    assert aov["bayes"]["chance_to_win"] > 0.5 and aov["cuped"] is None
    assert data["variations"][0]["goals"]["purchase"]["orders"] == 190
    assert data["variations"][0]["goals"]["purchase"]["aov"] == 60.0


def test_cuped_is_null_until_exposures_carry_covariates_then_narrower():
    plain = {"control": (2000, {"purchase": (300, 0.0, 0.0)}), "promo": (2000, {"purchase": (340, 0.0, 0.0)})}
    assert comparison(result(plain), "promo", "control")["cuped"] is None
    with_covariates = counters(plain)
    for variation, converted_visits in (("control", 1500.0), ("promo", 1700.0)):
        # visits before exposure: converters came back more often (x = 5 for them, 1 or 2 for others:
        # not a perfect predictor, which would leave the adjusted rate no variance at all)
        n, k = with_covariates[variation][None]["visitors"], with_covariates[variation]["purchase"]["conversions"]
        with_covariates[variation][None].update(pre_sum=[converted_visits + 1.5 * (n - k)],
                                                 pre_products=[[k * 25.0 + 2.5 * (n - k)]])
        with_covariates[variation]["purchase"]["pre_conversions"] = [converted_visits]
    data = report.campaign_result("hero", CAMPAIGN, with_covariates)
    row = comparison(data, "promo", "control")
    assert row["cuped"] is not None
    plain_width = row["ci"][1] - row["ci"][0]
    assert row["cuped"]["ci"][1] - row["cuped"]["ci"][0] < plain_width


def test_settings_stats_and_a_campaigns_stats_choose_the_method():
    arms = {"control": (5000, {"purchase": (250, 0.0, 0.0)}), "promo": (5000, {"purchase": (310, 0.0, 0.0)})}
    sequential = comparison(result(arms), "promo", "control")
    fixed = comparison(result(arms, site_stats={"mode": "fixed"}), "promo", "control")
    assert sequential["method"] == "sequential" and fixed["method"] == "fixed"
    assert fixed["ci"][1] - fixed["ci"][0] < sequential["ci"][1] - sequential["ci"][0]
    own = dict(CAMPAIGN, stats={"mode": "sequential", "alpha": 0.1})
    overridden = result(arms, campaign=own, site_stats={"mode": "fixed", "alpha": 0.01})
    assert overridden["stats"] == {"mode": "sequential", "alpha": 0.1, "min_visitors": 100, "min_conversions": 5}
    assert comparison(overridden, "promo", "control")["method"] == "sequential"


def test_adjusted_p_values_are_benjamini_hochberg_within_each_baseline():
    campaign = dict(CAMPAIGN, goals=["purchase", "signup"], variations=[
        {"key": k, "weight": 0.25} for k in ("control", "a", "b", "c")])
    arm = {"control": (3000, {"purchase": (150, 0.0, 0.0), "signup": (300, 0.0, 0.0)})}
    for k, (buy, sign) in {"a": (190, 310), "b": (160, 345), "c": (151, 298)}.items():
        arm[k] = (3000, {"purchase": (buy, 0.0, 0.0), "signup": (sign, 0.0, 0.0)})
    arm[None] = (300, {"purchase": (15, 0.0, 0.0), "signup": (30, 0.0, 0.0)})
    data = result(arm, campaign=campaign, site_stats={"mode": "fixed"})
    for vs in ("control", "holdout"):
        family = [c for c in data["comparisons"] if c["vs"] == vs]
        ranked = sorted(family, key=lambda c: c["p_value"])
        m = len(family)
        for i, row in enumerate(ranked):
            expected = min(min(r["p_value"] * m / (j + 1) for j, r in enumerate(ranked) if j >= i), 1.0)
            assert row["adjusted_p_value"] == pytest.approx(expected, rel=1e-5)
            assert row["adjusted_p_value"] >= row["p_value"]


# what a visitor spends: nothing, or an amount a shop could charge (at least a cent)
spends = st.one_of(st.just(0.0), st.floats(0.01, 100_000))
arm_counts = st.integers(0, 50_000).flatmap(lambda n: st.tuples(st.just(n), st.integers(0, n), spends))


@settings(max_examples=150, deadline=None)
@given(arm_counts, arm_counts, arm_counts, st.sampled_from(["sequential", "fixed"]), st.sampled_from([0.05, 0.1]))
def test_no_result_contradicts_itself_and_the_table_says_the_same(control, promo, holdout, mode, alpha):
    arms = {}
    for key, (n, k, spend) in (("control", control), ("promo", promo), (None, holdout)):
        arms[key] = (n, {"purchase": (k, k * spend, k * spend * spend * 1.3)})
    data = result(arms, site_stats={"mode": mode, "alpha": alpha})
    for row in data["comparisons"]:
        base = arms["control" if row["vs"] == "control" else None]
        mine = arms[row["variation"]]
        enough = all(n >= report.MIN_VISITORS and k >= report.MIN_CONVERSIONS
                     for n, goals in (base, mine) for k in [goals["purchase"][0]])
        if row["status"] == "not_enough_data":
            assert row["uplift"] is row["ci"] is row["p_value"] is row["bayes"] is None
            continue
        assert enough and row["method"] == mode
        low, high = row["ci"]
        assert -1 <= low <= row["uplift"] <= high
        if not math.isclose(row["p_value"], alpha, rel_tol=1e-4):
            assert (low > 0 or high < 0) == (row["p_value"] < alpha)
        assert row["adjusted_p_value"] >= row["p_value"]
        assert 0 <= row["bayes"]["chance_to_win"] <= 1 and row["bayes"]["expected_loss"] >= 0
    _table_agrees(data)


@pytest.mark.parametrize("spend", [5e-324, 1e-170, 1e-300, 1e154, 1.7e308])
def test_amounts_too_small_or_large_to_square_give_no_figure_not_an_error(spend):
    """What the fuzz against the real server found in the Welch test before (values of 5e-324
    made results a 500): every figure is a finite number or null."""
    data = result({"control": (400, {"purchase": (20, 20 * spend, 20 * spend * spend)}),
                   "promo": (400, {"purchase": (30, 30 * spend, 30 * spend * spend)})})
    json.dumps(data, allow_nan=False)
    _table_agrees(data)
    rate = comparison(data, "promo", "control")
    assert rate["status"] == "ok" and rate["uplift"] == pytest.approx(0.5)


def _pct(x):
    return f"{x * 100:+.1f}%"


def _table_agrees(campaign):
    """Every comparison's line in the table shows the JSON's figures, or says not enough data."""
    text = render({"site": "shop", "version": 1, "campaigns": [campaign], "rejected": {}})
    assert "p=-" not in text
    if not any(v["visitors"] for v in campaign["variations"] + [campaign["holdout"]]):
        assert "no visitors yet" in text and all(r["status"] != "ok" for r in campaign["comparisons"])
        return
    blocks = text.split("\n\n")
    for row in campaign["comparisons"]:
        block = next(b for b in blocks if b.lstrip().startswith(row["goal"]))
        section = block.split(f"    {METRIC_NAMES[row['metric']]}:\n")[1]
        line = next(x for x in section.splitlines() if x.strip().startswith(f"{row['variation']} vs {row['vs']} "))
        if row["status"] != "ok":
            assert line.rstrip().endswith("not enough data")
        else:
            assert f"{_pct(row['uplift'])} [{_pct(row['ci'][0])}, {_pct(row['ci'][1])}]" in line


# Through the API and the CLI, on the real store

def _record(app, site, campaign, variation, visitors, conversions, goal="purchase", value=0.0, holdout=False):
    with app.app_context():
        store = get_store()
        for i in range(visitors):
            visitor = f"{campaign}-{variation}-{uuid.uuid4().hex[:12]}"
            events = [{"id": uuid.uuid4().hex, "type": "exposure", "campaign": campaign,
                       "variation": None if holdout else variation, "holdout": holdout, "_json": "{}"}]
            if i < conversions:
                events.append({"id": uuid.uuid4().hex, "type": "conversion", "goal": goal, "value": value, "_json": "{}"})
            store.record_events(site, visitor, events)


@pytest.fixture(params=["sqlite", "redis"])
def app(request, tmp_path):
    """The API's app on each store (results read the counters the store folded)."""
    env = {"VITRINA_DATABASE": str(tmp_path / "vitrina.sqlite3"), "VITRINA_SECRET_KEY": "test-secret-key-0123456789"}
    if request.param == "redis":
        env["VITRINA_REDIS_URL"] = request.getfixturevalue("redis_url")
        redis.Redis.from_url(env["VITRINA_REDIS_URL"]).flushall()
    app = create_app(env=env)
    yield app
    app.extensions["vitrina_store"].close()


@pytest.fixture
def filled(app, client, shop, demo_config):
    """The demo config with settings.stats fixed and cta-wording sequential, published, and
    cta-wording's arms recorded straight into the store: enough visitors to compare."""
    config = copy.deepcopy(demo_config)
    config["settings"]["stats"] = {"mode": "fixed", "alpha": 0.1}
    cta = next(c for c in config["campaigns"] if c["key"] == "cta-wording")
    cta["stats"] = {"mode": "sequential"}
    assert client.put("/api/v1/sites/shop/config", json=config, headers=shop).status_code == 200
    assert client.post("/api/v1/sites/shop/publish", headers=shop).status_code == 201
    _record(app, "shop", "cta-wording", "control", 400, 40, value=30.0)
    _record(app, "shop", "cta-wording", "urgent", 400, 70, value=30.0)
    _record(app, "shop", "cta-wording", None, 120, 12, value=30.0, holdout=True)
    _record(app, "shop", "hero-newsletter", "promo", 150, 20, goal="thanks_page")
    with app.app_context():  # a goal cta-wording does not list
        get_store().record_events("shop", "cta-wording-control-extra", [
            {"id": uuid.uuid4().hex, "type": "exposure", "campaign": "cta-wording", "variation": "control",
             "holdout": False, "_json": "{}"},
            {"id": uuid.uuid4().hex, "type": "conversion", "goal": "thanks_page", "value": 0, "_json": "{}"}])
    return shop


def test_results_api_uses_the_published_stats_settings(client, filled):
    data = client.get("/api/v1/sites/shop/results", headers=filled).get_json()
    cta = next(c for c in data["campaigns"] if c["key"] == "cta-wording")
    hero = next(c for c in data["campaigns"] if c["key"] == "hero-newsletter")
    assert cta["stats"]["mode"] == "sequential" and cta["stats"]["alpha"] == 0.1  # its own mode, the site's alpha
    assert hero["stats"]["mode"] == "fixed"
    assert cta["goals"] == ["add_to_cart", "purchase"]
    row = next(c for c in cta["comparisons"] if c["vs"] == "control" and c["goal"] == "purchase"
               and c["metric"] == "conversion_rate")
    assert row["status"] == "ok" and row["method"] == "sequential"
    assert row["uplift"] == pytest.approx(70 / 400 / (40 / 401) - 1, rel=1e-5)
    assert cta["srm"]["status"] == "ok" and cta["srm"]["ok"] is True
    metrics = {c["metric"] for c in cta["comparisons"] if c["goal"] == "purchase"}
    assert metrics == {"conversion_rate", "revenue_per_visitor"}
    every = client.get("/api/v1/sites/shop/results?goals=all", headers=filled).get_json()
    cta_all = next(c for c in every["campaigns"] if c["key"] == "cta-wording")
    assert cta_all["goals"] == ["add_to_cart", "purchase", "thanks_page"]


def test_results_api_refuses_an_unknown_goals_filter(client, filled):
    response = client.get("/api/v1/sites/shop/results?goals=some", headers=filled)
    assert response.status_code == 400
    assert response.get_json()["details"] == [{"path": "/goals", "message": "must be campaign or all"}]


def test_sample_size_api(client, filled):
    response = client.get("/api/v1/sites/shop/sample-size?baseline=0.03&mde=0.1&power=0.8", headers=filled)
    assert response.status_code == 200
    plan = response.get_json()
    assert plan["alpha"] == 0.1  # the site's settings.stats.alpha when the query has none
    assert plan["fixed"]["visitors_per_variation"] < plan["sequential"]["visitors_per_variation"]
    bad = client.get("/api/v1/sites/shop/sample-size?baseline=3&mde=0&variations=99", headers=filled)
    assert bad.status_code == 400
    assert [d["path"] for d in bad.get_json()["details"]] == ["/baseline", "/mde", "/variations"]
    assert client.get("/api/v1/sites/shop/sample-size?baseline=0.03&mde=0.1").status_code == 401


def test_cli_table_and_json_agree(app, client, filled):
    env = {"VITRINA_DATABASE": app.config["VITRINA_DATABASE"], "VITRINA_SECRET_KEY": "test-secret-key-0123456789",
           "PATH": "/usr/bin:/bin", **({"VITRINA_REDIS_URL": url} if (url := app.config.get("VITRINA_REDIS_URL")) else {})}

    def vitrina(*args):
        proc = subprocess.run([sys.executable, "-m", "server.cli", *args], cwd=REPO, env=env,
                              capture_output=True, text=True, timeout=60)
        assert proc.returncode == 0, proc.stderr
        return proc.stdout
    data = json.loads(vitrina("results", "shop", "--json"))
    assert data == client.get("/api/v1/sites/shop/results", headers=filled).get_json()
    text = vitrina("results", "shop")
    assert text == render(data) + "\n"  # the table is the API's JSON, rendered
    for campaign in data["campaigns"]:
        _table_agrees(campaign)
    assert "split check: ok (p=" in text and "p=-" not in text
    assert "thanks_page" not in text.split("cta-wording")[1].split("hero-newsletter")[0]
    assert "thanks_page" in vitrina("results", "shop", "--all-goals").split("cta-wording")[1]
    plan = vitrina("sample-size", "--baseline", "0.03", "--mde", "0.1")
    assert re.search(r"fixed mode: +53,256 visitors per variation", plan)
    assert json.loads(vitrina("sample-size", "--baseline", "0.03", "--mde", "0.1", "--json"))["fixed"] == {
        "visitors_per_variation": 53256, "visitors": 106512}
    refused = subprocess.run([sys.executable, "-m", "server.cli", "sample-size", "--baseline", "2", "--mde", "0.1"],
                             cwd=REPO, env=env, capture_output=True, text=True, timeout=60)
    assert refused.returncode == 2 and "--baseline must be a conversion rate between 0 and 1" in refused.stderr


def test_the_bundle_carries_stats_settings_only_when_set(client, published, filled):
    bundle = client.get("/v1/sites/shop/bundle.json").get_json()["bundle"]  # version 2: filled's config
    assert bundle["settings"]["stats"] == {"mode": "fixed", "alpha": 0.1}
    assert [c["key"] for c in bundle["campaigns"] if "stats" in c] == ["cta-wording"]
    assert client.put("/api/v1/sites/shop/config", json=json.loads((REPO / "server/demo/config.json").read_text()),
                      headers=filled).status_code == 200
    assert client.post("/api/v1/sites/shop/publish", headers=filled).status_code == 201
    plain = client.get("/v1/sites/shop/bundle.json").get_json()["bundle"]
    assert "stats" not in plain["settings"] and not any("stats" in c for c in plain["campaigns"])
