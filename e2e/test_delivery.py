"""Nothing lost in the browser: undelivered events wait in the bounded local queue and are
retried with backoff, and sent at once when the network comes back."""
import time

from playwright.sync_api import expect

from .pageutil import HERO, HERO_PROMO


def test_events_wait_offline_and_go_when_the_network_returns(context, vitrina):
    fresh_site = vitrina.new_site()
    page = context.new_page()
    page.goto(fresh_site.url("/?utm_source=newsletter"))
    expect(page.locator(HERO)).to_have_text(HERO_PROMO)
    context.set_offline(True)  # before the queue's first send (it waits about a second)
    page.wait_for_timeout(4000)  # two sends fail (at ~1 s, and ~2 s later); the next retry is ~4 s later
    assert fresh_site.results().total_visitors("hero-newsletter") == 0
    queued = page.evaluate("JSON.parse(localStorage.getItem('vtr_q') || '[]').map((e) => e.campaign)")
    assert "hero-newsletter" in queued  # kept on the device, not lost
    context.set_offline(False)  # the browser's `online` event: the queue sends now, not at the next retry
    fresh_site.wait_for_results(lambda r: r.visitors("hero-newsletter", "promo") == 1, timeout=1.5)
    assert page.evaluate("JSON.parse(localStorage.getItem('vtr_q') || '[]').length") == 0


def test_a_failing_server_is_retried_with_backoff_on_the_same_page(context, vitrina):
    fresh_site = vitrina.new_site()
    attempts = []

    def unavailable(route):
        attempts.append(time.monotonic())
        route.fulfill(status=503, body="down for a moment")

    context.route("**/collect", unavailable)
    page = context.new_page()
    page.goto(fresh_site.url("/?utm_source=newsletter"))
    expect(page.locator(HERO)).to_have_text(HERO_PROMO)
    deadline = time.monotonic() + 12
    while len(attempts) < 3 and time.monotonic() < deadline:
        page.wait_for_timeout(200)
    assert len(attempts) >= 3, "the SDK did not retry the refused batch"
    gaps = [b - a for a, b in zip(attempts, attempts[1:])]
    assert gaps[1] > gaps[0] * 1.5, f"no backoff between retries: {gaps}"
    context.unroute("**/collect", unavailable)
    # The next retry (no new event, no navigation) delivers the batch once.
    fresh_site.wait_for_results(lambda r: r.visitors("hero-newsletter", "promo") == 1, timeout=15)
    assert fresh_site.results().rejected() == {}
