"""Results per slice on a simulated shop whose segments respond differently: effects are planted
per segment, every visitor's batch goes through the real collect endpoint (the server adds the
device and the country from the request), and each slice's winner, the best-per-slice summary
and the CLI's line about it must come out as the simulation's own tallies say. CUPED fills in once
exposures carry their covariates."""
import json
import random
import re
import time
from collections import Counter, defaultdict

import pytest
import redis

from server.events.batch import bucketed_assignment
from server.results.table import render
from tests.conftest import shop_with
from tests.servers import BROWSER_UA
from tests.test_workspace import signed_in

NOW_MS = int(time.time() * 1000)  # collect counts events from the last 3 days only

IPHONE = ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
          "Version/17.4 Mobile/15E148 Safari/604.1")
GB_IP, US_IP = "81.2.69.142", "8.8.8.8"  # what the bundled GeoLite2 database says: GB and US
CONFIG = {
    "segments": {"newsletter": {"utm.source": "newsletter"}, "returning": {"visit.returning": True},
                 "vip": {"user.tier": "vip"}},
    "goals": {"purchase": {"event": "purchase"}},
    "campaigns": [{"key": "hero", "type": "experiment", "goals": ["purchase"],
                   "variations": [{"key": "control"}, {"key": "bold"}, {"key": "calm"}]}],
    "settings": {"holdout": 0},
}
BITS = {"newsletter": "1", "returning": "2", None: ""}  # sorted names: newsletter 0, returning 1, vip 2
# Planted conversion rates: newsletter readers want `bold`, returning visitors `calm`, the rest neither.
RATES = {"newsletter": {"control": 0.08, "bold": 0.20, "calm": 0.08},
         "returning": {"control": 0.08, "bold": 0.08, "calm": 0.20},
         None: {"control": 0.08, "bold": 0.08, "calm": 0.08}}
VISITORS = 6000


@pytest.fixture(params=["sqlite", "redis"])
def site(request, tmp_path):
    """The shop on each store (results read the counters the store folded at collect)."""
    env = {}
    if request.param == "redis":
        env["VITRINA_REDIS_URL"] = request.getfixturevalue("redis_url")
        redis.Redis.from_url(env["VITRINA_REDIS_URL"]).flushall()
    app, client, auth = shop_with(tmp_path, CONFIG, **env)
    yield app, client, auth
    app.extensions["vitrina_store"].close()


def simulate(client, rates=RATES, visitors=VISITORS, seed=13, covariates=False, as_the_tag_sends=False):
    """Send every visitor's exposure (and purchase, drawn from the planted rates) through collect;
    returns the tallies: [(segment, device, country, visit_new, acquisition, variation, converted)].
    `as_the_tag_sends`: the exposure's claims go in the batch's `first_exposure`, as the slices
    module says them, and a later exposure of the same campaign claiming otherwise goes with it."""
    bundle = client.get("/v1/sites/shop/bundle.json").get_json()["bundle"]
    campaign = bundle["campaigns"][0]
    rng = random.Random(seed)
    tallies = []
    for i in range(visitors):
        visitor = f"v1.sim{seed:02d}{i:06d}"
        _, variation = bucketed_assignment(bundle, campaign, visitor)
        segment = rng.choices(["newsletter", "returning", None], [0.4, 0.4, 0.2])[0]
        visits = rng.randint(1, 6) if segment == "returning" else 0
        exposure = {"id": f"x{seed:02d}{i:06d}", "type": "exposure", "version": 1, "ts": NOW_MS,
                    "campaign": "hero", "variation": variation, "holdout": False,
                    "segments": BITS[segment], "pre": [visits, visits * 3 + rng.randint(0, 2)]}
        acquisition = {"newsletter": "email", "returning": "direct", None: None}[segment]
        if acquisition:
            exposure["acquisition"] = acquisition
        rate = rates[segment][variation]
        if covariates:  # earlier visits make a purchase likelier: what CUPED takes out of the noise
            rate = min(0.9, rate * (0.4 + 0.5 * visits))
        converted = rng.random() < rate
        events = [exposure] + ([{"id": f"p{seed:02d}{i:06d}", "type": "conversion", "version": 1,
                                 "ts": NOW_MS + 1, "goal": "purchase", "value": 30}] if converted else [])
        body = {"visitor_id": visitor, "events": events}
        if as_the_tag_sends:
            body["first_exposure"] = {"hero": {field: exposure.pop(field) for field in ("segments", "acquisition", "pre")
                                               if field in exposure}}
            events.append({**exposure, "id": f"y{seed:02d}{i:06d}", "ts": NOW_MS + 2})  # the next page's
        mobile, gb = i % 2 == 0, i % 3 == 0
        response = client.post("/v1/sites/shop/collect", data=json.dumps(body),
                               headers={"User-Agent": IPHONE if mobile else BROWSER_UA},
                               environ_base={"REMOTE_ADDR": GB_IP if gb else US_IP})
        assert response.status_code == 204, response.get_data(as_text=True)
        tallies.append((segment, "mobile" if mobile else "desktop", "GB" if gb else "US",
                        "true" if visits == 0 else "false", acquisition, variation, converted))
    return tallies


def rates_of(tallies, slice_of):
    """{slice value: {variation: (visitors, conversions)}} of the simulation's own tallies."""
    found = defaultdict(lambda: defaultdict(lambda: [0, 0]))
    for row in tallies:
        cell = found[slice_of(row)][row[5]]
        cell[0] += 1
        cell[1] += row[6]
    return found


def test_each_segment_gets_its_own_winner_and_the_summary_is_the_gain_of_choosing_per_segment(site):
    app, client, auth = site
    tallies = simulate(client)
    data = client.get("/api/v1/sites/shop/results?breakdown=segment", headers=auth).get_json()
    (hero,) = data["campaigns"]
    breakdown = hero["breakdown"]
    assert breakdown["dimension"] == "segment" and breakdown["overlapping"] is True
    slices = {s["value"]: s for s in breakdown["slices"]}
    truth = rates_of(tallies, lambda row: row[0] or "(none)")
    assert set(slices) == {"newsletter", "returning", "(none)"}  # vip matched no one: no slice
    for value, by_variation in truth.items():
        for v in slices[value]["variations"]:
            assert (v["visitors"], v["goals"]["purchase"]["conversions"]) == tuple(by_variation[v["key"]])
    assert slices["newsletter"]["winner"]["variation"] == "bold"
    assert slices["returning"]["winner"]["variation"] == "calm"
    assert slices["(none)"]["winner"] is None
    # the same shape as the overall results, adjusted over every slice together
    assert set(slices["newsletter"]) >= {"variations", "holdout", "srm", "comparisons", "winner", "visitors"}
    assert all(c["adjusted_p_value"] is None or c["adjusted_p_value"] >= c["p_value"]
               for s in slices.values() for c in s["comparisons"])

    # the summary, recomputed from the tallies: each slice's winner (or the choice for everyone)
    summary = breakdown["summary"]
    overall = {v: (sum(truth[s][v][0] for s in truth), sum(truth[s][v][1] for s in truth)) for v in RATES[None]}
    everyone = summary["overall"]["variation"]
    assert everyone == next(c["variation"] for c in hero["comparisons"] if c["vs"] == "control" and c["status"] == "ok"
                            and c["adjusted_p_value"] < 0.05 and c["uplift"] == max(
                                x["uplift"] for x in hero["comparisons"] if x["vs"] == "control"))
    assert overall[everyone][1] / overall[everyone][0] > overall["control"][1] / overall["control"][0]
    choice = {"newsletter": "bold", "returning": "calm", "(none)": everyone}
    weight = {s: sum(n for n, _ in truth[s].values()) for s in truth}

    def average(pick):
        return sum(weight[s] * truth[s][pick(s)][1] / truth[s][pick(s)][0] for s in truth) / sum(weight.values())
    per_slice, best, control = average(choice.get), average(lambda s: everyone), average(lambda s: "control")
    assert summary["per_slice"]["rate"] == pytest.approx(per_slice, rel=1e-5)
    assert summary["overall"]["rate"] == pytest.approx(best, rel=1e-5)
    assert summary["per_slice"]["uplift"] == pytest.approx(per_slice / control - 1, rel=1e-4)
    assert summary["gain"] == pytest.approx(per_slice / best - 1, rel=1e-4)
    assert summary["gain"] > 0.2 and (summary["slices"], summary["slices_with_winner"]) == (3, 2)

    text = render(data)
    line = next(line for line in text.splitlines() if "best per segment vs best overall" in line)
    assert f"per segment {summary['per_slice']['uplift'] * 100:+.1f}%" in line
    assert f"({everyone}) {summary['overall']['uplift'] * 100:+.1f}%" in line
    assert f"by {summary['gain'] * 100:+.1f}%" in line and "(2 of 3 slices have a winner)" in line
    newsletter_row = next(line for line in text.splitlines() if line.strip().startswith("newsletter"))
    assert newsletter_row.rstrip().endswith("bold")

    # the workspace: slices x variations, each slice's winner marked in its column, the summary line
    page = signed_in(app, "ann@shop.example", "viewer").get("/app/s/shop/results/hero?by=segment")
    html = page.get_data(as_text=True)
    assert page.status_code == 200
    header = re.search(r'<table id="slices">.*?<thead>(.*?)</thead>', html, re.S).group(1)
    columns = re.findall(r'<th scope="col"[^>]*>([^<]*)</th>', header)
    assert columns == ["segment", "Visitors", "control", "bold", "calm", "Winner"]
    for value, winner in (("newsletter", "bold"), ("returning", "calm"), ("(none)", None)):
        row = re.search(rf'<tr><th scope="row">{re.escape(value)}</th>(.*?)</tr>', html, re.S).group(1)
        cells = re.findall(r"<td([^>]*)>(.*?)</td>", row, re.S)
        marked = [columns[i + 1] for i, (attrs, _) in enumerate(cells) if 'class="winner"' in attrs]
        assert marked == ([winner] if winner else []) and cells[-1][1].strip() == (winner or "—"), value
    lead = re.sub(r"\s+", " ", re.search(r'<p id="slices-summary">(.*?)</p>', html, re.S).group(1))
    assert f"gives {summary['per_slice']['uplift'] * 100:+.1f}%" in lead
    assert f"({everyone}) {summary['overall']['uplift'] * 100:+.1f}%" in lead
    assert f"{summary['gain'] * 100:+.1f}% conversions by choosing per segment" in lead
    assert "(2 of 3 slices have a winner)" in lead
    other = signed_in(app, "bob@shop.example", "viewer").get("/app/s/shop/results/hero?by=device.type")
    assert '<th scope="row">mobile</th>' in other.get_data(as_text=True)

    # the other dimensions: the server's device and country, the browser's visit and acquisition
    for dimension, column in (("device.type", 1), ("geo.country", 2), ("visit.new", 3), ("acquisition", 4)):
        sliced = client.get(f"/api/v1/sites/shop/results?breakdown={dimension}", headers=auth).get_json()
        counted = {s["value"]: s["visitors"] for s in sliced["campaigns"][0]["breakdown"]["slices"]}
        expected = Counter(row[column] or "(unknown)" for row in tallies)
        assert counted == dict(expected), dimension
        assert sliced["campaigns"][0]["breakdown"]["overlapping"] is False
    # the overall figures do not change when slices are asked for
    plain = client.get("/api/v1/sites/shop/results", headers=auth).get_json()
    assert "breakdown" not in plain["campaigns"][0]
    assert plain["campaigns"][0]["comparisons"] == hero["comparisons"]


def test_cuped_fills_in_once_exposures_carry_covariates_and_narrows_the_interval(site):
    app, client, auth = site
    rates = {s: {"control": 0.08, "bold": 0.10, "calm": 0.08} for s in RATES}
    simulate(client, rates=rates, visitors=4000, seed=14, covariates=True)
    hero = client.get("/api/v1/sites/shop/results", headers=auth).get_json()["campaigns"][0]
    row = next(c for c in hero["comparisons"] if (c["variation"], c["vs"]) == ("bold", "control"))
    assert row["status"] == "ok" and row["cuped"] is not None
    plain_width = row["ci"][1] - row["ci"][0]
    cuped_width = row["cuped"]["ci"][1] - row["cuped"]["ci"][0]
    assert cuped_width < 0.95 * plain_width, (row["ci"], row["cuped"]["ci"])
    # each slice keeps CUPED's sums too: where earlier visits vary (returning visitors), CUPED
    # narrows the slice's interval (less than the campaign's: the segment already tells much of
    # what earlier visits tell)
    sliced = client.get("/api/v1/sites/shop/results?breakdown=segment", headers=auth).get_json()["campaigns"][0]
    assert sliced["comparisons"] == hero["comparisons"]
    returning = next(s for s in sliced["breakdown"]["slices"] if s["value"] == "returning")
    row = next(c for c in returning["comparisons"] if (c["variation"], c["vs"], c["metric"]) == (
        "bold", "control", "conversion_rate"))
    assert row["status"] == "ok" and row["cuped"] is not None
    assert row["cuped"]["ci"][1] - row["cuped"]["ci"][0] < row["ci"][1] - row["ci"][0], row
    # an exposure without covariates (an older SDK) leaves its arm without CUPED rather than biased
    bundle = client.get("/v1/sites/shop/bundle.json").get_json()["bundle"]
    visitor = next(f"v1.old{i:06d}" for i in range(10_000)
                   if bucketed_assignment(bundle, bundle["campaigns"][0], f"v1.old{i:06d}")[1] == "bold")
    client.post("/v1/sites/shop/collect", headers={"User-Agent": BROWSER_UA}, data=json.dumps({
        "visitor_id": visitor, "events": [{"id": "old-exposure-1", "type": "exposure", "version": 1,
                                           "ts": NOW_MS, "campaign": "hero", "variation": "bold"}]}))
    hero = client.get("/api/v1/sites/shop/results", headers=auth).get_json()["campaigns"][0]
    row = next(c for c in hero["comparisons"] if (c["variation"], c["vs"]) == ("bold", "control"))
    assert row["status"] == "ok" and row["cuped"] is None


def test_breakdown_is_one_of_the_dimensions(site):
    _, client, auth = site
    response = client.get("/api/v1/sites/shop/results?breakdown=browser", headers=auth)
    assert response.status_code == 400 and response.get_json()["details"][0]["path"] == "/breakdown"


def test_channels_and_slices_together(site):
    """Slices are what the browser said at the exposure: web units only. With ?channel=web the
    breakdown is the whole one; with ?channel=email there is no slice (an email exposure
    carries no browser facts), and the overall figures are the channel's."""
    _, client, auth = site
    simulate(client, visitors=300, seed=15)
    every, web, email = (client.get(f"/api/v1/sites/shop/results?breakdown=segment{query}", headers=auth).get_json()
                         for query in ("", "&channel=web", "&channel=email"))
    assert web["channel"] == "web" and email["channel"] == "email" and "channel" not in every
    assert web["campaigns"][0]["breakdown"]["slices"] == every["campaigns"][0]["breakdown"]["slices"]
    assert sum(s["visitors"] for s in web["campaigns"][0]["breakdown"]["slices"]) >= 300
    assert email["campaigns"][0]["breakdown"]["slices"] == []
    assert sum(v["visitors"] for v in email["campaigns"][0]["variations"]) == 0


def test_claims_said_once_per_batch_count_as_on_each_exposure(tmp_path):
    """The slices module says each campaign's first-exposure claims once per batch
    (`first_exposure`): the same visitors give the same breakdown, in every dimension, as
    exposures carrying their own; an exposure's own claims stay its own."""
    breakdowns = []
    for name, as_the_tag_sends in (("each", False), ("batch", True)):
        (tmp_path / name).mkdir()
        _, client, auth = shop_with(tmp_path / name, CONFIG)
        simulate(client, visitors=600, seed=16, covariates=True, as_the_tag_sends=as_the_tag_sends)
        breakdowns.append([client.get(f"/api/v1/sites/shop/results?breakdown={dimension}", headers=auth).get_json()
                           ["campaigns"][0] for dimension in ("segment", "acquisition", "visit.new")])
    assert breakdowns[0] == breakdowns[1]
    assert {s["value"] for s in breakdowns[1][1]["breakdown"]["slices"]} == {"email", "direct", "(unknown)"}
    # `pre` reached the counters
    assert any(c["cuped"] is not None for c in breakdowns[1][0]["comparisons"]), breakdowns[1][0]["comparisons"]
    bundle = client.get("/v1/sites/shop/bundle.json").get_json()["bundle"]
    visitor = "v1.own-claims-1"
    _, variation = bucketed_assignment(bundle, bundle["campaigns"][0], visitor)
    own = {"id": "own-claims-1", "type": "exposure", "version": 1, "ts": NOW_MS, "campaign": "hero",
           "variation": variation, "segments": "4", "acquisition": "social"}  # vip; the batch says otherwise
    response = client.post("/v1/sites/shop/collect", headers={"User-Agent": BROWSER_UA}, data=json.dumps({
        "visitor_id": visitor, "events": [own], "first_exposure": {
            "hero": {"segments": "1", "acquisition": "email", "pre": [0, 0]}, "elsewhere": {"segments": "2"}}}))
    assert response.status_code == 204, response.get_data(as_text=True)
    sliced = {dimension: {s["value"]: s["visitors"] for s in client.get(
        f"/api/v1/sites/shop/results?breakdown={dimension}", headers=auth).get_json()["campaigns"][0]["breakdown"]["slices"]}
        for dimension in ("segment", "acquisition", "visit.new")}
    assert sliced["segment"]["vip"] == 1 and sliced["acquisition"]["social"] == 1 and sliced["visit.new"]["true"] >= 1


@pytest.mark.parametrize("first_exposure, path", [
    ({"hero": {"segments": "X"}}, "/first_exposure/hero/segments"),
    ({"hero": {"pre": [1]}}, "/first_exposure/hero/pre"),
    ({"hero": {"acquisition": "a" * 65}}, "/first_exposure/hero/acquisition"),
    ({"hero": {"slice": "default"}}, "/first_exposure/hero"),
    ({"-hero": {}}, "/first_exposure"),
    ({f"c{i}": {} for i in range(51)}, "/first_exposure"),
    ([], "/first_exposure"),
])
def test_a_batch_whose_first_exposure_breaks_the_schema_is_refused_with_its_path(site, first_exposure, path):
    _, client, _ = site
    response = client.post("/v1/sites/shop/collect", data=json.dumps({
        "visitor_id": "v1.broken-claims", "first_exposure": first_exposure,
        "events": [{"id": "broken-claims-1", "type": "conversion", "version": 1, "ts": NOW_MS, "goal": "purchase"}]}))
    assert response.status_code == 400
    assert [d["path"] for d in response.get_json()["details"]] == [path]
