"""Alerts: a guardrail goal that gets significantly worse (one-sided, in the campaign's mode,
Holm over the family) and a sample-ratio mismatch show in results and in the CLI; with
`auto_pause`, the worker's alerts job pauses the campaign by publishing a new version attributed
to the system, and marks it paused in the draft. Versions say who published them."""
import json
import random
import re
import time

import numpy as np
import pytest

from server.configs import publishing
from server.events.batch import bucketed_assignment
from server.results import report, stats, watch
from server.results.table import render
from tests.conftest import shop_with
from tests.servers import BROWSER_UA
from tests.test_workspace import signed_in

NOW_MS = int(time.time() * 1000)  # collect counts events from the last 3 days only

CONFIG = {
    "goals": {"purchase": {"event": "purchase"}, "signup": {"event": "signup"}},
    "campaigns": [
        {"key": "checkout", "type": "experiment", "goals": ["signup"], "guardrails": ["purchase"], "auto_pause": True,
         "variations": [{"key": "control"}, {"key": "fast"}]},
        {"key": "banner", "type": "experiment", "goals": ["signup"], "guardrails": ["purchase"], "auto_pause": True,
         "variations": [{"key": "control"}, {"key": "blue"}]},
    ],
    "settings": {"holdout": 0},
}
# A visitor of `fast` buys far less (0.05 against 0.15); the banner changes nothing.
PURCHASE = {"control": 0.15, "fast": 0.05}


@pytest.fixture
def shop(tmp_path):
    app, client, auth = shop_with(tmp_path, CONFIG)
    return app, client, auth


def simulate(client, visitors=2400, seed=5):
    bundle = client.get("/v1/sites/shop/bundle.json").get_json()["bundle"]
    rng = random.Random(seed)
    for i in range(visitors):
        visitor = f"v1.al{i:06d}"
        events = []
        for campaign in bundle["campaigns"]:
            _, variation = bucketed_assignment(bundle, campaign, visitor)
            events.append({"id": f"exposure-{i:06d}-{campaign['key']}", "type": "exposure", "version": 1, "ts": NOW_MS,
                           "campaign": campaign["key"], "variation": variation})
            if campaign["key"] == "checkout":
                checkout = variation
        if rng.random() < PURCHASE[checkout]:  # counted for every campaign the visitor is in
            events.append({"id": f"purchase-{i:06d}", "type": "conversion", "version": 1, "ts": NOW_MS + 1, "goal": "purchase",
                           "value": 40})
        response = client.post("/v1/sites/shop/collect", headers={"User-Agent": BROWSER_UA},
                               data=json.dumps({"visitor_id": visitor, "events": events}))
        assert response.status_code == 204


def test_a_worse_guardrail_alerts_and_auto_pause_publishes_a_paused_version_by_the_system(shop):
    app, client, auth = shop
    simulate(client)
    data = client.get("/api/v1/sites/shop/results", headers=auth).get_json()
    checkout, banner = data["campaigns"]
    assert checkout["guardrails"] == ["purchase"] and checkout["goals"] == ["signup", "purchase"]
    alert, revenue = checkout["alerts"]  # fewer buyers, and so less revenue per visitor
    assert (alert["kind"], alert["goal"], alert["variation"], alert["vs"], alert["metric"]) == \
        ("guardrail", "purchase", "fast", "control", "conversion_rate")
    assert alert["uplift"] < -0.4 and alert["p_value"] < 0.05
    assert (revenue["kind"], revenue["metric"]) == ("guardrail", "revenue_per_visitor")
    assert banner["alerts"] == []
    assert "ALERT guardrail purchase: fast is worse than control" in render(data)

    with app.app_context():
        paused = watch.run_pass(app, "test-worker")
        assert [(site, key, version) for site, key, version, _ in paused] == [("shop", "checkout", 2)]
        assert watch.run_pass(app, "another-worker") == []  # one check per period, whoever asks
        bundle = publishing.load_latest("shop")[0]
    assert [c["key"] for c in bundle["campaigns"]] == ["banner"]
    versions = client.get("/api/v1/sites/shop/versions", headers=auth).get_json()["versions"]
    assert versions[0]["version"] == 2 and versions[0]["published_by"] == "system"
    assert versions[0]["note"].startswith("auto_pause checkout: guardrail purchase: fast is worse than control")
    assert versions[1]["published_by"] == "api:default" and "note" not in versions[1]
    draft = client.get("/api/v1/sites/shop/config", headers=auth).get_json()
    assert [c.get("status") for c in draft["campaigns"]] == ["paused", None]  # the next publish keeps it paused
    assert client.post("/api/v1/sites/shop/publish", headers=auth).status_code == 201
    assert [c["key"] for c in client.get("/v1/sites/shop/bundle.json").get_json()["bundle"]["campaigns"]] == ["banner"]
    # nothing left to pause: the banner's guardrail holds
    with app.app_context():
        assert watch.check_site("shop") == []


def test_no_auto_pause_without_the_flag_and_none_when_the_period_is_zero(shop):
    app, client, auth = shop
    config = json.loads(json.dumps(CONFIG))
    config["campaigns"][0]["auto_pause"] = False
    assert client.put("/api/v1/sites/shop/config", json=config, headers=auth).status_code == 200
    assert client.post("/api/v1/sites/shop/publish", headers=auth).status_code == 201
    simulate(client, visitors=1500)
    checkout = client.get("/api/v1/sites/shop/results", headers=auth).get_json()["campaigns"][0]
    assert {a["kind"] for a in checkout["alerts"]} == {"guardrail"}  # still shown
    with app.app_context():
        assert watch.run_pass(app, "test-worker") == []
        assert publishing.latest("shop").version == 2
    app.config["VITRINA_ALERTS_EVERY_S"] = 0
    with app.app_context():
        assert watch.run_pass(app, "test-worker") == []


@pytest.mark.parametrize("campaign, path", [
    ({"guardrails": ["purchases"]}, "/campaigns/0/guardrails/0"),
    ({"auto_pause": True}, "/campaigns/0/auto_pause"),
    ({"guardrails": ["purchase", "purchase"]}, "/campaigns/0/guardrails"),
    ({"auto_pause": "yes", "guardrails": ["purchase"]}, "/campaigns/0/auto_pause"),
])
def test_guardrails_name_goals_and_auto_pause_needs_them(shop, campaign, path):
    _, client, auth = shop
    config = json.loads(json.dumps(CONFIG))
    config["campaigns"][0] = {"key": "checkout", "variations": [{"key": "control"}, {"key": "fast"}], **campaign}
    response = client.put("/api/v1/sites/shop/config", json=config, headers=auth)
    assert response.status_code == 400
    assert [d["path"] for d in response.get_json()["details"]] == [path]


def test_a_sample_ratio_mismatch_is_an_alert():
    campaign = {"key": "split", "type": "experiment", "goals": ["buy"],
                "variations": [{"key": "control", "weight": 0.5}, {"key": "b", "weight": 0.5}]}

    def arm(visitors):
        return {None: {"visitors": visitors, "conversions": 0, "revenue": 0.0, "revenue_sq": 0.0}}
    broken = report.campaign_result("split", campaign, {"control": arm(5000), "b": arm(4500)})
    assert [a["kind"] for a in broken["alerts"]] == ["srm"] and "sample ratio mismatch" in broken["alerts"][0]["message"]
    assert report.campaign_result("split", campaign, {"control": arm(5000), "b": arm(5030)})["alerts"] == []


def test_published_by_names_the_key_the_cli_and_a_rollbacks_origin(shop, tmp_path):
    app, client, auth = shop
    with app.app_context():
        path = tmp_path / "config.json"
        path.write_text(json.dumps(CONFIG))
        assert publishing.publish_file("shop", path).version == 2
    assert client.post("/api/v1/sites/shop/rollback", json={"version": 1}, headers=auth).status_code == 201
    editor = signed_in(app, "eve@shop.example", "editor")
    page = editor.get("/app/s/shop/publish").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    assert editor.post("/app/s/shop/publish", data={"csrf_token": token}).status_code == 302
    versions = client.get("/api/v1/sites/shop/versions", headers=auth).get_json()["versions"]
    assert [(v["version"], v["published_by"], v.get("note")) for v in versions] == [
        (4, "user:eve@shop.example", None), (3, "api:default", "rollback to version 1"), (2, "cli", None),
        (1, "api:default", None)]


def test_an_aa_guardrail_looked_at_daily_stays_within_its_level(capsys):
    """1,000 A/A experiments, 30 daily looks: the one-sided sequential guardrail test calls a
    degradation at some look in at most alpha of them; a real 25% drop is caught in most, and more
    often than by the two-sided sequence's upper end (what one side buys)."""
    rng = np.random.default_rng(7)
    alarms = {}
    for name, effect in (("aa", 1.0), ("drop", 0.75)):
        visitors = rng.poisson(300, (2, 1000, 30))
        converters = rng.binomial(visitors, [[[0.05]], [[0.05 * effect]]])
        visitors, converters = visitors.cumsum(axis=2), converters.cumsum(axis=2)
        enough = (converters >= report.MIN_CONVERSIONS).all(axis=0)
        with np.errstate(divide="ignore", invalid="ignore"):
            theta, variance = stats.log_ratio(*(stats.rate(converters[i], visitors[i]) for i in (0, 1)))
            p = stats.sequential_one_sided_p(theta, variance, visitors.sum(axis=0), 0.05)
            two_sided = stats.sequential_interval(theta, variance, visitors.sum(axis=0), 0.05)[1]
        alarms[name] = float((enough & (p < 0.05)).any(axis=1).mean())
        alarms[name + " two-sided"] = float((enough & (two_sided < 0)).any(axis=1).mean())
    with capsys.disabled():
        print(f"\nguardrail, 1,000 experiments x 30 daily looks: false alarms {alarms['aa']:.1%} (A/A), "
              f"a 25% drop caught in {alarms['drop']:.1%} (two-sided interval: {alarms['drop two-sided']:.1%})")
    assert alarms["aa"] <= 0.05
    assert alarms["drop"] >= 0.8 and alarms["drop"] > alarms["drop two-sided"]




def test_the_workspace_shows_the_alerts_and_what_was_not_counted(shop):
    app, client, auth = shop
    simulate(client, visitors=1500)
    client.post("/v1/sites/shop/collect", headers={"User-Agent": "Googlebot/2.1 (+http://www.google.com/bot.html)"},
                data=json.dumps({"visitor_id": "v1.googlebot1", "events": [
                    {"id": "bot-exposure-1", "type": "exposure", "version": 1, "ts": NOW_MS,
                     "campaign": "banner", "variation": "blue"}]}))
    viewer = signed_in(app, "vic@shop.example", "viewer")
    listing = viewer.get("/app/s/shop/results").get_data(as_text=True)
    assert "purchase worse in fast" in listing and "Not counted (bots, internal traffic, previews):" in listing
    assert "bot 1" in listing
    page = viewer.get("/app/s/shop/results/checkout").get_data(as_text=True)
    assert 'role="alert"><strong>Guardrail purchase</strong>: guardrail purchase: fast is worse than control' in page
