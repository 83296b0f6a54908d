"""The workspace's guarantees, through the Flask test client: sessions and one-time links, CSRF,
roles, concurrent edits (ETag, If-Match: workspace and JSON API), preview tokens, the CSV, daily
counters in the site's time zone. The whole journey in Chromium is e2e/test_workspace.py."""
import csv
import io
import json
import re
import time
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from itsdangerous import URLSafeTimedSerializer

from server.accounts.users import LINK_SALT, ensure_user, link_path
from server.store import get_store
from tests.test_collect import ev, post, promo_visitors


def _token(page):
    return re.search(r'name="csrf_token" value="([^"]+)"', page.get_data(as_text=True)).group(1)


def _etag(page):
    return re.search(r'name="etag" value="([^"]+)"', page.get_data(as_text=True)).group(1).replace("&#34;", '"')


def member(app, email, role, site="shop"):
    with app.app_context():
        ensure_user(email)
        get_store().set_role(site, email, role)
        return link_path(email)


def signed_in(app, email, role, site="shop"):
    """A test client signed in as a new user with this role."""
    client = app.test_client()
    link = member(app, email, role, site)
    page = client.get(link)
    answer = client.post(link, data={"csrf_token": _token(page), "password": "a long password", "confirm": "a long password"})
    assert answer.status_code == 302
    return client


def test_a_link_sets_the_password_once_and_signs_in(app, published):
    client = app.test_client()
    link = member(app, "ann@shop.example", "owner")
    page = client.get(link)
    assert page.status_code == 200 and "ann@shop.example" in page.get_data(as_text=True)
    short = client.post(link, data={"csrf_token": _token(page), "password": "short", "confirm": "short"})
    assert short.status_code == 400 and "at least 10 characters" in short.get_data(as_text=True)
    done = client.post(link, data={"csrf_token": _token(page), "password": "a long password", "confirm": "a long password"})
    cookie = done.headers["Set-Cookie"]
    assert done.status_code == 302 and "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Path=/app" in cookie
    assert "Secure" not in cookie  # plain http here; https requests get Secure
    assert client.get("/app/s/shop/campaigns").status_code == 200
    assert app.test_client().get(link).status_code == 410  # spent


def test_over_https_the_cookie_is_secure(app, published):
    client = app.test_client()
    link = member(app, "ann@shop.example", "owner")
    page = client.get(link, base_url="https://vitrina.test")
    done = client.post(link, base_url="https://vitrina.test",
                       data={"csrf_token": _token(page), "password": "a long password", "confirm": "a long password"})
    assert "Secure" in done.headers["Set-Cookie"]


@pytest.mark.parametrize("tamper", ["forged", "expired", "other-stamp"])
def test_a_forged_expired_or_spent_link_is_refused(app, published, tamper):
    member(app, "ann@shop.example", "owner")
    keys = app.config["VITRINA_SECRET_KEYS"]
    signer = URLSafeTimedSerializer(list(reversed(keys)), salt=LINK_SALT)
    if tamper == "forged":
        token = URLSafeTimedSerializer("not our key-0123456789", salt=LINK_SALT).dumps({"email": "ann@shop.example"})
    elif tamper == "other-stamp":
        token = signer.dumps({"email": "ann@shop.example", "stamp": "0" * 16})
    else:
        with app.app_context():
            token = link_path("ann@shop.example").rsplit("/", 1)[1]
        import server.accounts.users as users
        original = users.LINK_MAX_AGE_S
        users.LINK_MAX_AGE_S = -1
        try:
            assert app.test_client().get(f"/app/set-password/{token}").status_code == 410
        finally:
            users.LINK_MAX_AGE_S = original
        return
    assert app.test_client().get(f"/app/set-password/{token}").status_code == 410


def test_sign_in_checks_the_password_and_is_rate_limited(app, published):
    signed_in(app, "ann@shop.example", "owner")
    client = app.test_client()
    page = client.get("/app/sign-in")
    bad = client.post("/app/sign-in", data={"csrf_token": _token(page), "email": "ANN@shop.example", "password": "nope nope nope"})
    assert bad.status_code == 401 and "do not match" in bad.get_data(as_text=True)
    good = client.post("/app/sign-in?next=//evil.example/x", data={"csrf_token": _token(page), "email": " ANN@shop.example ",
                                                                  "password": "a long password"})
    assert good.status_code == 302 and good.headers["Location"] == "/app/"  # never another host
    page = client.get("/app/sign-in")  # signing in made a new session, with a new token
    for _ in range(9):
        client.post("/app/sign-in", data={"csrf_token": _token(page), "email": "ann@shop.example", "password": "x" * 12})
    limited = client.post("/app/sign-in", data={"csrf_token": _token(page), "email": "ann@shop.example",
                                                "password": "a long password"})
    assert limited.status_code == 429


def test_signing_out_everywhere_voids_every_session(app, published):
    first = signed_in(app, "ann@shop.example", "owner")
    second = app.test_client()
    page = second.get("/app/sign-in")
    second.post("/app/sign-in", data={"csrf_token": _token(page), "email": "ann@shop.example", "password": "a long password"})
    assert second.get("/app/s/shop/campaigns").status_code == 200
    out = first.post("/app/sign-out-everywhere", data={"csrf_token": _token(first.get("/app/s/shop/campaigns"))})
    assert out.status_code == 302
    assert second.get("/app/s/shop/campaigns").status_code == 302  # back to sign-in


def test_every_change_needs_the_csrf_token(app, published):
    client = signed_in(app, "ann@shop.example", "owner")
    page = client.get("/app/s/shop/settings")
    for token in (None, "forged", _token(app.test_client().get("/app/sign-in"))):  # another session's token
        data = {"etag": _etag(page), "holdout": "0.3"} | ({"csrf_token": token} if token else {})
        assert client.post("/app/s/shop/settings", data=data).status_code == 400
    with app.app_context():
        assert json.loads(get_store().get_draft("shop"))["settings"]["holdout"] == 0.05
    assert client.post("/app/s/shop/settings", data={"etag": _etag(page), "holdout": "0.3", "csrf_token": _token(page)},
                       headers={"X-CSRFToken": "forged"}).status_code == 302  # the form's token is valid


def test_roles_decide_what_each_user_may_do(app, published):
    viewer = signed_in(app, "vic@shop.example", "viewer")
    page = viewer.get("/app/s/shop/campaigns/hero-newsletter")
    assert page.status_code == 200 and ">Save<" not in page.get_data(as_text=True)
    token, etag = _token(page), _etag(page)
    assert viewer.post("/app/s/shop/campaigns/hero-newsletter", data={"csrf_token": token, "etag": etag,
                                                                     "key": "x", "op": "save"}).status_code == 403
    assert viewer.post("/app/s/shop/publish", data={"csrf_token": token}).status_code == 403
    assert viewer.post("/app/s/shop/rollback", data={"csrf_token": token, "version": "1"}).status_code == 403
    assert viewer.get("/app/s/shop/users").status_code == 403 and viewer.get("/app/s/shop/keys").status_code == 403
    assert viewer.get("/app/s/other/campaigns").status_code == 404  # no role there, whether it exists or not
    editor = signed_in(app, "eve@shop.example", "editor")
    assert editor.get("/app/s/shop/keys").status_code == 403
    assert editor.post("/app/s/shop/publish", data={"csrf_token": _token(editor.get("/app/s/shop/publish"))}).status_code == 302
    assert app.test_client().get("/app/s/shop/campaigns").status_code == 302  # signed out: to sign-in


def test_an_owner_cannot_take_over_an_account_that_works_on_other_sites(app, published):
    from tests.conftest import make_site
    make_site(app, "books")
    owner = signed_in(app, "ann@shop.example", "owner")
    member(app, "bob@shop.example", "editor")
    member(app, "bob@shop.example", "owner", site="books")
    page = owner.get("/app/s/shop/users")
    answer = owner.post("/app/s/shop/users", data={"csrf_token": _token(page), "email": "bob@shop.example", "op": "reset"})
    assert "/app/set-password/" not in answer.get_data(as_text=True) and "sites you do not own" in answer.get_data(as_text=True)
    member(app, "cat@shop.example", "viewer")
    answer = owner.post("/app/s/shop/users", data={"csrf_token": _token(page), "email": "cat@shop.example", "op": "reset"})
    assert "/app/set-password/" in answer.get_data(as_text=True)


def test_a_stale_save_is_412_in_the_workspace_and_the_api(app, client, published):
    owner = signed_in(app, "ann@shop.example", "owner")
    page = owner.get("/app/s/shop/settings")
    etag = _etag(page)
    api = client.get("/api/v1/sites/shop/config", headers=published)
    assert api.headers["ETag"] == etag
    changed = client.put("/api/v1/sites/shop/config", json={**api.get_json(), "settings": {"holdout": 0.1}},
                         headers={**published, "If-Match": etag})
    assert changed.status_code == 200 and changed.headers["ETag"] != etag
    stale = owner.post("/app/s/shop/settings", data={"csrf_token": _token(page), "etag": etag, "holdout": "0.3"})
    assert stale.status_code == 412 and "Someone saved" in stale.get_data(as_text=True)
    again = client.put("/api/v1/sites/shop/config", json=api.get_json(), headers={**published, "If-Match": etag})
    assert again.status_code == 412 and again.get_json()["error"] == "stale_config"
    assert client.get("/api/v1/sites/shop/config", headers=published).get_json()["settings"] == {"holdout": 0.1}
    star = client.put("/api/v1/sites/shop/config", json=api.get_json(), headers={**published, "If-Match": "*"})
    assert star.status_code == 200
    with app.app_context():
        entries = [json.loads(e) for e in get_store().audit_log("shop")]
    assert [e["who"] for e in entries if e["action"] == "config.save"][:2] == ["key:default", "key:default"]


def test_problems_appear_beside_their_fields_all_at_once(app, published):
    owner = signed_in(app, "ann@shop.example", "owner")
    page = owner.get("/app/s/shop/campaigns/cta-wording")
    form = {"csrf_token": _token(page), "etag": _etag(page), "key": "cta-wording", "type": "experiment",
            "status": "live", "priority": "high", "v0_key": "control", "v0_weight": "0.5", "v1_key": "urgent",
            "v1_weight": "0.6", "v1_a0_kind": "text", "v1_a0_selector": "script", "v1_a0_value": "x", "op": "save"}
    answer = owner.post("/app/s/shop/campaigns/cta-wording", data=form)
    text = answer.get_data(as_text=True)
    assert answer.status_code == 400 and "3 problems" in text
    for path, message in (("/campaigns/1/priority", "is not of type"),
                          ("/campaigns/1/variations", "weights must sum to 1"),
                          ("/campaigns/1/variations/1/actions/0/selector", "never target &lt;script&gt;")):
        block = text[text.index(f'data-path="{path}"'):]
        assert message in block[:1500], path


def test_preview_tokens_show_what_they_were_made_for_or_nothing(app, client, published):
    owner = signed_in(app, "ann@shop.example", "owner")
    page = owner.get("/app/s/shop/preview?page=https://shop.example/p?x=1").get_data(as_text=True)
    tokens = re.findall(r'vitrina_preview=([^&"]+)', page)
    assert tokens and "x=1" in page and "vitrina_debug=1" in page and 'role="img"' in page
    answer = client.get(f"/v1/sites/shop/preview.json?token={tokens[0]}")
    assert answer.status_code == 200 and answer.headers["Cache-Control"] == "no-store"
    assert answer.get_json()["bundle"]["preview"] is True and answer.get_json()["source"] == "draft"
    assert client.get(f"/v1/sites/other/preview.json?token={tokens[0]}").status_code == 404
    assert client.get("/v1/sites/shop/preview.json?token=forged").status_code == 403
    client.put("/api/v1/sites/shop/config", json={"settings": {"holdout": 0}}, headers=published)
    stale = client.get(f"/v1/sites/shop/preview.json?token={tokens[0]}")
    assert stale.status_code == 410 and stale.get_json()["error"] == "preview_stale"
    live = [t for t in tokens if client.get(f"/v1/sites/shop/preview.json?token={t}").status_code == 200]
    assert live  # the links of the live version still work


def test_the_csv_holds_the_numbers_of_the_results_api(app, client, published):
    visitors = promo_visitors(client, 3)
    for n, visitor in enumerate(visitors):
        events = [ev("exposure")] + ([ev("conversion", value=12.5 * (n + 1))] if n else [])
        assert post(client, visitor, events).status_code == 204
    owner = signed_in(app, "ann@shop.example", "viewer")
    answer = owner.get("/app/s/shop/results/hero-newsletter.csv")
    assert answer.status_code == 200 and answer.mimetype == "text/csv"
    rows = list(csv.DictReader(io.StringIO(answer.get_data(as_text=True))))
    api = client.get("/api/v1/sites/shop/results", headers=published).get_json()
    campaign = next(c for c in api["campaigns"] if c["key"] == "hero-newsletter")
    promo = next(v for v in campaign["variations"] if v["key"] == "promo")
    row = next(r for r in rows if r["variation"] == "promo" and r["goal"] == "purchase")
    assert (int(row["visitors"]), int(row["conversions"]), float(row["rate"]), float(row["revenue"])) == (
        promo["visitors"], promo["goals"]["purchase"]["conversions"], promo["goals"]["purchase"]["rate"],
        promo["goals"]["purchase"]["revenue"]) == (3, 2, round(2 / 3, 6), 62.5)
    assert {r["goal"] for r in rows} == {"add_to_cart", "purchase", "thanks_page"}
    page = owner.get("/app/s/shop/results/hero-newsletter").get_data(as_text=True)
    assert 'role="img"' in page and 'aria-label="Conversion rate of add_to_cart' in page


@pytest.mark.parametrize("zone", ["Pacific/Kiritimati", "Pacific/Pago_Pago", None])
def test_daily_counters_count_in_the_site_time_zone(client, shop, demo_config, zone, app):
    if zone:
        demo_config["settings"]["timezone"] = zone
    client.put("/api/v1/sites/shop/config", json=demo_config, headers=shop)
    client.post("/api/v1/sites/shop/publish", headers=shop)
    now_ms = int(time.time() * 1000)
    visitor = promo_visitors(client, 1)[0]
    old = now_ms - 60 * 3_600_000  # 60 h: accepted (3 days at most), but the tag never sends one past 2 days:
    # a clock that is off, counted today
    assert post(client, visitor, [ev("exposure", ts=old), ev("conversion", ts=now_ms + 3_600_000)]).status_code == 204
    today = datetime.now(ZoneInfo(zone or "UTC")).date().isoformat()
    with app.app_context():
        rows = get_store().daily_counters("shop", "hero-newsletter")
    assert {(r["day"], r["variation"], r["goal"], r["visitors"], r["conversions"]) for r in rows} == {
        (today, "promo", None, 1, 0), (today, "promo", "purchase", 0, 1)}


def test_an_unknown_time_zone_is_refused_with_its_path(client, shop):
    answer = client.put("/api/v1/sites/shop/config", json={"settings": {"timezone": "Europe/Atlantis"}}, headers=shop)
    assert answer.status_code == 400 and answer.get_json()["details"][0]["path"] == "/settings/timezone"


def test_the_campaign_form_keeps_customer_bucketing(app, client, published):
    owner = signed_in(app, "bea@shop.example", "owner")
    page = owner.get("/app/s/shop/campaigns/cta-wording")
    assert 'name="bucket_by"' in page.get_data(as_text=True)
    form = {"csrf_token": _token(page), "etag": _etag(page), "key": "cta-wording", "type": "experiment",
            "status": "live", "bucket_by": "customer", "v0_key": "control", "v0_weight": "0.5", "v1_key": "urgent",
            "v1_weight": "0.5", "op": "save"}
    assert owner.post("/app/s/shop/campaigns/cta-wording", data=form).status_code in (200, 302, 303)
    saved = client.get("/api/v1/sites/shop/config", headers=published).get_json()
    assert next(c for c in saved["campaigns"] if c["key"] == "cta-wording")["bucket_by"] == "customer"
    form = {**form, "csrf_token": _token(owner.get("/app/s/shop/campaigns/cta-wording")),
            "etag": _etag(owner.get("/app/s/shop/campaigns/cta-wording")), "bucket_by": "visitor"}
    owner.post("/app/s/shop/campaigns/cta-wording", data=form)
    saved = client.get("/api/v1/sites/shop/config", headers=published).get_json()
    assert "bucket_by" not in next(c for c in saved["campaigns"] if c["key"] == "cta-wording")


def test_the_settings_form_keeps_referral_exclusions_and_places_their_errors(app, published):
    owner = signed_in(app, "rex@shop.example", "owner")
    page = owner.get("/app/s/shop/settings")
    bad = owner.post("/app/s/shop/settings", data={"csrf_token": _token(page), "etag": _etag(page),
                                                    "referral_exclusions": "paypal.com\nhttps://x.example/"})
    assert bad.status_code == 400 and "A host name" in bad.get_data(as_text=True)
    good = owner.post("/app/s/shop/settings", data={"csrf_token": _token(page), "etag": _etag(page),
                                                     "referral_exclusions": "paypal.com\ncheckout.stripe.com"})
    assert good.status_code == 302
    with app.app_context():
        saved = json.loads(get_store().get_draft("shop"))["settings"]
    assert saved["referral_exclusions"] == ["paypal.com", "checkout.stripe.com"]
    assert "checkout.stripe.com" in owner.get("/app/s/shop/settings").get_data(as_text=True)


def test_the_models_page_shows_each_goals_report(app, published):
    from server.predict.jobs import train_site
    from server.predict.synthetic import generate
    rows, _ = generate(3000, seed=4)
    with app.app_context():
        store = get_store()
        for row in rows:
            store.record_features("shop", row["visitor"], [{**row, "features": json.dumps(row["features"])}])
        report = train_site(store, "shop", goals=["purchase"])["goals"]["purchase"]
    viewer = signed_in(app, "vic@shop.example", "viewer")
    page = viewer.get("/app/s/shop/models").get_data(as_text=True)
    assert "<code>predict.purchase</code>" in page and f"{report['auc']:.3f} (floor 0.6)" in page
    assert 'aria-label="Reliability curve of predict.purchase' in page and page.count("<circle") == 10
    assert f"<code>{report['top'][0]['feature']}</code>" in page and 'aria-current="page">Models' in page
