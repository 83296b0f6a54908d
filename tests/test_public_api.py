"""tag.js, context.js, bundle.json, context, SDK, health: tag.js is the SDK's core, the modules
the bundle needs and the bundle, the same for every visitor; context.js is the visitor's own."""
import gzip
import json
import re
import subprocess

from server.delivery.sdk_asset import REPO_SDK
from tests.servers import tag_boot

CHROME_ANDROID = ("Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
                  "Chrome/131.0.0.0 Mobile Safari/537.36")
DIST = REPO_SDK.parent
MANIFEST = json.loads((DIST / "manifest.json").read_text())
CORE_FILE = (DIST / MANIFEST["core"]).read_bytes()
CORE = b"//# allFunctionsCalledOnLoad\n" + CORE_FILE  # V8's compile hint first (serving.COMPILE_HINT)
GOALS = (DIST / MANIFEST["modules"]["goals"]).read_bytes()
TRIGGERS = (DIST / MANIFEST["modules"]["triggers"]).read_bytes()
# the demo config recommends (cart cross-sell, up-sell), fills placeholders (social proof) and has click
# goals; it has campaigns, whose results the slices module (with attribution's medium) breaks down
ATTRIBUTION, COMMERCE, RECOMMEND, SLICES = ((DIST / MANIFEST["modules"][name]).read_bytes()
                                            for name in ("attribution", "commerce", "recommend", "slices"))
DEMO_MODULES = b"\n".join((ATTRIBUTION, COMMERCE, GOALS, RECOMMEND, SLICES))


def _context(context_js):
    match = re.fullmatch(rb"\(function\(c\)\{.*\}\)\((.*)\);", context_js, re.S)
    assert match, context_js
    return json.loads(match.group(1))


def test_tag_carries_the_core_and_the_bundle_and_nothing_of_the_visitor(client, published):
    response = client.get("/v1/sites/shop/tag.js", headers={"User-Agent": CHROME_ANDROID},
                          environ_base={"REMOTE_ADDR": "81.2.69.142"}, base_url="https://cdn.example.test")
    assert response.status_code == 200
    assert response.content_type.startswith("application/javascript")
    # The demo config recommends and fills placeholders (commerce, recommend), has click and page-view
    # goals and campaigns (slices, attribution), no trigger, redirect, geo or rarer operator.
    assert response.data.startswith(CORE + b"\n" + DEMO_MODULES + b"\n;vitrina.init(")
    # What its conditions read that may change after init: the document (the menu's page.type,
    # declared in a <meta> that may come after the tag).
    assert tag_boot(response.data) == {"bundle": tag_boot(response.data)["bundle"], "reads": ["document"]}
    assert tag_boot(response.data)["bundle"]["version"] == 1
    assert response.headers["Cache-Control"] == "public, max-age=60, stale-while-revalidate=600"
    assert response.headers["Vary"] == "Accept-Encoding"
    other = client.get("/v1/sites/shop/tag.js", headers={"User-Agent": "curl/8"},
                       environ_base={"REMOTE_ADDR": "8.8.8.8"}, base_url="http://other.example")
    assert other.data == response.data and other.headers["ETag"] == response.headers["ETag"]
    for leak in (b"81.2.69.142", b"Android", b"cdn.example.test", b'"geo"', b'"device"'):
        assert leak not in response.data[len(CORE):]


def test_tag_carries_the_modules_its_bundle_needs(client, published, demo_config):
    demo_config["campaigns"][0]["trigger"] = {"scroll": 50}
    client.put("/api/v1/sites/shop/config", json=demo_config, headers=published)
    client.post("/api/v1/sites/shop/publish", headers=published)
    body = client.get("/v1/sites/shop/tag.js").data
    assert body.startswith(CORE + b"\n" + DEMO_MODULES + b"\n" + TRIGGERS + b"\n;vitrina.init(")


def test_tag_escapes_markup_in_merchant_strings(client, published, demo_config):
    demo_config["campaigns"][0]["variations"][0]["actions"][0]["text"] = "</script><script>alert(1)</script>\u2028"
    client.put("/api/v1/sites/shop/config", json=demo_config, headers=published)
    client.post("/api/v1/sites/shop/publish", headers=published)
    body = client.get("/v1/sites/shop/tag.js").data
    tail = body[len(CORE):]
    assert b"</script" not in tail and "\u2028".encode() not in tail
    assert tag_boot(body)["bundle"]["campaigns"][0]["variations"][0]["actions"][0]["text"].startswith("</script>")


BREAKOUTS = ["it's", "\\", "\\'", "\\\\'", "'); alert(1); ('", "\\'); alert(1); //", "\\u0027", "\u2029 \\\u2028"]


def test_the_bundle_in_tag_js_is_read_back_exactly_by_a_javascript_engine(client, published, demo_config):
    """The bundle travels as JSON text in a single-quoted JS string: quotes and backslashes in
    merchant strings must neither end the string nor change what JSON.parse reads."""
    text = " | ".join(BREAKOUTS)
    demo_config["campaigns"][0]["variations"][0]["actions"][0]["text"] = text
    client.put("/api/v1/sites/shop/config", json=demo_config, headers=published)
    assert client.post("/api/v1/sites/shop/publish", headers=published).status_code == 201
    body = client.get("/v1/sites/shop/tag.js").data
    expression = re.search(rb'\n;vitrina\.init\(\{"bundle":(JSON\.parse\(.*\)),"reads":', body, re.S).group(1)
    script = b"process.stdout.write(JSON.stringify(" + expression + b"))"
    read_back = json.loads(subprocess.run(["node", "-e", script], capture_output=True, check=True).stdout)
    assert read_back == tag_boot(body)["bundle"]
    assert read_back["campaigns"][0]["variations"][0]["actions"][0]["text"] == text


def test_tag_etag_and_gzip(client, published):
    first = client.get("/v1/sites/shop/tag.js", headers={"Accept-Encoding": "gzip"})
    assert first.headers["Content-Encoding"] == "gzip"
    plain = client.get("/v1/sites/shop/tag.js")
    # one valid gzip member (CRC and size checked) holding exactly the identity body
    assert gzip.decompress(first.data) == plain.data
    assert plain.headers["ETag"] == first.headers["ETag"]
    again = client.get("/v1/sites/shop/tag.js", headers={"If-None-Match": first.headers["ETag"]})
    assert again.status_code == 304 and again.data == b""
    client.post("/api/v1/sites/shop/publish", headers=published)
    changed = client.get("/v1/sites/shop/tag.js", headers={"If-None-Match": first.headers["ETag"]})
    assert changed.status_code == 200 and tag_boot(changed.data)["bundle"]["version"] == 2


def test_context_js_carries_this_visitors_geo_and_device(client, published):
    response = client.get("/v1/sites/shop/context.js", headers={"User-Agent": CHROME_ANDROID},
                          environ_base={"REMOTE_ADDR": "81.2.69.142"})
    assert response.status_code == 200
    assert response.content_type.startswith("application/javascript")
    assert response.headers["Cache-Control"] == "private, max-age=300"
    context = _context(response.data)
    assert context["device"] == {"os": "android", "browser": "chrome"}  # the type is the browser's to tell
    assert set(context["geo"]) == {"country", "region", "city", "continent", "timezone"}
    assert b"81.2.69.142" not in response.data
    assert client.get("/v1/sites/nope/context.js").status_code == 404


def test_tag_of_unpublished_site_runs_with_no_bundle(client, shop):
    assert tag_boot(client.get("/v1/sites/shop/tag.js").data)["bundle"] is None


def test_unknown_site_is_404(client):
    assert client.get("/v1/sites/nope/tag.js").status_code == 404
    assert client.get("/v1/sites/nope/context.js").status_code == 404
    assert client.get("/v1/sites/NOT..valid/bundle.json").status_code == 404


def test_bundle_json_etag_304_and_cors(client, published):
    response = client.get("/v1/sites/shop/bundle.json")
    assert response.status_code == 200
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    assert "public" in response.headers["Cache-Control"]
    body = response.get_json()
    assert body["bundle"]["version"] == 1 and body["signature"]
    etag = response.headers["ETag"]
    assert client.get("/v1/sites/shop/bundle.json", headers={"If-None-Match": etag}).status_code == 304
    client.post("/api/v1/sites/shop/publish", headers=published)
    changed = client.get("/v1/sites/shop/bundle.json", headers={"If-None-Match": etag})
    assert changed.status_code == 200 and changed.get_json()["bundle"]["version"] == 2


def test_context_is_never_cached_and_holds_no_ip(client):
    response = client.get("/v1/context", headers={"User-Agent": CHROME_ANDROID},
                          environ_base={"REMOTE_ADDR": "81.2.69.142"})
    assert response.headers["Cache-Control"] == "no-store"
    assert b"81.2.69.142" not in response.data
    assert response.get_json()["device"]["type"] == "mobile"


def test_sdk_alone_is_long_cached_when_versioned(client):
    plain = client.get("/sdk/vitrina.min.js")
    assert plain.status_code == 200 and plain.data == REPO_SDK.read_bytes()
    digest = plain.headers["ETag"].strip('"')
    versioned = client.get(f"/sdk/vitrina.min.js?v={digest}")
    assert "immutable" in versioned.headers["Cache-Control"]


def test_healthz(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok", "store": "SQLiteStore", "store_ok": True, "spooled": 0, "dead_letter": 0}


def test_tag_without_a_build_is_503_with_the_fix(tmp_path):
    from server import create_app
    from tests.conftest import make_site
    (tmp_path / "dist").mkdir()
    sdk = tmp_path / "dist" / "vitrina.min.js"
    sdk.write_bytes(REPO_SDK.read_bytes())  # the SDK file, but no manifest.json beside it
    app = create_app(env={"VITRINA_DATABASE": str(tmp_path / "v.sqlite3"), "VITRINA_SECRET_KEY": "k" * 32,
                          "VITRINA_SDK_PATH": str(sdk)})
    make_site(app, "shop")
    response = app.test_client().get("/v1/sites/shop/tag.js")
    assert response.status_code == 503
    assert response.get_json()["error"] == "sdk_not_built" and "npm run build" in response.get_json()["message"]
    # A manifest naming a module file that is not there is no build either.
    (tmp_path / "dist" / "manifest.json").write_text(json.dumps({**MANIFEST, "modules": {"triggers": "gone.js"}}))
    (tmp_path / "dist" / "core.min.js").write_bytes(CORE_FILE)
    for name, path in MANIFEST["lazy"].items():
        (tmp_path / "dist" / path).parent.mkdir(exist_ok=True)
        (tmp_path / "dist" / path).write_bytes((DIST / path).read_bytes())
    assert app.test_client().get("/v1/sites/shop/tag.js").status_code == 503
    (tmp_path / "dist" / "gone.js").write_bytes(TRIGGERS)
    assert app.test_client().get("/v1/sites/shop/tag.js").data.startswith(CORE + b"\n;vitrina.init(")


def test_modules_a_bundle_needs():
    from server.delivery.modules import condition_paths, modules_for

    def measured(*names):
        """What a bundle with a campaign gets: `names` and the slices module, with attribution."""
        return sorted({*names, "attribution", "slices"})

    campaign = {"key": "c", "trigger": None, "pages": None, "segment": None, "conditions": None,
                "variations": [{"key": "on", "weight": 1, "actions": [{"selector": "h1", "text": "Hi"}]}]}
    assert modules_for(None) == [] and modules_for({"campaigns": []}) == []
    # slices: every published campaign has results to break down (and QA traffic to keep out of
    # them); its acquisition is the attribution module's medium, so that module comes too
    assert modules_for({"campaigns": [campaign]}) == ["attribution", "slices"]
    assert modules_for({"campaigns": [{**campaign, "trigger": {"scroll": 50}}]}) == measured("triggers")
    # The behaviour the module watches, read by a condition, a segment or a page-view goal.
    assert modules_for({"campaigns": [{**campaign, "conditions": {"$or": [{"page.scroll": {"$gte": 50}}]}}]}) == measured("triggers")
    assert modules_for({"campaigns": [{**campaign, "segment": "s"}], "segments": {"s": {"page.idle": {"$gt": 9}}}}) == measured("triggers")
    recommend = {"selector": "#r", "recommend": {"strategy": "bestsellers", "items": "page"}}
    with_action = {**campaign, "variations": [{"key": "v", "actions": [recommend]}]}
    assert modules_for({"campaigns": [with_action]}) == measured("commerce", "recommend")
    placeholder = {**campaign, "variations": [{"key": "v", "actions": [{"selector": "h1", "text": "Hi {{geo.city|there}}"}]}]}
    assert modules_for({"campaigns": [placeholder]}) == measured("context", "recommend")  # the context, for geo.city
    in_cart = {**campaign, "variations": [{"key": "v", "actions": [{"selector": "h1", "html": "<b>{{cart.value}}</b>"}]}]}
    assert modules_for({"campaigns": [in_cart]}) == measured("commerce", "recommend")
    assert modules_for({"campaigns": [{**campaign, "conditions": {"cart.value": {"$gt": 50}}}]}) == measured("commerce")
    assert modules_for({"campaigns": [campaign], "settings": {"ecommerce": True}}) == measured("commerce")
    reorder = {**campaign, "variations": [{"key": "v", "actions": [{"selector": "nav ul", "reorder": {"by": "history.categories"}}]}]}
    assert modules_for({"campaigns": [reorder]}) == measured("recommend")
    plain = {**campaign, "variations": [{"key": "v", "actions": [{"selector": "h1", "text": "{not one}"}]}]}
    assert modules_for({"campaigns": [plain]}) == measured()
    assert modules_for({"campaigns": [], "goals": {"g": {"pageview": {"$not": {"page.exit_intent": True}}}}}) == ["goals", "triggers"]
    assert modules_for({"campaigns": [{**campaign, "conditions": {"page.path": "/", "page.scroller": 1}}]}) == measured()
    assert modules_for({"campaigns": [], "segments": {"unused": {"page.scroll": 1}}}) == []
    assert condition_paths({"a": 1, "$and": [{"b": 1}, {"$nor": [{"c": {"$elemMatch": {"d": 1}}}]}], "$not": {"e": 1}}) \
        == ["a", "b", "c", "e"]
    # attribution: the page view's source and medium, or the whole referrer.
    for path in ("referrer.source", "referrer.medium", "referrer"):
        assert modules_for({"campaigns": [{**campaign, "conditions": {path: "x"}}]}) == measured("attribution"), path
    assert modules_for({"campaigns": [{**campaign, "pages": {"referrer.host": "x", "utm.source": "y"}}]}) == measured()
    assert modules_for({"campaigns": [], "goals": {"g": {"pageview": {"referrer.medium": "email"}}}}) == \
        ["attribution", "goals"]
    assert modules_for({"campaigns": [], "goals": {"g": {"pageview": {"utm.medium": "email"}}}}) == ["goals"]
    # context: a server-resolved attribute, or an object holding one (crm.* is identity's).
    for path in ("geo.country", "geo", "device.os", "device.browser", "device"):
        assert modules_for({"campaigns": [{**campaign, "pages": {path: "x"}}]}) == measured("context"), path
    assert modules_for({"campaigns": [{**campaign, "conditions": {"device.type": "mobile", "device.screen.width": 9}}]}) == measured()
    # goals: a click or page-view goal; an event goal is the core's.
    assert modules_for({"campaigns": [], "goals": {"g": {"click": "a.buy"}}}) == ["goals"]
    assert modules_for({"campaigns": [], "goals": {"g": {"pageview": {"page.path": "/thanks"}}}}) == ["goals"]
    assert modules_for({"campaigns": [], "goals": {"g": {"event": "purchase"}}}) == []
    # operators: the rarer ones, at any depth of any condition a decision or a goal evaluates.
    for condition in ({"app.version": {"$vgte": "1.2"}}, {"$or": [{"tags": {"$all": ["a"]}}]},
                      {"list": {"$size": 2}}, {"x": {"$type": "string"}},
                      {"items": {"$elemMatch": {"price": {"$not": {"$vlt": "2"}}}}}):
        assert modules_for({"campaigns": [{**campaign, "conditions": condition}]}) == measured("operators"), condition
    assert modules_for({"campaigns": [], "goals": {"g": {"pageview": {"x": {"$size": 1}}}}}) == ["goals", "operators"]
    assert modules_for({"campaigns": [{**campaign, "conditions": {"x": {"$in": ["$size"]}, "y": {"$regex": "a"}}}]}) == measured()
    # inserts: HTML before, after or into an element.
    for name in ("insertBefore", "insertAfter", "append"):
        inserting = {**campaign, "variations": [{"key": "b", "weight": 1, "actions": [{"selector": "h1", name: "<p>x</p>"}]}]}
        assert modules_for({"campaigns": [inserting]}) == measured("inserts"), name
    # redirect: a variation with a redirect action.
    redirecting = {**campaign, "variations": [{"key": "b", "weight": 1, "actions": [{"redirect": "/b"}]}]}
    assert modules_for({"campaigns": [redirecting]}) == measured("redirect")
    # styles: a style or hide action.
    for action in ({"style": "color: red"}, {"style": {"fontSize": "2em"}}, {"hide": True}):
        styling = {**campaign, "variations": [{"key": "b", "weight": 1, "actions": [{"selector": "h1", **action}]}]}
        assert modules_for({"campaigns": [styling]}) == measured("styles"), action
    hiding_nothing = {**campaign, "variations": [{"key": "b", "weight": 1, "actions": [{"selector": "h1", "hide": False,
                                                                                          "css": "h1{color:red}"}]}]}
    assert modules_for({"campaigns": [hiding_nothing]}) == measured()
    # identity: a crm.* condition (the compiler's `crm` list) or a customer-bucketed campaign; the
    # context module comes with it (which campaigns wait for the customer is its check).
    assert modules_for({"campaigns": [campaign], "crm": ["tier"]}) == measured("context", "identity")
    assert modules_for({"campaigns": [{**campaign, "bucket_by": "customer", "trigger": {"idle": 5}}], "crm": []}) == \
        measured("context", "identity", "triggers")
    assert modules_for({"campaigns": [{**campaign, "bucket_by": "visitor"}], "crm": []}) == measured()


def test_what_the_tag_watches_after_init():
    from server.delivery.modules import reads_for
    campaign = {"key": "c", "pages": None, "segment": None, "conditions": None}
    assert reads_for(None) == [] and reads_for({"campaigns": [campaign]}) == []
    for path in ("history.products", "history.categories.0", "history"):
        assert reads_for({"campaigns": [{**campaign, "conditions": {path: "x"}}]}) == ["document", "products"], path
    for path in ("page.title", "page.type", "page.lang", "page"):
        assert reads_for({"campaigns": [{**campaign, "pages": {path: "x"}}]}) == ["document"], path
    for path in ("page.path", "history.pages", "history.events.buy", "page.title.x"):
        assert reads_for({"campaigns": [{**campaign, "conditions": {path: "x"}}]}) == [], path
