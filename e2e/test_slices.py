"""Results per slice from real browser traffic, in Chromium, on both stores: the slices module
(tag.js carries it with any campaign) says what each campaign's first exposure claimed (the
segments matched, how the session arrived, visits and page views before) and whether the browser
is marked internal; results' breakdowns, CUPED and the exclusions must count what the browsers did."""
import json
import random
import time

from server.events.batch import bucketed_assignment
from server.qa import visitor_cookie, wait_for_ready

from .conftest import http

NOTE = "Order before 2 pm, delivered tomorrow."
CONFIG = {
    "segments": {"landing_a": {"page.query.seg": "a"}, "returning": {"visit.returning": True},
                 "nobody": {"page.path": "/nowhere"}},
    "goals": {"purchase": {"event": "purchase"}},
    "campaigns": [{
        "key": "note", "type": "experiment", "pages": {"page.path": {"$in": ["/", "/index.html"]}},
        "variations": [{"key": "control", "weight": 0.5, "actions": []},
                       {"key": "today", "weight": 0.5, "actions": [{"selector": "#note", "text": NOTE}]}],
        "goals": ["purchase"]}],
    "settings": {"holdout": 0},
}
BLOG = "https://blog.example.org/posts/gift-ideas"


def _slices(site, dimension):
    response = site.api("GET", f"/results?breakdown={dimension}")
    assert response.status == 200, response.body.decode()
    campaign = response.json()["campaigns"][0]
    return {s["value"]: s["visitors"] for s in campaign["breakdown"]["slices"]}


def _visit(new_context, url, referer=None, then=None):
    """A new visitor's page view (then more of theirs: `then`, URLs); the context closes (pagehide:
    the last batch goes by beacon)."""
    context = new_context()
    page = context.new_page()
    for target in [url, *(then or [])]:
        page.goto(target, referer=referer if target == url else None)
        wait_for_ready(page)
    page.close(run_before_unload=True)
    context.close()


def test_breakdowns_count_the_segment_and_acquisition_of_each_browsers_first_exposure(new_context, store_server):
    site = store_server.new_site(CONFIG)
    email_a = site.url("/?utm_source=news&utm_medium=email&seg=a")
    for _ in range(2):
        _visit(new_context, email_a)
    # from a blog: referral; the second one lands on segment A's link, then browses without it (their
    # slice is their first exposure's)
    _visit(new_context, site.url("/"), referer=BLOG)
    _visit(new_context, site.url("/?seg=a"), referer=BLOG, then=[site.url("/"), site.url("/index.html")])
    _visit(new_context, site.url("/index.html?utm_medium=Email"))  # medium as tagged: the module lowercases it
    site.wait_for_results(lambda r: r.total_visitors("note") == 5, timeout=15)
    assert _slices(site, "segment") == {"landing_a": 3, "(none)": 2}
    assert _slices(site, "acquisition") == {"email": 3, "referral": 2}
    assert _slices(site, "visit.new") == {"true": 5}
    results = site.results()
    assert results.rejected() == {} and results.get("excluded", {}) == {}


def test_a_browser_marked_internal_is_excluded_on_later_pages_until_unmarked(new_context, store_server):
    site = store_server.new_site(CONFIG)
    context = new_context()
    page = context.new_page()
    # marked: this page view, and a later one with a purchase, are internal
    page.goto(site.url("/?vitrina_internal=1"))
    wait_for_ready(page)
    page.goto(site.url("/"))
    wait_for_ready(page)
    page.evaluate("vitrina.track('purchase', {value: 30})")
    page.goto(site.url("/?vitrina_internal=0"))  # forgotten: counted from here on
    wait_for_ready(page)
    page.goto(site.url("/index.html"))
    wait_for_ready(page)
    page.evaluate("vitrina.track('purchase', {value: 20})")
    page.close(run_before_unload=True)
    context.close()
    results = site.wait_for_results(lambda r: r.total_visitors("note") == 1 and r.get("excluded", {}).get("internal") == 3
                                    and sum(r.goal("note", v, "purchase")["conversions"] for v in ("control", "today")))
    assert results.get("excluded") == {"internal": 3}  # two exposures and a purchase, by reason
    arm = next(v for v in ("control", "today") if results.visitors("note", v) == 1)
    assert results.goal("note", arm, "purchase")["revenue"] == 20
    assert results.rejected() == {}


def test_cuped_fills_in_for_browser_traffic_whose_visits_before_vary(new_context, store_server):
    """200 browsers (100 per arm), each with its own history in the tag's visit state (sessions and
    page views so far), buy more the more they came before; CUPED then adjusts the comparison from
    what the module sent as `pre`, and narrows it."""
    site = store_server.new_site(CONFIG)
    bundle = http("GET", f"{site.server_url}/v1/sites/{site.name}/bundle.json").json()["bundle"]
    campaign = bundle["campaigns"][0]
    per_arm, visitors = {"control": [], "today": []}, (f"v1.cuped{i:06d}" for i in range(10**6))
    while min(map(len, per_arm.values())) < 100:
        visitor = next(visitors)
        arm = per_arm[bucketed_assignment(bundle, campaign, visitor)[1]]
        if len(arm) < 100:
            arm.append(visitor)
    rng = random.Random(31)
    now = int(time.time() * 1000)
    # one page, the browser made each visitor in turn: their id cookie and visit state set on a page
    # without the tag, once the previous visitor's page has gone (storing and sending as it went)
    context = new_context()
    page = context.new_page()
    for visitor in sorted(per_arm["control"] + per_arm["today"]):
        page.goto(site.url("/no-tag.html"))
        sessions = rng.randint(0, 5)
        pageviews = sessions * 3 + rng.randint(0, 4)
        buys = rng.random() < 0.05 + 0.12 * sessions  # the visits before predict the purchase
        state = {"n": sessions, "s": now - 7_200_000, "l": now - 3_600_000, "p": 1, "t": pageviews, "e": {}, "x": {},
                 "k": {}, "r": ["direct", "direct"], "u": {}}
        context.clear_cookies()
        context.add_cookies([visitor_cookie(site.shop_url, visitor)])
        page.evaluate("(state) => (localStorage.clear(), localStorage.setItem('vtr_v', state))", json.dumps(state))
        page.goto(site.url("/"))
        wait_for_ready(page)
        if buys:
            page.evaluate("vitrina.track('purchase', {value: 25})")
    page.goto(site.url("/no-tag.html"))  # the last visitor's page goes too: its beacon leaves
    # the browser stays open until every visitor is counted (closing it may cancel a beacon in flight)
    site.wait_for_results(lambda r: r.total_visitors("note") == 200, timeout=30)
    context.close()
    note = site.results().campaign("note")
    row = next(c for c in note["comparisons"] if c["vs"] == "control" and c["goal"] == "purchase"
               and c["metric"] == "conversion_rate")
    assert row["status"] == "ok" and row["cuped"] is not None, row
    assert row["cuped"]["ci"][1] - row["cuped"]["ci"][0] < row["ci"][1] - row["ci"][0], row
    assert _slices(site, "visit.new")["false"] > 100  # visits before 0 are new visitors, the rest not
    assert site.results().rejected() == {}


def test_first_exposures_edited_in_storage_are_dropped_and_the_browser_still_counted(new_context, store_server):
    """What the module kept in `vtr_f` is sent with every batch: an entry collect would refuse
    (edited by hand or another script) must not cost the browser its events."""
    site = store_server.new_site(CONFIG)
    context = new_context()
    page = context.new_page()
    page.goto(site.url("/no-such-page.html"))  # the shop's origin, before the tag ever ran
    page.evaluate("""(now) => localStorage.setItem('vtr_f', JSON.stringify({
        note: [{segments: 'ZZ', acquisition: 'email', pre: [0, 0]}, now],
        other: [{segments: '1', acquisition: 'email', pre: [0, 0], extra: true}, now],
        'bad key!': [{segments: '1', acquisition: 'email', pre: [0, 0]}, now]}))""", int(time.time() * 1000))
    page.goto(site.url("/?seg=a"))
    wait_for_ready(page)
    page.evaluate("vitrina.track('purchase', {value: 30})")
    page.close(run_before_unload=True)
    context.close()
    results = site.wait_for_results(lambda r: r.total_visitors("note") == 1
                                    and sum(r.goal("note", v, "purchase")["conversions"] for v in ("control", "today")))
    assert results.rejected() == {}
    assert _slices(site, "segment") == {"landing_a": 1}  # this page view's own claims, not the edited ones
