"""Time-on-page, exit-intent and idle triggers in real Chromium: the campaign is decided when
its trigger fires, not at load, and its exposure is recorded then, once (scroll and event
triggers: test_sdk_features.py)."""
import json
import time
import urllib.request

import pytest
from playwright.sync_api import expect

SETTINGS = {"holdout": 0, "consent": "implied", "antiflicker_ms": 400}


def _campaign(key, kind, trigger, selector, text):
    return {"key": key, "type": "personalization", "status": "live", "pages": {"page.query.t": kind},
            "trigger": trigger, "variations": [{"key": "on", "actions": [{"selector": selector, "text": text}]}]}


CONFIG = {"campaigns": [
    _campaign("after-3s", "time", {"time_on_page": 3}, "#time-offer", "Still looking? Free delivery today"),
    _campaign("exit-offer", "exit", {"exit_intent": True}, "#exit-offer", "Wait! 10% off before you go"),
    _campaign("idle-help", "idle", {"idle": 2}, "#idle-offer", "Need help choosing?"),
], "settings": SETTINGS}


@pytest.fixture(scope="module")
def site(vitrina):
    return vitrina.new_site(CONFIG)


class Watch:
    """What a page decided and sent: exposures heard through vitrina.on, and every exposure in
    the bodies the SDK POSTed to collect, each with the time it left."""

    def __init__(self, page, site):
        self.page, self.site, self.sent = page, site, []
        page.on("request", self._request)

    def _request(self, request):
        if request.method == "POST" and request.url.endswith("/collect"):
            for event in json.loads(request.post_data)["events"]:
                if event["type"] == "exposure":
                    self.sent.append((event["campaign"], time.monotonic()))

    def open(self, kind):
        self.page.goto(self.site.url(f"/triggers.html?t={kind}"))
        self.page.evaluate("window.__heard = []; vitrina.on('exposure', (e) => __heard.push(e.campaign))")

    def heard(self):
        return self.page.evaluate("__heard")

    def variation(self, key):
        return self.page.evaluate("(k) => vitrina.getVariation(k)", key)

    def assert_not_fired(self, key, selector, original):
        expect(self.page.locator(selector)).to_have_text(original)
        assert self.variation(key) is None
        assert self.heard() == []
        assert [k for k, _ in self.sent if k == key] == []

    def assert_fired_once(self, key, selector, text, since):
        expect(self.page.locator(selector)).to_have_text(text)
        assert self.variation(key) == "on"
        assert self.heard() == [key]
        deadline = time.monotonic() + 3
        while not self.sent and time.monotonic() < deadline:
            self.page.wait_for_timeout(100)  # the SDK batches events for a second
        self.page.wait_for_timeout(400)  # later checks (every 250 ms) add nothing
        assert self.heard() == [key]
        assert [k for k, _ in self.sent] == [key]
        assert self.sent[0][1] >= since  # sent after the trigger, not at load


def test_time_on_page(page, site):
    watch = Watch(page, site)
    watch.open("time")
    loaded = time.monotonic()
    # Past the SDK's one-second batching delay (an exposure at load would be out), before 3 s.
    page.wait_for_function("performance.now() > 1500")
    watch.assert_not_fired("after-3s", "#time-offer", "Welcome")
    assert page.evaluate("performance.now()") < 3000, "too slow a machine to look before the trigger"
    watch.assert_fired_once("after-3s", "#time-offer", "Still looking? Free delivery today", since=loaded + 2)
    assert site.wait_for_results(lambda r: r.total_visitors("after-3s") == 1).visitors("after-3s", "on") == 1


def test_exit_intent(page, site):
    watch = Watch(page, site)
    watch.open("exit")
    page.mouse.move(200, 200)
    page.mouse.move(200, 900)  # out through the bottom: scrolling down, not leaving
    page.mouse.move(200, 300)
    page.mouse.move(2000, 300)  # out through the side
    page.wait_for_timeout(1200)
    watch.assert_not_fired("exit-offer", "#exit-offer", "Thanks for visiting")
    moved = time.monotonic()
    page.mouse.move(200, 100)
    page.mouse.move(200, -5)  # out through the top: towards the tabs, the address bar, close
    watch.assert_fired_once("exit-offer", "#exit-offer", "Wait! 10% off before you go", since=moved)


def test_idle(page, site):
    watch = Watch(page, site)
    watch.open("idle")
    for i in range(9):  # 2.7 s of mouse moves: longer than the 2 s idle trigger, and each resets it
        page.mouse.move(100 + i * 10, 200)
        page.wait_for_timeout(300)
    watch.assert_not_fired("idle-help", "#idle-offer", "Take your time")
    stopped = time.monotonic()
    watch.assert_fired_once("idle-help", "#idle-offer", "Need help choosing?", since=stopped + 1.5)


def test_no_module_trips_over_another_at_init(vitrina, page):
    """The commerce module reads the attributes as a page view starts, before the triggers
    module's own start of that page view: nothing may throw (a caught error still costs the
    first view a stack trace, and the shop's console an error), and both still work."""
    config = {"campaigns": [_campaign("after-3s", "time", {"time_on_page": 1}, "#time-offer", "Free delivery today")],
              "settings": {**SETTINGS, "ecommerce": True}}
    site = vitrina.new_site(config)
    errors = []
    page.on("console", lambda message: message.type == "error" and message.location["url"].endswith("/tag.js")
            and errors.append(message.text))
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(site.url("/triggers.html?t=time"))
    tag = urllib.request.urlopen(f"{site.server_url}/v1/sites/{site.name}/tag.js").read()
    assert b'_module("commerce"' in tag and b'_module("triggers"' in tag
    expect(page.locator("#time-offer")).to_have_text("Free delivery today")
    page.evaluate("vitrina.set({cart: {lines: [{id: 'p1', quantity: 2, price: 5}]}})")
    assert page.evaluate("vitrina.getVariation('after-3s')") == "on"
    assert errors == []
