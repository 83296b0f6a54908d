"""Known customers in real Chromium, against `vitrina serve` (docs/reference/identity.md):

- an identified gold customer sees the loyalty variation and never the original: hidden while
  the page that identifies asks /identify, decided before the first paint on the next page
  (the session keeps the answer; a new token for the same customer asks nothing);
- a forged `vitrina.set({crm: {tier: "gold"}})` and a token signed for another site give nothing,
  and the debug log says why;
- one customer on a phone-emulated and a desktop browser gets the same variation of a
  customer-bucketed campaign and counts once; POST decide with customer_id, ip, user_agent and
  the browser's clock decides what the browser decided; the email content endpoint gives the
  same variation; erasure removes the customer, their links and their events, and leaves the
  counts.

e2e/pages/account.html carries `data-identity`: the shop server puts there the token of the
cookie `shop_identity` (server/demo/shop.py), as a shop's server would for its signed-in customer.
"""
import time

import jwt

from server.qa import wait_for_debug

from .pageutil import decision_lines, sampler, seen_texts

ANTIFLICKER_MS = 2000  # long enough for a delayed /identify on a loaded machine
IDENTIFY_DELAY_S = 0.3
GOLD, OFFER, ORIGINAL = "Welcome back, gold member", "Your loyalty offer", "Welcome"
CONFIG = {
    "segments": {"gold": {"crm.tier": "gold"}},
    "goals": {"purchase": {"event": "purchase"}},
    "campaigns": [
        {"key": "loyalty", "segment": "gold", "bucket_by": "customer", "priority": 10, "goals": ["purchase"],
         "variations": [{"key": "gold", "actions": [{"selector": "#loyalty", "text": GOLD}]}]},
        {"key": "split", "bucket_by": "customer", "goals": ["purchase"],
         "variations": [{"key": "control"}, {"key": "offer", "actions": [{"selector": "#offer", "text": OFFER}]}]},
        {"key": "everyone", "variations": [{"key": "on", "actions": [{"selector": "#note", "text": "For everyone"}]}]},
    ],
    "settings": {"holdout": 0, "consent": "implied", "antiflicker_ms": ANTIFLICKER_MS},
}
KEYS = [c["key"] for c in CONFIG["campaigns"]]
IPHONE_UA = ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
             "Version/17.0 Mobile/15E148 Safari/604.1")
def _token(secret, sub="1042", **claims):
    now = int(time.time())
    return jwt.encode({"sub": sub, "iat": now, "exp": now + 600, **claims}, secret, "HS256")


def _site(vitrina):
    """A new site with CONFIG, its identity secret (the real CLI) and two customers' CRM data."""
    site = vitrina.new_site(CONFIG)
    secret = vitrina.cli("sites", "identity-secret", site.name).strip().splitlines()[-1]
    stored = site.api("PUT", "/customers", [{"customer_id": "1042", "tier": "gold", "ltv": 1250.5},
                                            {"customer_id": "77", "tier": "silver"}])
    assert stored.status == 200 and stored.json()["upserted"] == 2, stored.body
    return site, secret


def _signed_in(context, site, token):
    """The shop's session says who is signed in: e2e/pages/account.html puts this token on its tag."""
    context.add_cookies([{"name": "shop_identity", "value": token, "url": site.shop_url}])


def _watch_identify(context, site, delay=0.0):
    """Count the page's /identify requests, answering each `delay` s late."""
    asked = []

    def identify(route):
        asked.append(route.request.post_data_json)
        response = route.fetch()
        time.sleep(delay)
        route.fulfill(response=response)
    context.route(f"{site.server_url}/v1/sites/{site.name}/identify", identify)
    return asked


def _log(page):
    lines = []
    page.on("console", lambda message: lines.append(message.text))
    return lines


def test_a_gold_customer_sees_the_loyalty_variation_and_never_the_original(new_context, vitrina):
    site, secret = _site(vitrina)
    context = new_context()
    _signed_in(context, site, _token(secret))
    asked = _watch_identify(context, site, delay=IDENTIFY_DELAY_S)
    page = context.new_page()
    page.add_init_script(sampler("#loyalty", "#note"))
    log = _log(page)
    page.goto(site.url("/account.html?vitrina_debug=1"))
    page.wait_for_function("vitrina.getVariation('loyalty') === 'gold'")
    assert seen_texts(page, "#loyalty") == [GOLD]  # hidden while identify was on its way, then the variation
    assert seen_texts(page, "#note") == ["For everyone"]  # reads no crm: applied at once, never waited
    assert len(asked) == 1 and asked[0]["visitor_id"] == page.evaluate("vitrina.getVisitorId()")
    wait_for_debug(page)  # the debug module prints the log kept from init on
    assert "[vitrina] loyalty null waiting for identity" in log
    assert any(line.startswith("[vitrina:identity] identified; crm: tier") for line in log)
    # The next page: the session's answer, before the first paint, with no request.
    page.wait_for_function("sessionStorage.getItem('vtr_u') !== null")
    time.sleep(1.1)
    _signed_in(context, site, _token(secret))  # a new token per page, as a shop mints them (another iat)
    page.click("#next")
    page.wait_for_url("**/account.html?next=1")
    assert seen_texts(page, "#loyalty") == [GOLD]
    assert len(asked) == 1
    context.close()


def test_forged_crm_and_another_site_s_token_give_nothing_and_the_log_says_why(new_context, vitrina):
    site, _ = _site(vitrina)
    other = vitrina.new_site(CONFIG)
    foreign = vitrina.cli("sites", "identity-secret", other.name).strip().splitlines()[-1]
    context = new_context()
    _signed_in(context, site, _token(foreign))
    asked = _watch_identify(context, site)
    page = context.new_page()
    page.add_init_script(sampler("#loyalty"))
    log = _log(page)
    page.goto(site.url("/account.html?vitrina_debug=1"))
    _wait_for_line(page, log, "[vitrina:identity] not identified: deciding without it")
    page.evaluate("vitrina.set({crm: {tier: 'gold'}, predict: {purchase: 0.9}})")
    page.wait_for_timeout(300)
    assert page.evaluate("vitrina.getVariation('loyalty')") is None
    assert seen_texts(page, "#loyalty") == [ORIGINAL]
    assert len(asked) == 1
    assert any("signature does not verify with this site's identity secret" in line for line in log), log
    assert "[vitrina:set] crm comes from the server only: ignored" in log
    assert "[vitrina:set] predict comes from the server only: ignored" in log
    assert decision_lines(log)["loyalty"] == (None, "not identified")
    assert page.evaluate("sessionStorage.getItem('vtr_u')") is None
    page.close()
    context.close()
    assert site.results().rejected() == {}  # nothing the SDK sent was refused


def _wait_for_line(page, lines, text, timeout_s=5):
    deadline = time.monotonic() + timeout_s
    while not any(text in line for line in lines):
        assert time.monotonic() < deadline, f"no log line with {text!r}: {lines}"
        page.wait_for_timeout(50)


def _visit(context, site, token, lines):
    """The account page with this token, once the identity is in (the session keeps it)."""
    page = context.new_page()
    page.on("console", lambda message: lines.append(message.text))
    _signed_in(context, site, token)
    page.goto(site.url("/account.html?vitrina_debug=1"))
    page.wait_for_function("vitrina.getVariation('loyalty') === 'gold' && sessionStorage.getItem('vtr_u') !== null")
    wait_for_debug(page)
    return page


def test_one_customer_on_a_phone_and_a_desktop_counts_once_everywhere(new_context, playwright, vitrina):
    site, secret = _site(vitrina)
    seen = {}
    for name, options in (("phone", playwright.devices["iPhone 13"]), ("desktop", {"timezone_id": "Europe/Paris"})):
        context = new_context(**options)
        lines = []
        page = _visit(context, site, _token(secret), lines)
        decisions = decision_lines(lines)
        ua = page.evaluate("navigator.userAgent")
        now = page.evaluate("Date.now()")
        zone = page.evaluate("Intl.DateTimeFormat().resolvedOptions().timeZone")
        vid = page.evaluate("vitrina.getVisitorId()")
        # the server decides as this browser did, from the customer id and what the browser resolves itself
        server = site.api("POST", "/decide", {"visitor_id": vid, "customer_id": "1042", "ip": "127.0.0.1",
                                              "user_agent": ua, "now": now, "timezone": zone}).json()
        assert {k: (server["variations"].get(k), server["reasons"][k]) for k in KEYS} == decisions, name
        seen[name] = (vid, decisions["split"][0])
        page.close()  # pagehide: the exposures go by sendBeacon
        context.close()
    (phone_vid, phone_split), (desktop_vid, desktop_split) = seen["phone"], seen["desktop"]
    assert phone_vid != desktop_vid and phone_split == desktop_split
    results = site.wait_for_results(lambda r: r.total_visitors("split") >= 1 and r.total_visitors("loyalty") >= 1
                                    and r.total_visitors("everyone") >= 2)
    assert results.total_visitors("split") == 1  # one customer, two browsers
    assert results.visitors("split", phone_split) == 1 and results.visitors("loyalty", "gold") == 1
    assert results.total_visitors("everyone") == 2  # a visitor-bucketed campaign counts browsers
    assert results.rejected() == {}
    # the email platform gets the same variation, recorded in channel email (already assigned: no new count)
    email = site.api("GET", "/customers/1042/content?campaigns=split,loyalty").json()
    assert {c["key"]: c["variation"] for c in email["campaigns"]} == {"split": phone_split, "loyalty": "gold"}
    time.sleep(0.2)
    assert site.results().total_visitors("split") == 1
    # erasure: the customer's data, the two browsers' links and every raw event go; counts stay
    customer = site.api("GET", "/customers/1042").json()
    assert customer["linked_visitors"] == 2 and customer["attributes"]["tier"] == "gold"
    erased = site.api("DELETE", "/customers/1042").json()["erased"]
    assert erased["customers"] == 1 and erased["visitors"] == 2 and erased["events"] >= 5
    assert site.api("GET", "/customers/1042").status == 404
    after = site.results()
    assert after.total_visitors("split") == 1 and after.total_visitors("everyone") == 2
    assert site.api("DELETE", "/customers/1042").json()["erased"]["events"] == 0


def test_without_consent_nothing_about_the_customer_is_stored_and_sign_out_forgets(new_context, vitrina):
    site = vitrina.new_site({**CONFIG, "settings": {**CONFIG["settings"], "consent": "required"}})
    secret = vitrina.cli("sites", "identity-secret", site.name).strip().splitlines()[-1]
    assert site.api("PUT", "/customers", [{"customer_id": "1042", "tier": "gold"}]).status == 200
    context = new_context()
    _signed_in(context, site, _token(secret))
    page = context.new_page()
    page.goto(site.url("/account.html"))
    page.wait_for_function("vitrina.getVariation('loyalty') === 'gold'")  # decisions apply without consent
    page.wait_for_timeout(3500)  # past the first paint and its idle work (3 s at the latest)
    stored = page.evaluate("[sessionStorage.length, localStorage.length, document.cookie.includes('vtr_')]")
    assert stored == [0, 0, False]
    assert site.api("GET", "/customers/1042").json()["linked_visitors"] == 0  # nothing was sent
    page.evaluate("vitrina.identify(null)")  # sign-out
    assert page.evaluate("vitrina.getVariation('loyalty')") is None
    assert page.text_content("#loyalty") == ORIGINAL
    context.close()
