"""server.qa, the helpers QA teams use with Playwright, loaded as a pytest plugin the way
their own suites would load it (the e2e tests use the same helpers throughout; the pure
helpers are unit-tested in tests/test_qa.py)."""
import pytest
from playwright.sync_api import expect

from server.qa import wait_for_ready

pytest_plugins = ["server.qa"]


def test_fixture_forces_variations_and_reads_decisions_reasons_and_exposures(vitrina_qa, shop):
    page = vitrina_qa.page
    got = vitrina_qa.goto(shop.url("/engine/abn.html"), force={"engine-abn": "c", "engine-welcome": "control"})
    assert {k: got[k] for k in ("engine-abn", "engine-welcome")} == {"engine-abn": "c", "engine-welcome": "control"}
    expect(page.locator("#abn-title")).to_have_text("Headline C")
    expect(page.locator("#abn-note")).to_have_text("Original note")
    assert vitrina_qa.reasons()["engine-abn"] == "forced c"
    forced = {e["campaign"]: (e["variation"], e.get("forced")) for e in vitrina_qa.exposures()}
    assert forced == {"engine-abn": ("c", True), "engine-welcome": ("control", True)}

    # A variation the campaign does not have forces nothing: the visitor is bucketed as usual.
    got = vitrina_qa.goto(shop.url("/engine/abn.html"), force={"engine-abn": "nope"})
    vid = page.evaluate("vitrina.getVisitorId()")
    server = shop.decide(vid, {"page": {"path": "/engine/abn.html"}})
    assert got.get("engine-abn") == server["variations"].get("engine-abn")
    assert not vitrina_qa.reasons()["engine-abn"].startswith("forced")
    assert all("forced" not in e for e in vitrina_qa.exposures())


def test_decisions_follow_the_page_after_an_spa_navigation(vitrina_qa, shop):
    assert "engine-spa-one" not in vitrina_qa.goto(shop.url("/engine/spa.html"))
    vitrina_qa.page.evaluate("go('/engine/spa/one')")
    assert vitrina_qa.decisions()["engine-spa-one"] == "on"
    assert vitrina_qa.reasons()["engine-spa-one"].startswith("all visitors matched; bucket 0.")
    assert [e["campaign"] for e in vitrina_qa.exposures()] == ["engine-spa-one"]


def test_wait_for_ready_names_a_page_without_the_tag(page, shop):
    page.goto(shop.url("/engine/slow.js"))
    with pytest.raises(AssertionError, match="the Vitrina tag did not start on .*slow.js"):
        wait_for_ready(page, timeout=300)
