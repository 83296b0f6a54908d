"""PUT/GET config: every problem reported with its JSON path, nothing invalid stored, keys scoped."""
import copy
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from server.configs.validation import review_config, validate_config
from server.store import get_store
from server.web.auth import hash_key
from tests.conftest import DEMO_CONFIG, database_bytes, make_site

URL = "/api/v1/sites/shop/config"


def test_valid_config_is_saved_and_read_back(client, shop, demo_config):
    response = client.put(URL, json=demo_config, headers=shop)
    assert response.status_code == 200, response.get_json()
    assert client.get(URL, headers=shop).get_json() == demo_config


def test_missing_or_malformed_key_is_401(client, shop, demo_config):
    assert client.put(URL, json=demo_config).status_code == 401
    assert client.put(URL, json=demo_config, headers={"Authorization": "Basic abc"}).status_code == 401
    response = client.put(URL, json=demo_config, headers={"Authorization": "Bearer vk_not-a-real-key"})
    assert response.status_code == 401
    assert response.get_json()["error"] == "unauthorized"


def test_key_of_another_site_is_403(app, client, shop, demo_config):
    other = make_site(app, "other")
    response = client.put(URL, json=demo_config, headers=other)
    assert response.status_code == 403
    assert response.get_json()["error"] == "forbidden"
    assert client.put("/api/v1/sites/other/config", json=demo_config, headers=other).status_code == 200
    assert client.get(URL, headers=shop).status_code == 404  # shop's draft was never written


def test_api_key_is_stored_hashed(app, shop):
    key = shop["Authorization"].split()[1]
    raw = database_bytes(app)
    assert hash_key(key).encode() in raw
    assert key.encode() not in raw


def _mutate(config, change):
    config = copy.deepcopy(config)
    change(config)
    return config


def _set(path, value):
    def change(config):
        target = config
        for part in path[:-1]:
            target = target[part]
        target[path[-1]] = value
    return change


ACTION = ["campaigns", 0, "variations", 0, "actions", 0]
ACTION_PATH = "/campaigns/0/variations/0/actions/0"


def _action(action):
    return _set(ACTION, action)


BAD_CONFIGS = [
    ("unknown segment", _set(["campaigns", 0, "segment"], "nope"), "/campaigns/0/segment", "unknown segment"),
    ("unknown goal", _set(["campaigns", 1, "goals"], ["purchase", "nope"]), "/campaigns/1/goals/1", "unknown goal"),
    ("duplicate campaign", lambda c: c["campaigns"].append(copy.deepcopy(c["campaigns"][0])),
     "/campaigns/7/key", "duplicate campaign key"),
    ("duplicate variation", lambda c: c["campaigns"][1]["variations"].append({"key": "control", "weight": 0}),
     "/campaigns/1/variations/2/key", "duplicate variation key"),
    ("weights not summing to 1", _set(["campaigns", 1, "variations", 0, "weight"], 0.7),
     "/campaigns/1/variations", "sum to 1"),
    ("weight out of range", _set(["campaigns", 1, "variations", 0, "weight"], 1.5),
     "/campaigns/1/variations/0/weight", "maximum"),
    ("some weights missing", lambda c: c["campaigns"][1]["variations"][0].pop("weight"),
     "/campaigns/1/variations", "every variation a weight"),
    ("bad regex", _set(["campaigns", 0, "pages"], {"page.path": {"$regex": "(unclosed"}}),
     "/campaigns/0/pages/page.path/$regex", "invalid regex"),
    ("unknown operator", _set(["segments", "mobile"], {"device.type": {"$like": "mob%"}}),
     "/segments/mobile/device.type/$like", "unknown operator '$like'"),
    ("misspelt operator", _set(["segments", "mobile"], {"device.type": {"$regx": "mob"}}),
     "/segments/mobile/device.type/$regx", "did you mean '$regex'?"),
    ("unknown field", _set(["campaigns", 0, "colour"], "red"), "/campaigns/0", "Additional properties"),
    ("bad status", _set(["campaigns", 0, "status"], "running"), "/campaigns/0/status", "is not one of"),
    ("bad campaign key", _set(["campaigns", 0, "key"], "has space"), "/campaigns/0/key", "does not match"),
    ("bad segment name", _set(["campaigns", 0, "segment"], "has space"), "/campaigns/0/segment",
     "does not match the expected form: A key"),
    ("no variations", _set(["campaigns", 0, "variations"], []), "/campaigns/0/variations", "should be non-empty"),
    ("experiment with one variation", _set(["campaigns", 1, "variations"], [{"key": "only"}]),
     "/campaigns/1/variations", "at least two variations"),
    ("action without selector", _action({"text": "x"}), ACTION_PATH, "needs a 'selector'"),
    # Recommendations, placeholders, reordering
    ("recommend without a selector", _action({"recommend": {"strategy": "bestsellers", "items": "page"}}), ACTION_PATH,
     "recommend needs a 'selector'"),
    ("unknown strategy", _action({"selector": "#r", "recommend": {"strategy": "popular", "items": "page"}}),
     ACTION_PATH + "/recommend/strategy", "is not one of"),
    ("unknown anchors", _action({"selector": "#r", "recommend": {"strategy": "similar", "items": "basket"}}),
     ACTION_PATH + "/recommend/items", "is not one of"),
    ("too many products", _action({"selector": "#r", "recommend": {"strategy": "similar", "items": "page", "n": 21}}),
     ACTION_PATH + "/recommend/n", "maximum"),
    ("misspelt template field", _action({"selector": "#r", "recommend": {"strategy": "similar", "items": ["sku-1"],
                                                                       "template": "<b>{{tilte}}</b>"}}),
     ACTION_PATH + "/recommend/template", "did you mean {{title}}?"),
    ("a price range upside down", _action({"selector": "#r", "recommend": {"strategy": "similar", "items": "cart",
                                                                         "min_price": 50, "max_price": 10}}),
     ACTION_PATH + "/recommend/max_price", "below min_price"),
    ("misspelt placeholder attribute", _action({"selector": "h1", "text": "Hello {{geo.cty|there}}"}),
     ACTION_PATH + "/text", "placeholder {{geo.cty}}: unknown attribute geo.cty; did you mean geo.city?"),
    ("unknown product field", _action({"selector": "h1", "html": "<b>{{product.stock}}</b>"}),
     ACTION_PATH + "/html", "unknown placeholder {{product.stock}}"),
    ("reorder by something else", _action({"selector": "nav ul", "reorder": {"by": "history.pages"}}),
     ACTION_PATH + "/reorder/by", "is not one of"),
    ("a goal named like Vitrina's own", _set(["goals", "recommendation_click"], {"event": "x"}),
     "/goals/recommendation_click", "Vitrina's own goal"),
    ("holdout too large", _set(["settings", "holdout"], 0.9), "/settings/holdout", "maximum"),
    ("schedule ends before start", _set(["campaigns", 0, "schedule"], {"start": "2026-12-01T00:00:00Z",
                                                                     "end": "2026-11-01T00:00:00Z"}),
     "/campaigns/0/schedule/end", "ends before it starts"),
    ("bad trigger", _set(["campaigns", 0, "trigger"], {"scroll": 150}), "/campaigns/0/trigger/scroll",
     "greater than the maximum of 100"),
    ("style of the wrong type", _action({"selector": "#x", "style": 5}), ACTION_PATH + "/style",
     "not of type string or object"),
    # Python's `$` also matches before a final newline: the patterns must not let one through
    ("key ending in a newline", _set(["campaigns", 0, "key"], "hero-newsletter\n"), "/campaigns/0/key", "match"),
    ("date ending in a newline", _set(["campaigns", 0, "schedule"], {"start": "2026-12-01T00:00:00Z\n"}),
     "/campaigns/0/schedule/start", "match"),
    # Dates that fit the pattern but do not exist: a 400 with the path, never a 500.
    ("February 31", _set(["campaigns", 0, "schedule"], {"start": "2026-02-31T00:00:00Z"}),
     "/campaigns/0/schedule/start", "not a real date and time: day is out of range for month"),
    ("month 13", _set(["campaigns", 0, "schedule"], {"end": "2026-13-01T00:00:00Z"}),
     "/campaigns/0/schedule/end", "not a real date and time: month must be in 1..12"),
    ("hour 25", _set(["campaigns", 0, "schedule"], {"start": "2026-01-01T25:00:00Z"}),
     "/campaigns/0/schedule/start", "hour must be in 0..23"),
    ("second 60", _set(["campaigns", 0, "schedule"], {"start": "2026-01-01T23:59:60Z"}),
     "/campaigns/0/schedule/start", "second must be in 0..59"),
    ("offset +25:00", _set(["campaigns", 0, "schedule"], {"start": "2026-01-01T00:00:00+25:00"}),
     "/campaigns/0/schedule/start", "+25:00 is not a UTC offset"),
    ("non-ASCII digits", _set(["campaigns", 0, "schedule"], {"start": "\u0662\u0660\u0662\u0666-01-01T00:00:00Z"}),
     "/campaigns/0/schedule/start", "does not match the expected form"),
    # Attributes: one registry (spec/attributes.json), misspellings named with a suggestion.
    ("misspelt attribute in a segment", _set(["segments", "mobile"], {"devise.type": "mobile"}),
     "/segments/mobile/devise.type", "unknown attribute devise.type; did you mean device.type?"),
    ("misspelt UTM attribute in conditions", _set(["campaigns", 0, "conditions"], {"utm.medum": "email"}),
     "/campaigns/0/conditions/utm.medum", "unknown attribute utm.medum; did you mean utm.medium?"),
    ("misspelt attribute in pages", _set(["campaigns", 0, "pages"], {"page.pth": "/"}),
     "/campaigns/0/pages/page.pth", "did you mean page.path?"),
    ("misspelt attribute in a pageview goal", _set(["goals", "thanks_page"], {"pageview": {"page.paht": "/t"}}),
     "/goals/thanks_page/pageview/page.paht", "did you mean page.path?"),
    ("unknown attribute under $or", _set(["segments", "mobile"], {"$or": [{"device.type": "mobile"},
                                                                      {"geo.contry": "FR"}]}),
     "/segments/mobile/$or/1/geo.contry", "did you mean geo.country?"),
    ("misspelt query family", _set(["segments", "mobile"], {"page.qurey.ref": "x"}),
     "/segments/mobile/page.qurey.ref", "did you mean page.query.ref?"),
    ("unknown namespace", _set(["segments", "mobile"], {"weather": "rain"}),
     "/segments/mobile/weather", "unknown attribute weather; docs/reference/attributes.md lists them"),
    # Regexes are JavaScript's: what both evaluators treat as invalid is refused.
    ("inline regex flags", _set(["campaigns", 0, "pages"], {"page.path": {"$regex": "(?i)/sale"}}),
     "/campaigns/0/pages/page.path/$regex", "use $regexi"),
    ("possessive quantifier", _set(["campaigns", 0, "pages"], {"page.path": {"$regex": "a++"}}),
     "/campaigns/0/pages/page.path/$regex", "invalid regex (JavaScript syntax): nothing to repeat"),
    ("regex that is not a string", _set(["campaigns", 0, "pages"], {"page.path": {"$regex": 5}}),
     "/campaigns/0/pages/page.path/$regex", "must be a string"),
    ("$in without a list", _set(["segments", "mobile"], {"device.type": {"$in": "mobile"}}),
     "/segments/mobile/device.type/$in", "$in takes a list"),
    ("$or on a value", _set(["segments", "mobile"], {"device.type": {"$or": ["mobile"]}}),
     "/segments/mobile/device.type/$or", "put it at the top of the condition"),
    ("$regex at the top of a condition", _set(["segments", "mobile"], {"$regex": "x"}),
     "/segments/mobile/$regex", "compares an attribute's value"),
    ("unknown $type name", _set(["segments", "mobile"], {"device.type": {"$type": "str"}}),
     "/segments/mobile/device.type/$type", "$type is one of"),
    # URLs, read as the browser reads them: a tab, a newline or a leading control is no disguise.
    ("javascript redirect", _action({"redirect": "javascript:alert(1)"}), ACTION_PATH + "/redirect", "http(s)"),
    ("redirect with a tab", _action({"redirect": "java\tscript:alert(1)"}), ACTION_PATH + "/redirect",
     "not javascript:"),
    ("redirect with a newline", _action({"redirect": "jav\nascript:alert(1)"}), ACTION_PATH + "/redirect",
     "not javascript:"),
    ("redirect with a leading control", _action({"redirect": "\x01javascript:alert(1)"}), ACTION_PATH + "/redirect",
     "not javascript:"),
    ("protocol-relative redirect", _action({"redirect": "//evil.example/x"}), ACTION_PATH + "/redirect",
     "names the host evil.example"),
    ("backslash redirect", _action({"redirect": "/\\evil.example/x"}), ACTION_PATH + "/redirect",
     "names the host evil.example"),
    ("absolute redirect to an unlisted host", _action({"redirect": "https://other.example/x"}),
     ACTION_PATH + "/redirect", "list other.example in settings.redirect_hosts"),
    ("mailto redirect", _action({"redirect": "mailto:a@b.example"}), ACTION_PATH + "/redirect", "not mailto:"),
    ("javascript href", _action({"selector": "a", "attr": {"href": " JavaScript:alert(1)"}}),
     ACTION_PATH + "/attr/href", "javascript: URLs are not allowed"),
    ("href with a tab", _action({"selector": "a", "attr": {"href": "java\tscript:alert(1)"}}),
     ACTION_PATH + "/attr/href", "javascript: URLs are not allowed"),
    ("formaction with a newline", _action({"selector": "button", "attr": {"formaction": "jav\nascript:x()"}}),
     ACTION_PATH + "/attr/formaction", "javascript: URLs are not allowed"),
    ("src with a leading control", _action({"selector": "img", "attr": {"src": "\x01javascript:x()"}}),
     ACTION_PATH + "/attr/src", "javascript: URLs are not allowed"),
    ("data URL", _action({"selector": "a", "attr": {"href": "data:text/html,<script>x()</script>"}}),
     ACTION_PATH + "/attr/href", "data: URLs are not allowed"),
    ("srcset with a script URL", _action({"selector": "img", "attr": {"srcset": "/a.png 1x,javascript:x() 2x"}}),
     ACTION_PATH + "/attr/srcset", "javascript: URLs are not allowed"),
    ("SVG animation to a script URL", _action({"selector": "#logo set", "attr": {"to": "javascript:x()"}}),
     ACTION_PATH + "/attr/to", "javascript: URLs are not allowed"),
    ("SVG animation of href", _action({"selector": "#logo set", "attr": {"attributeName": "href"}}),
     ACTION_PATH + "/attr/attributeName", "never animates href"),
    ("event handler attribute", _action({"selector": "img", "attr": {"onclick": "x()"}}),
     ACTION_PATH + "/attr/onclick", "never sets event handlers"),
    ("upper-case event handler", _action({"selector": "img", "attr": {"ONERROR": "x()"}}),
     ACTION_PATH + "/attr/ONERROR", "never sets event handlers"),
    ("srcdoc", _action({"selector": "iframe.x", "attr": {"srcdoc": "<b>x</b>"}}), ACTION_PATH + "/attr/srcdoc",
     "never sets srcdoc"),
    ("style through attr", _action({"selector": "p", "attr": {"style": "color:red"}}), ACTION_PATH + "/attr/style",
     "use the style action"),
    # Elements that run or load code are never a target.
    ("script target", _action({"selector": "script", "text": "x()"}), ACTION_PATH + "/selector",
     "never target <script>"),
    ("script target after a combinator", _action({"selector": "body > script#later", "attr": {"src": "/x.js"}}),
     ACTION_PATH + "/selector", "never target <script>"),
    ("escaped script target", _action({"selector": "scr\\69pt", "html": "x"}), ACTION_PATH + "/selector",
     "never target <script>"),
    ("script in :is()", _action({"selector": "p, :is(.a, script)", "text": "x"}), ACTION_PATH + "/selector",
     "never target <script>"),
    ("iframe target", _action({"selector": "iframe", "attr": {"src": "/x"}}), ACTION_PATH + "/selector",
     "never target <iframe>"),
    ("meta target", _action({"selector": "meta[http-equiv]", "attr": {"content": "0;url=/x"}}),
     ACTION_PATH + "/selector", "never target <meta>"),
    ("base target", _action({"selector": "base", "attr": {"href": "/x/"}}), ACTION_PATH + "/selector",
     "never target <base>"),
    ("link target", _action({"selector": "link[rel=stylesheet]", "remove": True}), ACTION_PATH + "/selector",
     "never target <link>"),
    ("style element target", _action({"selector": "head style", "text": "x"}), ACTION_PATH + "/selector",
     "never target <style>"),
    # CSS: no closing the style element, no script URLs.
    ("css closing its style element", _action({"css": "a{color:red}</style><script>x()</script>"}),
     ACTION_PATH + "/css", "may not contain </style"),
    ("css closing its style element in capitals", _action({"css": "a{color:red}</STYLE >"}),
     ACTION_PATH + "/css", "may not contain </style"),
    ("css url() with a script URL", _action({"css": "a{background:url(javascript:void)}"}), ACTION_PATH + "/css",
     "javascript: URLs are not allowed"),
    ("css url() quoted", _action({"css": "@media print{a{background:url( 'java\\9script:x()' )}}"}),
     ACTION_PATH + "/css", "javascript: URLs are not allowed"),
    ("css syntax error", _action({"css": "a{background:url(/a b.png)}"}), ACTION_PATH + "/css",
     "CSS syntax error: bad URL token"),
    ("css @import of a script URL", _action({"css": "@import 'javascript:x()';"}), ACTION_PATH + "/css",
     "javascript: URLs are not allowed"),
    ("style url() with a script URL", _action({"selector": "p", "style": "background: url('jav\\9 ascript:x')"}),
     ACTION_PATH + "/style", "javascript: URLs are not allowed"),
    ("style object url()", _action({"selector": "p", "style": {"background-image": "url(data:image/svg+xml,x)"}}),
     ACTION_PATH + "/style/background-image", "data: URLs are not allowed"),
    # Settings
    ("redirect host that is a URL", _set(["settings", "redirect_hosts"], ["https://shop.example"]),
     "/settings/redirect_hosts/0", "does not match the expected form: A host name"),
    ("negative max_value", _set(["settings", "max_value"], -1), "/settings/max_value", "minimum"),
    ("referral exclusion that is a URL", _set(["settings", "referral_exclusions"], ["paypal.com", "https://x.example/"]),
     "/settings/referral_exclusions/1", "does not match the expected form: A host name"),
    ("referral exclusions twice the same", _set(["settings", "referral_exclusions"], ["paypal.com", "paypal.com"]),
     "/settings/referral_exclusions", "unique"),
]


@pytest.mark.parametrize("name, change, path, message", BAD_CONFIGS, ids=[b[0] for b in BAD_CONFIGS])
def test_invalid_config_is_refused_with_its_path(client, shop, demo_config, name, change, path, message):
    response = client.put(URL, json=_mutate(demo_config, change), headers=shop)
    assert response.status_code == 400
    body = response.get_json()
    assert body["error"] == "invalid_config"
    assert any(d["path"] == path and message in d["message"] for d in body["details"]), body["details"]
    assert client.get(URL, headers=shop).status_code == 404  # nothing stored


def test_every_problem_is_listed_at_once(client, shop, demo_config):
    """Ten mistakes, schema and semantic mixed, give ten problems in one answer: none hides
    behind another, none is reported twice."""
    config = copy.deepcopy(demo_config)
    hero, cta, reco, *_ = config["campaigns"]
    hero["status"] = "running"                                          # schema: enum
    hero["colour"] = "red"                                              # schema: unknown field
    config["settings"]["holdout"] = 0.9                                 # schema: maximum
    cta["variations"][0]["weight"] = "half"                             # schema: type
    config["segments"]["newsletter"] = {"utm.sourc": "newsletter"}      # unknown attribute
    hero["segment"] = "nope"                                            # unknown segment
    reco["goals"] = ["purchase", "nope"]                                # unknown goal
    reco["pages"] = {"page.path": {"$regex": "(?i)/product"}}           # not a JavaScript regex
    reco["schedule"] = {"start": "2026-02-31T00:00:00Z"}                # no such day
    hero["variations"][0]["actions"].append({"redirect": "java\tscript:alert(1)"})  # script URL
    response = client.put(URL, json=config, headers=shop)
    assert response.status_code == 400
    body = response.get_json()
    assert body["message"] == "The config has 10 problem(s); nothing was saved."
    assert [d["path"] for d in body["details"]] == [
        "/campaigns/0", "/campaigns/0/segment", "/campaigns/0/status", "/campaigns/0/variations/0/actions/4/redirect",
        "/campaigns/1/variations/0/weight", "/campaigns/2/goals/1", "/campaigns/2/pages/page.path/$regex",
        "/campaigns/2/schedule/start", "/segments/newsletter/utm.sourc", "/settings/holdout"]
    assert "did you mean utm.source?" in body["details"][8]["message"]


GOOD_CONDITIONS = [
    ("named group regex, as JavaScript writes it", {"page.path": {"$regex": "^/(?<year>\\d{4})/"}}),
    ("case-insensitive regex operator", {"page.path": {"$regexi": "^/SALE"}}),
    ("a query parameter", {"page.query.utm_id": {"$exists": True}}),
    ("an array attribute by index", {"history.pages.1": "/cart"}),
    ("a tracked event count", {"history.events.add_to_cart": {"$gte": 2}}),
    ("anything the site sets", {"user.plan": "gold", "user.account.tier": {"$in": [1, 2]}}),
    ("CRM data", {"crm.lifetime_value": {"$gt": 100}}),
    ("a namespace as an object", {"device.screen": {"$exists": True}}),
    ("paths inside $elemMatch are the element's, not attributes",
     {"history.products": {"$elemMatch": {"sku": "a", "price": {"$lt": 5}}}}),
    ("operators under $not and $elemMatch", {"history.pages": {"$elemMatch": {"$regex": "^/p/"}},
                                             "page.path": {"$not": {"$in": ["/a", "/b"]}}}),
    ("combinators", {"$or": [{"geo.country": "FR"}, {"$and": [{"device.type": "mobile"}, {"$nor": []}]}]}),
]


@pytest.mark.parametrize("name, condition", GOOD_CONDITIONS, ids=[g[0] for g in GOOD_CONDITIONS])
def test_valid_conditions_are_accepted(client, shop, demo_config, name, condition):
    demo_config["segments"]["mobile"] = condition
    response = client.put(URL, json=demo_config, headers=shop)
    assert response.status_code == 200, response.get_json()


def test_referral_exclusions_reach_the_bundle_as_the_tag_compares_hosts(client, shop, demo_config):
    demo_config["settings"]["referral_exclusions"] = ["WWW.PayPal.com", "checkout.stripe.com", "paypal.com"]
    assert client.put(URL, json=demo_config, headers=shop).status_code == 200
    assert client.post("/api/v1/sites/shop/publish", headers=shop).status_code == 201
    bundle = client.get("/v1/sites/shop/bundle.json").get_json()["bundle"]
    assert bundle["settings"]["referral_exclusions"] == ["paypal.com", "checkout.stripe.com"]


def test_redirects_to_a_listed_host_and_to_paths_are_accepted(client, shop, demo_config):
    demo_config["settings"]["redirect_hosts"] = ["shop.example", "XN--BCHER-KVA.example"]
    actions = demo_config["campaigns"][0]["variations"][0]["actions"]
    actions += [{"redirect": "https://SHOP.example/landing?x=1"}, {"redirect": "//shop.example/b"},
                {"redirect": "https://bücher.example/"}, {"redirect": "/split-b.html"}, {"redirect": "?v=2"}]
    response = client.put(URL, json=demo_config, headers=shop)
    assert response.status_code == 200, response.get_json()
    assert response.get_json() == {"site": "shop", "saved": True, "warnings": []}


SANITISED = [
    ("script element", "<p>Hi</p><script>pwn()</script>", "<p>Hi</p>", ["removed <script> element"]),
    ("event handler", "<img src=/x.png ONERROR='pwn()'>", '<img src="/x.png">',
     ["removed attribute onerror (on <img>): event handlers never run in merchant HTML"]),
    ("script URL behind an entity", "<a href='java&#115;cript:pwn()'>x</a>", "<a>x</a>",
     ["removed attribute href (on <a>): javascript: URLs are not allowed"]),
    ("script URL behind &NewLine;", "<a href='jav&NewLine;ascript:pwn()'>x</a>", "<a>x</a>",
     ["removed attribute href (on <a>): javascript: URLs are not allowed"]),
    ("iframe", "<iframe src=\"javascript:pwn()\"></iframe>ok", "ok", ["removed <iframe> element"]),
    ("noembed title breakout", '<noembed><p title="</noembed><img src=x onerror=pwn()>">', '<img src="x">"&gt;',
     ["removed <noembed> element", "removed attribute onerror (on <img>)"]),
    ("svg style breakout", "<svg><style><img src=x onerror=pwn()>", '<img src="x">',
     ["removed <style> element", "removed <svg> element", "removed attribute onerror (on <img>)"]),
    ("formaction", "<button formaction=javascript:pwn()>Go</button>", "<button>Go</button>",
     ["removed attribute formaction (on <button>): not an allowed attribute"]),
    ("inline style", '<p style="color:red" class="x">a</p>', '<p class="x">a</p>',
     ["removed attribute style (on <p>): inline style goes through the style action"]),
    ("a bare table row", "<tr><td>1</td></tr>", "1",
     ["removed <tr> element: table rows, cells and sections stay only inside a whole <table>"]),
]


@pytest.mark.parametrize("name, markup, clean, messages", SANITISED, ids=[s[0] for s in SANITISED])
def test_merchant_html_is_sanitised_and_the_answer_says_what_was_removed(client, shop, demo_config, name, markup,
                                                                          clean, messages):
    demo_config["campaigns"][0]["variations"][0]["actions"].append({"selector": "#x", "append": markup})
    response = client.put(URL, json=demo_config, headers=shop)
    assert response.status_code == 200, response.get_json()
    warnings = response.get_json()["warnings"]
    assert {w["path"] for w in warnings} == {"/campaigns/0/variations/0/actions/4/append"}
    for message in messages:
        assert any(w["message"].startswith(message) for w in warnings), warnings
    stored = client.get(URL, headers=shop).get_json()
    assert stored["campaigns"][0]["variations"][0]["actions"][4]["append"] == clean  # what is stored and published


def test_ordinary_merchant_html_is_kept_as_written(client, shop, demo_config):
    markup = ('<h2 class="promo">Spring <em>sale</em></h2><p id="p1" data-x="1" aria-label="offer" role="note">'
              '<a href="/sale?a=1&amp;b=2" target="_blank" rel="noopener">See</a> or '
              '<a href="mailto:shop@example.com">mail</a></p><ul><li>one</li></ul>'
              '<picture><source srcset="/a.webp 1x, /a@2x.webp 2x" type="image/webp">'
              '<img src="https://cdn.example/a.png" alt="A" width="10" height="10"></picture>'
              '<table><tbody><tr><th scope="row">a</th><td colspan="2">b</td></tr></tbody></table>'
              '<figure><figcaption>cap</figcaption></figure><button type="button">Go</button>')
    demo_config["campaigns"][0]["variations"][0]["actions"].append({"selector": "#x", "html": markup})
    response = client.put(URL, json=demo_config, headers=shop)
    assert response.get_json() == {"site": "shop", "saved": True, "warnings": []}
    assert client.get(URL, headers=shop).get_json() == demo_config


def test_publish_compiles_the_sanitised_html_even_of_a_draft_saved_before_sanitising(app, client, shop, demo_config):
    demo_config["campaigns"][0]["variations"][0]["actions"].append(
        {"selector": "#x", "html": "<b>hi</b><img src=x onerror=pwn()>"})
    with app.app_context():  # stored as an older server would have stored it
        get_store().save_draft("shop", json.dumps(demo_config))
    response = client.post("/api/v1/sites/shop/publish", headers=shop)
    assert response.status_code == 201
    assert response.get_json()["warnings"] == [{"path": "/campaigns/0/variations/0/actions/4/html",
                                                "message": "removed attribute onerror (on <img>): event handlers "
                                                           "never run in merchant HTML"}]
    bundle = client.get("/v1/sites/shop/bundle.json").get_json()["bundle"]
    assert bundle["campaigns"][0]["variations"][0]["actions"][4]["html"] == '<b>hi</b><img src="x">'


def test_a_valid_key_asking_for_a_missing_site_is_told_there_is_none(client, shop, demo_config):
    for site in ("nosuch", "%C3%BC", "%ED%A0%80"):
        response = client.put(f"/api/v1/sites/{site}/config", json=demo_config, headers=shop)
        assert response.status_code == 404, site
        body = response.get_json()
        assert body["error"] == "site_not_found" and body["message"].startswith("There is no site")
        assert body["details"] == []


def test_values_nested_past_64_levels_are_refused_without_recursing(client, shop, demo_config):
    nested = []
    for _ in range(900):  # json.loads takes it; anything recursive over it would not
        nested = [nested]
    demo_config["segments"]["mobile"] = {"page.path": nested}
    response = client.put(URL, json=demo_config, headers=shop)
    assert response.status_code == 400
    [problem] = response.get_json()["details"]
    assert problem["message"] == "nested deeper than 64 levels"
    assert problem["path"] == "/segments/mobile/page.path" + "/0" * (65 - 3)  # the first value 65 levels down


def test_problem_messages_are_bounded(client, shop, demo_config):
    demo_config["campaigns"][0]["name"] = "x" * 20000
    [problem] = client.put(URL, json=demo_config, headers=shop).get_json()["details"]
    assert problem["path"] == "/campaigns/0/name" and "is too long" not in problem["message"]
    assert len(problem["message"]) == 300 and problem["message"].endswith("…")


def test_duplicate_json_keys_are_refused(client, shop):
    body = '{"segments": {}, "segments": {}}'
    response = client.put(URL, data=body, headers={**shop, "Content-Type": "application/json"})
    assert response.status_code == 400
    assert "duplicate key 'segments'" in response.get_json()["details"][0]["message"]


def test_not_json_is_400(client, shop):
    response = client.put(URL, data="{nope", headers=shop)
    assert response.status_code == 400
    assert response.get_json()["error"] == "invalid_json"


def test_oversized_config_is_413(client, shop):
    big = json.dumps({"segments": {"s": {"x": "a" * (600 * 1024)}}})
    response = client.put(URL, data=big, headers={**shop, "Content-Type": "application/json"})
    assert response.status_code == 413
    assert response.get_json()["error"] == "request_entity_too_large"


JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats(allow_nan=False) |
    st.text(alphabet=st.sampled_from("ab$.:/<>()[]{}*+?\\\t\x01٢0 jvscrip"), max_size=12),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
        st.sampled_from(["$regex", "$in", "$or", "$and", "$not", "$elemMatch", "$type", "$size", "$all", "page.path",
                         "utm.medum", "user.x", "selector", "html", "attr", "css", "style", "redirect", "key",
                         "variations", "actions", "schedule", "start", "end", "weight", "segment", "goals",
                         "pageview", "href", "onclick", "redirect_hosts", "x"]), inner, max_size=4),
    max_leaves=20)


def _graft(config, path, value):
    target = config
    for part in path[:-1]:
        target = target[part] if isinstance(target, dict) else target[part % len(target)]
    if isinstance(target, dict):
        target[path[-1] if path[-1] in target else next(iter(target), "x")] = value
    elif target:
        target[path[-1] % len(target)] = value


PLACES = [["segments", "newsletter"], ["goals", "thanks_page"], ["campaigns", 0], ["campaigns", 0, "variations"],
          ["campaigns", 0, "variations", 0, "actions", 0], ["campaigns", 0, "variations", 0, "actions"],
          ["campaigns", 1, "schedule"], ["campaigns", 0, "pages"], ["settings"], ["settings", "holdout"]]


@settings(max_examples=400, deadline=None)
@given(st.sampled_from(PLACES), JSON, st.data())
def test_review_never_raises_whatever_is_grafted_into_a_valid_config(place, value, data):
    """Every malformed part gets problems with paths, never an exception (a 500)."""
    config = json.loads(DEMO_CONFIG.read_text())
    config["campaigns"][1]["schedule"] = {"start": data.draw(st.sampled_from(
        ["2026-02-31T00:00:00Z", "2026-01-01T24:00Z", "2026-01-01T00:00:00-24:00", "0000-01-01T00:00Z", None]))}
    _graft(config, place, value)
    review = review_config(config)
    assert all(p["path"] == "" or p["path"].startswith("/") for p in review.problems)
    json.dumps(review.config)


@settings(max_examples=200, deadline=None)
@given(JSON)
def test_review_never_raises_on_any_json(value):
    review = review_config(value)
    assert (review.problems == []) == (isinstance(value, dict) and validate_config(value) == [])


def test_a_recommend_template_is_sanitised_and_compiled_with_defaults_and_its_goals(client, shop, demo_config):
    demo_config["campaigns"][1]["variations"][1]["actions"] = [
        {"selector": "#reco", "recommend": {"strategy": "bought_together", "items": "cart", "title": "With it",
                                            "template": '<a href="{{link}}" onclick="steal()">{{title}}</a>'
                                                        '<img src="{{image_link}}" onerror="x()">'}},
        {"selector": "h1", "text": "Hello {{geo.city|there}}, {{product.views_24h}} viewed this"}]
    response = client.put(URL, json=demo_config, headers=shop)
    assert response.status_code == 200, response.get_json()
    assert [w["message"] for w in response.get_json()["warnings"]] == [
        "removed attribute onclick (on <a>): event handlers never run in merchant HTML",
        "removed attribute onerror (on <img>): event handlers never run in merchant HTML"]
    assert client.post("/api/v1/sites/shop/publish", headers=shop).status_code == 201
    bundle = client.get("/v1/sites/shop/bundle.json").get_json()["bundle"]
    campaign = next(c for c in bundle["campaigns"] if c["key"] == "cta-wording")
    assert campaign["variations"][1]["actions"][0]["recommend"] == {
        "strategy": "bought_together", "items": "cart", "title": "With it", "n": 4,
        "template": '<a href="{{link}}">{{title}}</a><img src="{{image_link}}">'}
    assert campaign["goals"][-3:] == ["recommendation_click", "recommendation_add", "recommendation_purchase"]
    assert bundle["goals"]["recommendation_add"] == {"recommendation": "add"}
    hero = next(c for c in bundle["campaigns"] if c["key"] == "hero-newsletter")
    assert "recommendation_click" not in hero["goals"]


def test_superscript_digits_in_paths_are_names_not_numbers(client, shop):
    """'²'.isdigit() is True but int('²') raises: sorting problems by path, and reading numbers
    from a query, take decimal digits only (a 500 schemathesis found)."""
    response = client.put("/api/v1/sites/shop/config", json={"segments": {"¹": {"x": 1}, "0": []}}, headers=shop)
    assert response.status_code == 400
    assert client.get("/v1/sites/shop/recommendations?strategy=bestsellers&n=%C2%B2").status_code == 400
