"""Traffic that does not count, in Chromium: the suite's browsers say they are Chrome (conftest),
so here one says what headless Chromium really says, and its visit is counted as a robot's."""
from playwright.sync_api import expect

from .conftest import shopper_user_agent
from .pageutil import HERO, HERO_PROMO


def test_headless_chromium_as_it_really_is_is_not_counted(new_context, fresh_site):
    headless = shopper_user_agent().replace(" Chrome/", " HeadlessChrome/")
    assert "HeadlessChrome/" in headless
    page = new_context(user_agent=headless).new_page()
    page.goto(fresh_site.url("/?utm_source=newsletter"))
    expect(page.locator(HERO)).to_have_text(HERO_PROMO)  # the page works as for anyone
    page.close(run_before_unload=True)  # pagehide: the exposure goes by beacon
    results = fresh_site.wait_for_results(lambda r: r.get("excluded", {}).get("bot", 0) >= 1)
    assert results.total_visitors("hero-newsletter") == 0 and results.rejected() == {}
