"""The campaign engine in real Chromium: A/B/n with a traffic share, a personalization with a
control, the holdout, groups and selector exclusion, schedule, caps, status, sticky assignment
and split-URL redirects (exposure by beacon first, no loop, no sample-ratio mismatch).

Pages: e2e/pages/engine/; campaigns: engine-*, excl-* in e2e/pages/config.json. Decisions,
reasons and exposures are read with server.qa, the helpers QA teams use in their own tests.
"""
import copy
import json
import random
import re
from datetime import datetime, timedelta, timezone

from playwright.sync_api import expect

from server.qa import (
    decisions,
    exposures,
    force_url,
    holdout,
    reasons,
    visitor_cookie,
    wait_for_debug,
    wait_for_ready,
)
from server.wire.schemas import problems

from .pageutil import CONFIG, pick_visitors


def as_visitor(new_context, site, vid, **options):
    """A page in a new context whose vtr_id cookie already holds `vid`."""
    context = new_context(**options)
    context.add_cookies([visitor_cookie(site.shop_url, vid)])
    return context.new_page()


def only(mapping, keys):
    return {k: v for k, v in mapping.items() if k in keys}


def collected(requests, campaign):
    """Exposures of `campaign` in the collect bodies the browser sent (fetch or beacon)."""
    found = []
    for r in requests:
        if r.method == "POST" and r.url.endswith("/collect"):
            body = json.loads(r.post_data)
            assert problems("collect-batch", body) == []  # what the SDK sends is what the schema says
            found += [e for e in body["events"] if e["type"] == "exposure" and e["campaign"] == campaign]
    return found


ABN = ("engine-abn", "engine-welcome")


def test_abn_experiment_and_personalization_control_bucket_as_the_server_does(new_context, vitrina):
    """Traffic share, weights and a personalization's control: the browser shows, reports and
    explains what `decide` gives each visitor, and results count each arm exactly."""
    site = vitrina.new_site()
    attributes = {"page": {"path": "/engine/abn.html"}}
    picked = pick_visitors(site, attributes, lambda d: d["variations"].get("engine-abn"), (None, "control", "b", "c"))
    picked.update(pick_visitors(site, attributes, lambda d: d["variations"].get("engine-welcome"),
                                ("control", "welcome")))
    titles = {None: "Original headline", "control": "Original headline", "b": "Headline B", "c": "Headline C"}
    counts = {}
    for vid in dict.fromkeys(v for ids in picked.values() for v in ids):
        page = as_visitor(new_context, site, vid)
        page.goto(force_url(site.url("/engine/abn.html"), debug=True))
        server = site.decide(vid, attributes)
        wanted = only(server["variations"], ABN)
        assert only(decisions(page), ABN) == wanted, vid
        assert only(reasons(page), ABN) == only(server["reasons"], ABN), vid
        expect(page.locator("#abn-title")).to_have_text(titles[wanted.get("engine-abn")])
        expect(page.locator("#abn-note")).to_have_text(
            "Welcome back" if wanted["engine-welcome"] == "welcome" else "Original note")
        # Outside the traffic share: no exposure at all, so the visitor is not in the results.
        assert {e["campaign"]: e["variation"] for e in exposures(page)} == wanted
        for k, v in wanted.items():
            counts[k, v] = counts.get((k, v), 0) + 1
        page.goto("about:blank")
        page.context.close()

    assert "engine-abn" not in site.decide(picked[None][0], attributes)["variations"]
    results = site.wait_for_results(lambda r: sum(r.total_visitors(k) for k in ABN) == sum(counts.values()))
    for (k, v), n in counts.items():
        assert results.visitors(k, v) == n, (k, v)
    assert results.rejected() == {}


def test_holdout_records_would_be_exposures_and_conversions(new_context, vitrina):
    """A holdout visitor sees no campaign; its would-be exposures (after the same group and
    selector exclusion) and its conversions are recorded as the holdout."""
    config = copy.deepcopy(CONFIG)
    config["settings"]["holdout"] = 0.5
    site = vitrina.new_site(config)
    attributes = {"page": {"path": "/engine/exclusion.html"}}
    picked = pick_visitors(site, attributes, lambda d: d["holdout"], (True, False))
    for held, (vid,) in picked.items():
        page = as_visitor(new_context, site, vid)
        page.goto(site.url("/engine/exclusion.html"))
        assert holdout(page) is held
        expect(page.locator("#promo-b")).to_have_text("Original promo B" if held else "Promo B (group, high priority)")
        expect(page.locator("#badge")).to_have_text("Original badge" if held else "Badge (high priority)")
        expect(page.locator("#promo-a")).to_have_text("Original promo A")
        assert {e["campaign"]: (e["variation"], e["holdout"]) for e in exposures(page)} == {
            k: (None if held else "on", held) for k in ("excl-group-high", "excl-selector-high")}
        page.evaluate("vitrina.track('purchase', {value: 5})")
        page.goto("about:blank")
        page.context.close()

    def both_converted(r):
        return all(r.goal("excl-group-high", arm, "purchase")["conversions"] == 1 for arm in (None, "on"))

    results = site.wait_for_results(both_converted)
    for campaign in ("excl-group-high", "excl-selector-high"):
        assert results.visitors(campaign, None) == 1
        assert results.visitors(campaign, "on") == 1
        assert results.goal(campaign, None, "purchase") == {"conversions": 1, "rate": 1.0, "revenue": 5.0,
            "revenue_per_visitor": 5.0, "orders": 0, "aov": None}
    # Excluded for both visitors: held-out visitors are not counted where others would not be.
    assert results.total_visitors("excl-group-low") == 0
    assert results.total_visitors("excl-selector-low") == 0
    assert results.rejected() == {}


def test_group_priority_and_selector_exclusion(new_context, shop):
    """Within a group the highest-priority eligible campaign applies alone; two campaigns that
    touch the same selector never both apply. Same outcome and reasons as `decide`."""
    for query, shown in (("", {"excl-group-high": "#promo-b", "excl-selector-high": "#badge"}),
                         ("?nohigh=1", {"excl-group-low": "#promo-a", "excl-selector-high": "#badge"})):
        vid = "e2e-engine-exclusion" + query.replace("?", "-").replace("=", "-")  # a first visit: no sticky reason
        page = as_visitor(new_context, shop, vid)
        page.goto(force_url(shop.url("/engine/exclusion.html" + query), debug=True))
        attributes = {"page": {"path": "/engine/exclusion.html", "query": {"nohigh": "1"} if query else {}}}
        server = shop.decide(vid, attributes)
        keys = [c["key"] for c in CONFIG["campaigns"] if c["key"].startswith("excl-")]
        assert only(decisions(page), keys) == {k: "on" for k in shown} == only(server["variations"], keys)
        assert only(reasons(page), keys) == only(server["reasons"], keys)
        assert {e["campaign"] for e in exposures(page)} == set(shown)
        texts = {"#promo-a": "Promo A (group, low priority)", "#promo-b": "Promo B (group, high priority)",
                 "#badge": "Badge (high priority)"}
        for selector, text in texts.items():
            original = {"#promo-a": "Original promo A", "#promo-b": "Original promo B"}.get(selector)
            expect(page.locator(selector)).to_have_text(text if selector in shown.values() else original)

    why = reasons(page)
    assert why["excl-group-high"] == "conditions not matched"
    assert why["excl-selector-low"] == "excluded by selector #badge (excl-selector-high)"
    page.goto(force_url(shop.url("/engine/exclusion.html"), debug=True))
    assert reasons(page)["excl-group-low"] == "excluded by group engine-banner (excl-group-high)"


def _at(text):
    return datetime.fromisoformat(text).replace(tzinfo=timezone.utc)


def test_schedule_follows_the_clock_and_refresh_reevaluates(page, shop):
    """A campaign runs only between its start and end; vitrina.refresh() re-decides on the
    same page view (applying, then taking the change back), with one exposure for the view."""
    url = force_url(shop.url("/engine/schedule.html"), debug=True)
    title = page.locator("#schedule")
    page.goto(url)
    assert reasons(page)["engine-scheduled"] == "not scheduled"
    expect(title).to_have_text("Original schedule")

    page.clock.set_fixed_time(_at("2090-01-15T12:00:00"))
    page.evaluate("vitrina.refresh()")
    expect(title).to_have_text("January 2090 sale")
    assert page.evaluate("vitrina.getVariation('engine-scheduled')") == "sale"
    assert [e["campaign"] for e in exposures(page)] == ["engine-scheduled"]

    page.clock.set_fixed_time(_at("2090-02-01T00:00:00"))  # the end is exclusive
    page.evaluate("vitrina.refresh()")
    expect(title).to_have_text("Original schedule")
    assert page.evaluate("vitrina.getVariation('engine-scheduled')") is None
    assert reasons(page)["engine-scheduled"] == "not scheduled"

    page.clock.set_fixed_time(_at("2090-01-31T23:59:59"))
    page.goto(url)  # a page view inside the window applies at load
    expect(title).to_have_text("January 2090 sale")


def test_frequency_caps_per_session_and_per_visitor(page, shop):
    """cap {per_visitor: 2, per_session: 1}: shown once in a session (a re-decision on the same
    page view keeps it), again in the next session (30 minutes later), never a third time."""
    url = force_url(shop.url("/engine/capped.html"), debug=True)
    offer = page.locator("#capped")
    start = datetime.now(timezone.utc)
    shown_in = []
    for minutes in (0, 0, 31, 31, 62):
        page.clock.set_fixed_time(start + timedelta(minutes=minutes))
        page.goto(url)
        applied = page.evaluate("vitrina.getVariation('engine-capped')") == "shown"
        expect(offer).to_have_text("Capped offer" if applied else "Original capped")
        assert applied or reasons(page)["engine-capped"] == "capped"
        if applied:
            page.evaluate("vitrina.set({probe: 1})")  # re-deciding on the same view keeps it
            expect(offer).to_have_text("Capped offer")
        shown_in.append(applied)
    assert shown_in == [True, False, True, False, False]


def test_paused_and_draft_campaigns_are_not_delivered(page, vitrina):
    config = copy.deepcopy(CONFIG)
    status_page = {"page.path": "/engine/status.html"}
    for key, status, priority in (("status-paused", "paused", 9), ("status-draft", "draft", 8),
                                  ("status-live", "live", 1)):
        config["campaigns"].append({
            "key": key, "type": "personalization", "status": status, "pages": status_page, "priority": priority,
            "variations": [{"key": "on", "actions": [{"selector": "#status", "text": f"{status} campaign"}]}]})
    site = vitrina.new_site(config)
    page.goto(force_url(site.url("/engine/status.html"), debug=True))
    # Had the paused or draft one been delivered, its priority would have taken #status.
    expect(page.locator("#status")).to_have_text("live campaign")
    assert only(decisions(page), ("status-paused", "status-draft", "status-live")) == {"status-live": "on"}
    assert "status-paused" not in reasons(page) and "status-draft" not in reasons(page)
    decided = site.decide("e2e-engine-status", {"page": {"path": "/engine/status.html"}})
    assert {"status-paused", "status-draft"}.isdisjoint(decided["reasons"])


def test_sticky_assignment_survives_weight_changes_until_the_campaign_restarts(new_context, vitrina):
    """A visitor keeps the variation they saw when the weights change; a new seed (restart)
    assigns afresh. The server accepts the sticky exposure made under the old weights."""
    from server.decisions.bucketing import hash as bucket

    config = copy.deepcopy(CONFIG)
    site = vitrina.new_site(config)
    restart_seed = "engine-sticky-restarted"
    # b under 50/50, a under 90/10, and a after the restart under 90/10.
    vid = next(v for v in (f"e2e-sticky-{i:04d}" for i in range(1000))
               if 0.5 <= bucket("engine-sticky", v) < 0.9 and bucket(restart_seed, v) < 0.9)
    url = force_url(site.url("/engine/sticky.html"), debug=True)
    title = "#sticky"

    page = as_visitor(new_context, site, vid)
    page.goto(url)
    expect(page.locator(title)).to_have_text("Variation B")
    # the visit state, sticky assignments with it, is stored after the first paint
    page.wait_for_function("(JSON.parse(localStorage.getItem('vtr_v')) || {k: {}}).k['engine-sticky']")
    state = page.context.storage_state()
    page.goto("about:blank")

    campaign = next(c for c in config["campaigns"] if c["key"] == "engine-sticky")
    campaign["variations"][0]["weight"], campaign["variations"][1]["weight"] = 0.9, 0.1
    site.publish(config)
    assert site.decide(vid, {"page": {"path": "/engine/sticky.html"}})["variations"]["engine-sticky"] == "a"
    page = new_context(storage_state=state).new_page()  # the same visitor, with a fresh HTTP cache
    page.goto(url)
    assert reasons(page)["engine-sticky"] == "sticky b"
    expect(page.locator(title)).to_have_text("Variation B")
    state = page.context.storage_state()
    page.goto("about:blank")

    campaign["seed"] = restart_seed
    site.publish(config)
    page = new_context(storage_state=state).new_page()
    page.goto(url)
    assert re.fullmatch(r"all visitors matched; bucket 0\.\d{4}", reasons(page)["engine-sticky"])
    expect(page.locator(title)).to_have_text("Variation A")
    page.goto("about:blank")

    results = site.wait_for_results(lambda r: r.visitors("engine-sticky", "b") == 1)
    assert results.rejected() == {}  # the sticky b under 90/10 weights was verified, not refused


def test_redirect_sends_its_exposure_by_beacon_first_and_never_loops(new_context, vitrina):
    site = vitrina.new_site()
    vid = pick_visitors(site, {"page": {"path": "/engine/split-a.html"}},
                        lambda d: d["variations"].get("engine-split"), ("redirect",))["redirect"][0]
    page = as_visitor(new_context, site, vid)
    requests = []
    page.context.on("request", lambda r: requests.append(r))
    page.goto(site.url("/engine/split-a.html?utm_source=mail&ref=1#offer"))
    page.wait_for_url(re.compile(r"/engine/split-b\.html\?utm_source=mail&ref=1#offer$"))
    wait_for_ready(page)
    documents = [r.url.split("/engine/")[1] for r in requests if r.resource_type == "document"]
    assert documents == ["split-a.html?utm_source=mail&ref=1", "split-b.html?utm_source=mail&ref=1"]
    # The exposure left by sendBeacon before the browser asked for the target page.
    beacon = next(i for i, r in enumerate(requests) if collected([r], "engine-split"))
    assert requests[beacon].resource_type == "ping"
    assert beacon < [r.resource_type for r in requests].index("document", 1)
    assert [e["variation"] for e in collected(requests, "engine-split")] == ["redirect"]

    # A target its own campaign also matches: no second redirect, no second exposure.
    page.goto(site.url("/engine/loop-a.html?x=1"))
    page.wait_for_url(re.compile(r"/engine/loop-b\.html\?x=1$"))
    wait_for_ready(page)
    # Past the queue's one-second delay: an exposure queued here would have left by fetch
    # (a beacon sent while the page unloads is not always reported to Playwright).
    page.wait_for_timeout(1300)
    assert [r.url.split("/engine/")[1] for r in requests if r.resource_type == "document"][2:] == [
        "loop-a.html?x=1", "loop-b.html?x=1"]
    assert page.evaluate("vitrina.getVariation('engine-loop')") == "b"  # decided there, not applied again

    # Two campaigns sending visitors to each other: one redirect per navigation.
    def documents_since(n):
        return [r.url.split("/engine/")[1] for r in requests if r.resource_type == "document"][n:]

    before = len(documents_since(0))
    page.goto(force_url(site.url("/engine/ping.html"), debug=True))
    page.wait_for_url(re.compile(r"/engine/pong\.html"))
    wait_for_ready(page)
    page.wait_for_timeout(300)
    assert documents_since(before) == ["ping.html?vitrina_debug=1", "pong.html?vitrina_debug=1"]
    assert page.evaluate("vitrina.getVariation('engine-pong')") is None
    assert reasons(page)["engine-pong"].endswith("; not redirected twice")
    page.reload()  # a new navigation: pong may redirect, once, and ping then keeps the visitor
    page.wait_for_url(re.compile(r"/engine/ping\.html"))
    wait_for_ready(page)
    page.wait_for_timeout(300)
    assert documents_since(before + 2) == ["pong.html?vitrina_debug=1", "ping.html?vitrina_debug=1"]
    page.goto("about:blank")

    assert [len(collected(requests, k)) for k in ("engine-split", "engine-loop", "engine-ping", "engine-pong")] == [
        1, 1, 1, 1]
    results = site.wait_for_results(lambda r: r.visitors("engine-loop", "b") == 1
                                    and r.visitors("engine-split", "redirect") == 1
                                    and r.visitors("engine-pong", "to-ping") == 1)
    assert results.rejected() == {}


def test_consent_required_applies_from_memory_and_stores_nothing(page, vitrina):
    """settings.consent "required", before consent: campaigns apply (on load and after an SPA
    navigation) and handlers hear their exposures, from memory only: no cookie, no
    localStorage, no request but the tag."""
    config = copy.deepcopy(CONFIG)
    config["settings"]["consent"] = "required"
    site = vitrina.new_site(config)
    sent = []
    page.on("request", lambda r: r.url.startswith(vitrina.server_url) and "/tag.js" not in r.url and sent.append(r.url))
    page.goto(site.url("/engine/exclusion.html"))
    expect(page.locator("#promo-b")).to_have_text("Promo B (group, high priority)")
    expect(page.locator("#badge")).to_have_text("Badge (high priority)")
    assert {e["campaign"] for e in exposures(page)} == {"excl-group-high", "excl-selector-high"}
    page.goto(site.url("/engine/spa.html"))
    page.evaluate("go('/engine/spa/one')")
    expect(page.locator("#spa-h")).to_have_text("Page one")
    assert [e["campaign"] for e in exposures(page)] == ["engine-spa-one"]
    page.wait_for_timeout(1200)  # past the queue's batching delay
    assert sent == []
    assert [c["name"] for c in page.context.cookies() if c["name"].startswith("vtr_")] == []
    assert page.evaluate("Object.keys(localStorage)") == []


SRM_VISITORS = 200
POOL = 8  # browser contexts navigating at once
# The next visitor on this tab: empty storage, its own vtr_id, then the page. Leaving the
# page fires pagehide, so a control visitor's queued exposure goes by beacon.
NEXT_VISITOR = """([vid, url]) => {
    localStorage.clear();
    document.cookie = "vtr_id=" + vid + ";path=/";
    location.href = url;
}"""


def test_split_url_test_has_no_sample_ratio_mismatch(browser, vitrina):
    """A 50/50 redirect test through the real redirect: every visitor is counted in the arm
    bucketing gives them (none lost to the navigation, none counted twice), so results show
    no sample-ratio mismatch. Each visitor is a new vtr_id with empty storage; a pool of
    contexts is reused, as a new renderer per visitor costs more than the visit itself."""
    site = vitrina.new_site()
    rng = random.Random(20261123)
    ids = ["v1." + "".join(rng.choice("0123456789abcdef") for _ in range(24)) for _ in range(SRM_VISITORS)]
    attributes = {"page": {"path": "/engine/split-a.html"}}
    expected = {"control": 0, "redirect": 0}
    for vid in ids:
        expected[site.decide(vid, attributes)["variations"]["engine-split"]] += 1
    landed = {"control": 0, "redirect": 0}
    url = site.url("/engine/split-a.html?utm_campaign=srm")
    pages = []
    for vid in ids[:POOL]:
        page = browser.new_context().new_page()
        page.context.add_cookies([visitor_cookie(site.shop_url, vid)])
        page.goto(url, wait_until="commit")
        pages.append(page)
    try:
        for i, vid in enumerate(ids):
            page = pages[i % POOL]
            page.wait_for_function("(vid) => document.readyState == 'complete' && window.vitrina "
                                   "&& vitrina.getVisitorId() == vid", arg=vid)
            landed["redirect" if "/split-b.html?utm_campaign=srm" in page.url else "control"] += 1
            if i + POOL < len(ids):
                page.evaluate(NEXT_VISITOR, [ids[i + POOL], url])
            else:
                page.goto("about:blank")
        assert landed == expected
        # the contexts stay open until every visitor is counted: closing one may cancel the
        # beacon its last visitor's page sent as it went
        results = site.wait_for_results(lambda r: r.total_visitors("engine-split") == SRM_VISITORS, timeout=15)
    finally:
        for page in pages:
            page.context.close()
    arms = {arm: results.visitors("engine-split", arm) for arm in expected}
    assert arms == expected
    assert abs(arms["redirect"] / SRM_VISITORS - 0.5) < 0.1, arms
    assert results.campaign("engine-split")["srm"]["ok"] is True, results.campaign("engine-split")["srm"]
    assert results.rejected() == {}


def _nested_warnings(page):
    page.wait_for_function("() => document.readyState != 'loading'")
    wait_for_debug(page)
    return [m.text for m in page.console_messages(filter="since-navigation") if "[vitrina:nested]" in m.text]


def test_debug_log_warns_when_applied_campaigns_touch_nested_elements(page, shop):
    """Selector exclusion compares selectors as written, so `#hero` and `#hero h1` both apply;
    the debug log says so once the page shows the elements nest, and only for that pair."""
    page.goto(force_url(shop.url("/engine/nested.html"), debug=True))
    expect(page.locator("#hero h1")).to_have_text("Inner title")
    expect(page.locator("#hero")).to_have_class("promo")
    assert only(decisions(page), ["nested-outer", "nested-inner"]) == {"nested-outer": "on", "nested-inner": "on"}
    assert _nested_warnings(page) == ["[vitrina:nested] nested-outer and nested-inner touch nested elements and "
                                      "both apply: give them one group to apply one"]
    page.goto(force_url(shop.url("/engine/exclusion.html"), debug=True))  # two campaigns, side by side
    expect(page.locator("#badge")).to_have_text("Badge (high priority)")
    assert _nested_warnings(page) == []
