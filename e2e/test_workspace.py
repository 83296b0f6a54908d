"""The merchant workspace in real Chromium against `vitrina serve`: a new owner signs in from the
CLI's one-time link, builds a segment and a two-variation campaign, sees a mistake beside its field,
previews, publishes (the shop changes), rolls back (it changes back); a viewer cannot publish;
results draw both charts from recorded events; the CSV holds the API's numbers; axe finds nothing
serious on any page; the audit log lists each step. Screenshots go to test-results/workspace/."""
import csv
import io
import json
import time
from urllib.parse import parse_qs, urlsplit

import pytest
from playwright.sync_api import expect

from server.qa import wait_for_ready
from tests.servers import REPO

from .conftest import http
from .pageutil import HERO, HERO_ORIGINAL

AXE = (REPO / "node_modules" / "axe-core" / "axe.min.js").read_text()
SHOTS = REPO / "test-results" / "workspace"
PROMO = "10% off for newsletter readers"
BASE_CONFIG = {"goals": {"purchase": {"event": "purchase"}}, "settings": {"holdout": 0}}


def shot(page, name):
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def no_serious_violations(page, name):
    """axe-core on the page as it is now: no serious or critical violation."""
    # Through DevTools: the workspace's CSP refuses inline script (add_script_tag), as it should.
    page.evaluate("(source) => { if (!window.axe) (0, eval)(source) }", AXE)
    found = page.evaluate("""async () => (await axe.run(document, {resultTypes: ["violations"]})).violations
        .filter((v) => v.impact === "serious" || v.impact === "critical")
        .map((v) => ({id: v.id, impact: v.impact, nodes: v.nodes.map((n) => n.target.join(" ")).slice(0, 5)}))""")
    assert found == [], f"{name}: {json.dumps(found, indent=1)}"


def settled(page):
    """Wait until htmx has no request in flight (the builder redraws the form on every change)."""
    expect(page.locator(".htmx-request")).to_have_count(0)


def sign_in_with_link(page, server_url, link, password):
    page.goto(server_url + link)
    page.get_by_label("New password").fill(password)
    page.get_by_label("Repeat the password").fill(password)
    page.get_by_role("button", name="Set password").click()


def shop_hero(browser, url):
    """The hero of a shop page seen by a new visitor (a new context: tag.js is cached a minute)."""
    page = browser.new_context().new_page()
    page.goto(url)
    wait_for_ready(page)
    return page.locator(HERO)


def visit(browser, url, track=None):
    """A new visitor on a shop page; optionally a conversion. Leaving the page sends the queue;
    the context stays open (closing it at once could drop the beacon): the caller closes it."""
    context = browser.new_context()
    page = context.new_page()
    page.goto(url)
    wait_for_ready(page)
    if track:
        page.evaluate(f"vitrina.track('purchase', {{value: {track}}})")
    page.goto("about:blank")
    return context


@pytest.fixture
def site(vitrina):
    return vitrina.new_site(BASE_CONFIG)


def test_a_new_owner_builds_previews_publishes_rolls_back_and_reads_results(page, browser, vitrina, site):
    app = f"{vitrina.server_url}/app/s/{site.name}"
    link = vitrina.cli("users", "create", "owner@shop.example", "--site", site.name, "--role", "owner").splitlines()[-1]
    assert link.startswith("/app/set-password/")

    # A new owner signs in (the one-time link sets the password; it works once).
    sign_in_with_link(page, vitrina.server_url, link, "a long enough password")
    expect(page.get_by_role("columnheader", name="Campaign")).to_be_visible()
    no_serious_violations(page, "campaigns")
    page.goto(vitrina.server_url + link)
    expect(page.get_by_role("heading", name="This link cannot be used")).to_be_visible()

    # The segment builder: attribute, operator, value; the condition JSON it builds.
    page.goto(f"{app}/segments/new")
    page.get_by_label("Segment name").fill("newsletter")
    page.get_by_label("Segment name").blur()
    settled(page)
    page.get_by_label("Attribute").select_option("utm.source")
    settled(page)
    page.get_by_label("Operator").select_option(label="is one of, ignoring case")
    settled(page)
    expect(page.locator("#built")).to_contain_text('"$ini"')  # the builder redrawn (htmx) for this operator
    page.get_by_label("Value", exact=True).fill("newsletter")
    page.get_by_label("Value", exact=True).blur()
    expect(page.locator("#built")).to_contain_text('"newsletter"')  # redrawn by htmx on each change
    assert json.loads(page.locator("#built").inner_text()) == {"utm.source": {"$ini": ["newsletter"]}}
    no_serious_violations(page, "segment builder")
    shot(page, "segment-builder")
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_role("cell", name="newsletter")).to_be_visible()

    # A campaign with two variations, saved with a mistake: the message is beside its field.
    page.goto(f"{app}/campaigns/new")
    page.get_by_label("Key", exact=True).fill("hero-news")
    page.get_by_label("Type").select_option("personalization")
    page.get_by_label("Status").select_option("live")
    page.get_by_label("Segment").select_option("newsletter")
    page.get_by_label("purchase").check()
    page.get_by_label("Weight").first.fill("0")
    page.get_by_role("button", name="Add a variation").click()
    page.locator("#v1-key").fill("promo")
    page.locator("#v1-weight").fill("1")
    page.get_by_role("button", name="Add an action to variation 2").click()
    page.locator("#v1-a0-kind").select_option("text")
    page.locator("#v1-a0-selector").fill("script")
    page.locator("#v1-a0-value").fill(PROMO)
    page.get_by_role("button", name="Save").click()
    selector_field = page.locator('[data-path="/campaigns/0/variations/1/actions/0/selector"]')
    expect(selector_field.locator(".error")).to_contain_text("never target <script> elements")
    expect(page.locator("#v1-a0-selector")).to_have_attribute("aria-invalid", "true")
    expect(page.get_by_role("alert")).to_contain_text("1 problem")
    no_serious_violations(page, "campaign with a mistake")
    shot(page, "campaign-mistake")
    page.locator("#v1-a0-selector").fill(HERO)
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_role("status").first).to_contain_text("Saved campaign 'hero-news'")

    # Preview: a link per variation with a signed token and the debug flag, and a QR code.
    page.goto(f"{app}/preview")
    page.get_by_label("Shop page to preview on").fill(site.url("/"))
    page.get_by_role("button", name="Make links").click()
    preview = page.get_by_role("link", name="Open hero-news: promo (draft)")
    href = preview.get_attribute("href")
    query = parse_qs(urlsplit(href).query)
    assert query["vitrina_debug"] == ["1"] and urlsplit(href).netloc == urlsplit(site.url("/")).netloc
    expect(page.get_by_role("img", name="QR code of the draft preview of hero-news: promo")).to_be_visible()
    answer = http("GET", f"{vitrina.server_url}/v1/sites/{site.name}/preview.json?token={query['vitrina_preview'][0]}")
    assert answer.status == 200 and answer.json()["force"] == {"hero-news": "promo"}
    assert [c["key"] for c in answer.json()["bundle"]["campaigns"]] == ["hero-news"]  # the draft, not what is live
    # The link on the shop: the draft's variation, forced, shown by the tag; nothing counted.
    phone = browser.new_context(viewport={"width": 390, "height": 800})
    previewed = phone.new_page()
    previewed.goto(href)
    wait_for_ready(previewed)
    expect(previewed.locator(HERO)).to_have_text(PROMO)  # live (version 1) has no campaign at all
    previewed.goto("about:blank")
    phone.close()
    time.sleep(1)  # what a page sends on leaving lands within this
    assert site.results().rejected() == {}  # the preview sent nothing (its version is no published one)
    # Which campaigns would this visitor get, with every reason.
    page.get_by_label("Decide with").select_option("draft")
    page.get_by_label("UTM source").fill("NewsLetter")
    page.get_by_role("button", name="Decide").click()
    row = page.locator("#decision tr", has_text="hero-news")
    expect(row).to_contain_text("promo")
    expect(row).to_contain_text("segment newsletter matched")
    no_serious_violations(page, "preview")
    shot(page, "preview")

    # Publish, with a summary of what changes; the live shop changes.
    shop = site.url("/?utm_source=newsletter")
    page.goto(f"{app}/publish")
    expect(page.get_by_role("heading", name="Campaigns added")).to_be_visible()
    no_serious_violations(page, "publish")
    page.get_by_role("button", name="Publish").click()
    expect(page.get_by_role("status").first).to_contain_text("Published version 2")
    expect(shop_hero(browser, shop)).to_have_text(PROMO)

    # Roll back to version 1: the shop changes back.
    page.goto(f"{app}/versions")
    expect(page.get_by_role("cell", name="user:owner@shop.example").first).to_be_visible()
    no_serious_violations(page, "versions")
    page.get_by_role("button", name="Roll back to version 1").click()
    expect(page.get_by_role("status").first).to_contain_text("version 3 is live, a copy of version 1")
    expect(shop_hero(browser, shop)).to_have_text(HERO_ORIGINAL)

    # Live again (version 4), then visitors and conversions for the results.
    page.goto(f"{app}/publish")
    page.get_by_role("button", name="Publish").click()
    visitors = [visit(browser, shop, track=10 + n if n % 2 == 0 else None) for n in range(4)]
    # 5: these four and the one who saw version 2 live
    results = site.wait_for_results(lambda r: r.total_visitors("hero-news") == 5
                                    and r.goal("hero-news", "promo", "purchase")["conversions"] == 2, timeout=15)
    for context in visitors:
        context.close()

    page.goto(f"{app}/results/hero-news")
    chart = page.get_by_role("img", name="Conversion rate", exact=False)
    expect(chart).to_have_attribute("data-drawn", "1")
    assert chart.locator("svg").count() == 1
    assert chart.get_attribute("aria-label").startswith("Conversion rate of purchase")
    daily = page.locator('.chart[data-chart="daily"]')
    expect(daily).to_have_attribute("data-drawn", "1")
    assert daily.locator("svg path").count() >= 1
    expect(page.get_by_role("table", name="Revenue of purchase")).to_contain_text("22.00")
    no_serious_violations(page, "results")
    shot(page, "results")

    # The CSV holds the results API's numbers.
    download = page.request.get(f"{app}/results/hero-news.csv")
    assert download.ok and download.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(download.text())))
    promo = next(r for r in rows if r["variation"] == "promo" and r["goal"] == "purchase")
    arm = results.arm("hero-news", "promo")
    assert (int(promo["visitors"]), int(promo["conversions"]), float(promo["rate"]), float(promo["revenue"])) == (
        arm["visitors"], arm["goals"]["purchase"]["conversions"], arm["goals"]["purchase"]["rate"],
        arm["goals"]["purchase"]["revenue"])

    # Every other page: no serious accessibility violation, and at a phone's width nothing overflows.
    for name in ("segments", "goals", "config", "settings", "users", "keys", "audit", "catalogue", "results"):
        page.goto(f"{app}/{name}")
        no_serious_violations(page, name)
    page.set_viewport_size({"width": 390, "height": 800})
    for name in ("campaigns", "campaigns/hero-news", "results/hero-news"):
        page.goto(f"{app}/{name}")
        assert page.evaluate("document.documentElement.scrollWidth") <= 390, name
    shot(page, "results-phone")
    page.set_viewport_size({"width": 1280, "height": 800})

    # The audit log lists each step.
    page.goto(f"{app}/audit")
    log = page.get_by_role("table").inner_text()
    for step in ("gave owner@shop.example the role owner", "owner@shop.example set a password",
                 "saved segment 'newsletter'", "created campaign 'hero-news'", "published version 2",
                 "rolled back to version 1 (published as version 3)", "published version 4"):
        assert step in log, step
    shot(page, "audit-log")


def test_a_viewer_cannot_publish(browser, vitrina, site):
    link = vitrina.cli("users", "create", "viewer@shop.example", "--site", site.name, "--role", "viewer").splitlines()[-1]
    page = browser.new_page()
    sign_in_with_link(page, vitrina.server_url, link, "another long password")
    app = f"{vitrina.server_url}/app/s/{site.name}"
    page.goto(f"{app}/publish")
    expect(page.get_by_role("heading", name="Publish", exact=True)).to_be_visible()
    expect(page.get_by_role("button", name="Publish")).to_have_count(0)
    page.goto(f"{app}/versions")
    expect(page.get_by_role("button", name="Roll back")).to_have_count(0)
    no_serious_violations(page, "viewer's versions")
    # The workspace's own route refuses it (with a valid CSRF token), and so does the JSON API with a read key.
    token = page.locator('input[name="csrf_token"]').first.get_attribute("value")
    refused = page.request.post(f"{app}/publish", form={"csrf_token": token})
    assert refused.status == 403
    key = vitrina.cli("keys", "create", site.name, "--name", "dashboard", "--scope", "read").splitlines()[-1]
    api = http("POST", f"{vitrina.server_url}/api/v1/sites/{site.name}/publish",
               headers={"Authorization": f"Bearer {key}"})
    assert api.status == 403 and api.json()["error"] == "forbidden"
    assert site.api("GET", "/versions").json()["versions"][0]["version"] == 1  # nothing was published
    page.close()


def test_signing_in_is_rate_limited_and_the_session_cookie_is_locked_down(browser, vitrina, site):
    vitrina.cli("users", "create", "limits@shop.example", "--site", site.name, "--role", "editor")
    page = browser.new_page()
    for _ in range(10):
        page.goto(f"{vitrina.server_url}/app/sign-in")
        page.get_by_label("Email").fill("limits@shop.example")
        page.get_by_label("Password").fill("wrong password!")
        page.get_by_role("button", name="Sign in").click()
        expect(page.get_by_role("alert")).to_contain_text("do not match")
    no_serious_violations(page, "sign-in")
    page.get_by_label("Email").fill("limits@shop.example")
    page.get_by_label("Password").fill("wrong password!")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Too Many Requests")).to_be_visible()
    cookie = next(c for c in page.context.cookies() if c["name"] == "vitrina_session")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Lax" and cookie["path"] == "/app"
    csp = page.request.get(f"{vitrina.server_url}/app/sign-in").headers["content-security-policy"]
    assert "script-src 'self'" in csp and "unsafe" not in csp
    page.close()
