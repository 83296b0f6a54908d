"""The SDK refuses, where it applies actions, what no action may do (sdk_js/src/guards.js), in
Chromium with and without a strict nonce CSP: the payloads of the adversarial review (issue 10)
in a bundle handed straight to `vitrina.init` (the server's validation would refuse most of them
at PUT: this is the lock behind that one, for an older or forged bundle). Every payload would run
on its own if applied (an image's onerror, a frame's srcdoc, a later inline or external script,
SVG <set>), or sits in an attribute a click would follow; ordinary actions still apply.
"""
import json

import pytest

from server.qa import wait_for_debug

PWN = "window.__pwned = (window.__pwned || []).concat"


def _actions():
    return [
        {"selector": "#ok", "text": "Swapped"},
        {"selector": "#link-ok", "attr": {"href": "/promo?utm_content=v1", "title": "javascript: only text"},
         "addClass": "promo"},
        {"selector": "#link-tab", "attr": {"href": f"java\tscript:{PWN}('href tab')"}},
        {"selector": "#link-c0", "attr": {"href": f"\x01javascript:{PWN}('href C0')"}},
        {"selector": "#link-entity", "attr": {"HREF": f" JAVA\nSCRIPT:{PWN}('href newline')"}},
        {"selector": "#button", "attr": {"formaction": f"\x01javascript:{PWN}('formaction')"}},
        {"selector": "#img", "attr": {"src": "/nothing-here.png", "onerror": f"{PWN}('onerror')"}},
        {"selector": "#img", "attr": {"OnLoad": f"{PWN}('onload')", "style": "outline: 9px solid red"}},
        {"selector": "#frame", "attr": {"srcdoc": f"<script>parent.{PWN}('srcdoc')</script>"}},
        {"selector": "#frame", "attr": {"src": f"javascript:parent.{PWN}('frame src')"}},
        {"selector": "#frame", "attr": {"src": "/guards.html?framed=1"}},  # a fine URL, but no frame is a target
        {"selector": "#svg-set", "attr": {"to": f"javascript:{PWN}('svg set')"}},
        {"selector": "#later", "text": f"{PWN}('text on a later script')"},
        {"selector": "#later", "html": f"{PWN}('html on a later script')"},
        {"selector": "#later-ext", "attr": {"src": "/pwned.js"}},
        {"selector": "#page-style", "text": "#ok{color: rgb(255, 0, 0)}"},
    ]


def _bundle(campaigns):
    def campaign(key, actions, priority=0):
        return {"key": key, "type": "personalization", "seed": key, "segment": None, "conditions": None,
                "pages": None, "trigger": None, "priority": priority, "group": None,
                "schedule": {"start": None, "end": None}, "cap": {"per_visitor": None, "per_session": None},
                "traffic": 1, "variations": [{"key": "on", "weight": 1, "actions": actions}], "goals": []}
    return {"site": "guards", "version": 1, "hash": 1, "segments": {}, "goals": {},
            "campaigns": [campaign(key, actions) for key, actions in campaigns.items()],
            "settings": {"holdout": 0, "consent": "implied", "antiflicker_ms": 400}}


PAGES = pytest.mark.parametrize("path", ["/guards.html", "/guards-csp.html"], ids=["no-csp", "nonce-csp"])


def _open(page, shop, path, campaigns):
    """The page with `campaigns` ({key: actions}) handed to vitrina.init; returns its debug log."""
    log = []
    page.on("dialog", lambda d: (log.append("dialog " + d.message), d.dismiss()))
    page.on("console", lambda m: log.append(m.text))
    page.add_init_script(f"window.__bundle = {json.dumps(_bundle(campaigns))}")
    response = page.goto(shop.url(path + "?vitrina_debug=1"))
    assert ("content-security-policy" in response.headers) == path.endswith("-csp.html")
    page.wait_for_load_state("load")
    wait_for_debug(page)
    return log


@PAGES
# "//" comments out the query string a redirect keeps.
@pytest.mark.parametrize("url", [f"java\tscript:{PWN}('redirect')//", f"\x01javascript:{PWN}('redirect')//",
                                 f" JavaScript\n:{PWN}('redirect')//", "data:text/html,<script>alert(1)</script>"],
                         ids=["tab", "C0", "newline", "data"])
def test_a_redirect_to_a_script_url_is_refused(page, shop, path, url):
    log = _open(page, shop, path, {"redirect": [{"redirect": url}]})
    page.wait_for_timeout(300)
    assert page.evaluate("window.__pwned") is None
    assert page.url.endswith(path + "?vitrina_debug=1")
    assert not [line for line in log if line.startswith("dialog")]
    assert any(line.startswith("[vitrina:refused] redirect: redirect to") for line in log), log


@PAGES
def test_no_action_runs_script_and_ordinary_ones_apply(page, shop, path):
    log = _open(page, shop, path, {"attacks": _actions()})
    page.evaluate("document.getElementById('svg-set').beginElement()")
    page.wait_for_timeout(300)
    assert page.evaluate("window.__pwned") is None, page.evaluate("window.__pwned")
    assert not [line for line in log if line.startswith("dialog")]
    assert page.evaluate("window.__later") == 1  # the later script ran as written, once
    # Ordinary actions apply, refused ones leave the page as it was.
    assert page.locator("#ok").text_content() == "Swapped"
    assert page.locator("#link-ok").get_attribute("href") == "/promo?utm_content=v1"
    assert page.locator("#link-ok").get_attribute("title") == "javascript: only text"
    assert "promo" in page.locator("#link-ok").get_attribute("class")
    for selector in ("#link-tab", "#link-c0", "#link-entity"):
        assert page.locator(selector).get_attribute("href") == "/ok", selector
    assert page.locator("#button").get_attribute("formaction") is None
    assert page.locator("#img").get_attribute("src") == "/nothing-here.png"
    for name in ("onerror", "onload", "style"):
        assert page.locator("#img").get_attribute(name) is None, name
    assert page.locator("#frame").get_attribute("srcdoc") is None
    assert page.locator("#frame").get_attribute("src") == "about:blank"
    assert page.locator("#svg-set").get_attribute("to") == "/ok"
    assert page.locator("#later-ext").get_attribute("src") is None
    assert page.locator("#ok").evaluate("(el) => getComputedStyle(el).color") == "rgb(0, 0, 255)"
    refused = [line for line in log if line.startswith("[vitrina:refused]")]
    for what in ("<script>", "<iframe>", "<set>", "<style>", "attribute onerror", "attribute OnLoad",
                 "attribute style", "attribute formaction", "attribute HREF"):
        assert any(what in line for line in refused), (what, refused)
