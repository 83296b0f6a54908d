"""Adaptive allocation in Chromium: the weights an allocation publishes as a revision change what
tag.js serves (without a new version), new visitors follow them, a returning visitor keeps the
variation they had, and every event the real SDK sends is accepted and counted per slice."""
import json
import time

from server.decisions.bucketing import hash as bucket_hash
from server.decisions.decide import decide
from server.qa import reasons, visitor_cookie, wait_for_ready

from .conftest import http, shopper_user_agent

CONFIG = {
    "segments": {"newsletter": {"utm.source": "newsletter"}},
    "goals": {"purchase": {"event": "purchase"}},
    "campaigns": [{"key": "hero", "type": "experiment", "goals": ["purchase"],
                   "allocation": {"mode": "adaptive", "goal": "purchase", "by": ["segment:newsletter", "device.type"],
                                  "explore": 0.1, "min_visitors": 30},
                   "variations": [{"key": "control", "weight": 0.2, "actions": []},
                                  {"key": "b", "weight": 0.4, "actions": [{"selector": "h1", "text": "B"}]},
                                  {"key": "c", "weight": 0.4, "actions": [{"selector": "h1", "text": "C"}]}]}],
    "settings": {"holdout": 0, "antiflicker_ms": 1000},
}
NEWSLETTER = "/targeting.html?utm_source=newsletter&vitrina_debug=1"
NOW = int(time.time() * 1000)  # collect refuses events more than 3 days old


def _bundle(site):
    return http("GET", f"{site.server_url}/v1/sites/{site.name}/bundle.json").json()["bundle"]


def _id_in(low, high, prefix):
    """A visitor id whose bucket for `hero` lies in [low, high)."""
    return next(f"v1.{prefix}{i:06d}" for i in range(100_000) if low <= bucket_hash("hero", f"v1.{prefix}{i:06d}") < high)


def _page(new_context, site, visitor):
    context = new_context()
    context.add_cookies([visitor_cookie(site.shop_url, visitor)])
    page = context.new_page()
    # tag.js may be kept a minute by the browser: this visitor must ask the server each time
    context.new_cdp_session(page).send("Network.setCacheDisabled", {"cacheDisabled": True})
    page.sent = []  # the collect batches this page sent
    context.on("request", lambda r: r.method == "POST" and r.url.endswith("/collect") and page.sent.append(r.post_data))
    return context, page


def _made(page):
    """Where the batches this page sent say hero's exposure was made, and the variations exposed
    (the tag sends its first batch a second after the first paint)."""
    deadline = 10_000
    while not page.sent and deadline > 0:
        page.wait_for_timeout(100)
        deadline -= 100
    made, shown = set(), []
    for body in map(json.loads, page.sent):
        for event in body["events"]:
            if event["type"] == "exposure" and event["campaign"] == "hero":
                shown.append(event["variation"])
                made.add(tuple(body.get("made", {}).get("hero") or ()))
    page.sent.clear()
    return shown, made


def _plant(site, bundle, visitors=60):
    """Newsletter readers decided as the tag would (decide, the twin), b converting, c not: sent
    to collect as the tag sends them, from a shopper's browser (collect counts nothing from
    robots, Python's client included)."""
    for i in range(visitors):
        visitor = f"v1.planted{i:05d}"
        decision = decide(bundle, {"utm": {"source": "newsletter"}}, visitor, now=NOW)
        variation = decision["variations"]["hero"]
        slice_name, revision = decision["slices"]["hero"]
        events = [{"id": f"planted{i:05d}e", "type": "exposure", "version": bundle["version"], "ts": NOW,
                   "campaign": "hero", "variation": variation, "holdout": False, "slice": slice_name,
                   "revision": revision}]
        if variation == "b":
            events.append({"id": f"planted{i:05d}c", "type": "conversion", "version": bundle["version"], "ts": NOW,
                           "goal": "purchase", "value": 20})
        answer = http("POST", f"{site.server_url}/v1/sites/{site.name}/collect",
                      {"visitor_id": visitor, "events": events}, {"User-Agent": shopper_user_agent()})
        assert answer.status == 204, answer.body


def test_weights_change_in_the_served_tag_and_a_returning_visitor_keeps_their_variation(new_context, vitrina):
    site = vitrina.new_site(CONFIG)
    before = _bundle(site)
    assert "revision" not in before
    # a newsletter reader whom the campaign's own weights give c (bucket in [0.6, 1)), and whom
    # weights leaning to b will give b (the bucket below 0.9)
    returning = _id_in(0.6, 0.9, "back")
    context, page = _page(new_context, site, returning)
    page.goto(site.url(NEWSLETTER))
    wait_for_ready(page)
    assert page.evaluate("vitrina.getVariation('hero')") == "c"
    assert page.text_content("h1") == "C"
    assert _made(page) == (["c"], {("segment:newsletter", None)})

    _plant(site, before)
    summary = json.loads(vitrina.cli("allocate", site.name).strip().splitlines()[-1])
    assert summary["version"] == before["version"]
    after = _bundle(site)
    assert after["version"] == before["version"], "a revision is no new version"
    weights = after["revision"]["allocations"]["hero"]["weights"]["segment:newsletter"]
    assert weights[0] == 0.2 and weights[1] > 0.6 and weights[2] < 0.2, weights
    tag = http("GET", f"{site.server_url}/v1/sites/{site.name}/tag.js")
    assert f'"revision":{after["revision"]["revision"]}'.encode() in tag.body

    # the returning visitor reloads: same variation, sticky, with the slice and revision it was made in
    page.goto(site.url(NEWSLETTER))
    wait_for_ready(page)
    assert page.evaluate("vitrina.getVariation('hero')") == "c"
    assert reasons(page)["hero"] == "sticky c"
    assert _made(page) == (["c"], {("segment:newsletter", None)})
    context.close()

    # a new visitor with a bucket the old weights gave c now gets b, by revision's weights
    newcomer = _id_in(0.6, 0.2 + weights[1] - 0.01, "new")
    context, page = _page(new_context, site, newcomer)
    page.goto(site.url(NEWSLETTER))
    wait_for_ready(page)
    assert page.evaluate("vitrina.getVariation('hero')") == "b"
    assert page.text_content("h1") == "B"
    assert _made(page) == (["b"], {("segment:newsletter", after["revision"]["revision"])})
    context.close()

    # every event the browsers sent was accepted and counted under its slice and revision
    results = site.wait_for_results(lambda r: sum(v["visitors"] for v in r.campaign("hero")["variations"]) >= 62)
    assert results.rejected() == {}
    allocation = results.campaign("hero")["allocation"]
    slices = {s["slice"]: s for s in allocation["slices"]}
    assert slices["segment:newsletter"]["leader"] == "b"
    assert slices["segment:newsletter"]["weights"]["b"] == weights[1]
    assert [s["revision"] for s in allocation["srm"]] == [None, after["revision"]["revision"]]
