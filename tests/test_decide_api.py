"""POST /api/v1/sites/<site>/decide: the Python evaluator on the published bundle."""
import pytest

from server.decisions.bucketing import hash as bucket_hash
from tests.conftest import make_site

URL = "/api/v1/sites/shop/decide"
HOME_FROM_NEWSLETTER = {"page": {"path": "/"}, "utm": {"source": "NewsLetter"}}


def not_in_holdout(n=1, holdout=0.05):
    ids = (f"visitor-{i:05d}" for i in range(10_000))
    return [v for v in ids if bucket_hash("holdout:shop", v) >= holdout][:n]


def test_newsletter_visitor_gets_the_promo_with_reasons(client, published):
    (visitor,) = not_in_holdout()
    body = client.post(URL, json={"visitor_id": visitor, "attributes": HOME_FROM_NEWSLETTER}, headers=published).get_json()
    assert body["version"] == 1 and body["holdout"] is False
    assert body["variations"] == {"hero-newsletter": "promo"}
    assert body["reasons"]["hero-newsletter"].startswith("segment newsletter matched; bucket 0.")
    assert body["reasons"]["cta-wording"] == "page not matched"


def test_other_visitor_is_not_targeted(client, published):
    (visitor,) = not_in_holdout()
    body = client.post(URL, json={"visitor_id": visitor, "attributes": {"page": {"path": "/"}}},
                       headers=published).get_json()
    assert body["variations"] == {}
    assert body["reasons"]["hero-newsletter"] == "segment newsletter not matched"


def test_experiment_split_and_determinism(client, published):
    seen = {}
    for visitor in not_in_holdout(200):
        payload = {"visitor_id": visitor, "attributes": {"page": {"path": "/product.html"}}}
        first = client.post(URL, json=payload, headers=published).get_json()
        assert client.post(URL, json=payload, headers=published).get_json() == first
        arm = first["variations"]["cta-wording"]
        seen[arm] = seen.get(arm, 0) + 1
    assert set(seen) == {"control", "urgent"} and min(seen.values()) > 60


def test_holdout_visitor_gets_nothing_applied(client, published):
    visitor = next(f"visitor-{i:05d}" for i in range(10_000) if bucket_hash("holdout:shop", f"visitor-{i:05d}") < 0.05)
    body = client.post(URL, json={"visitor_id": visitor, "attributes": HOME_FROM_NEWSLETTER}, headers=published).get_json()
    assert body["holdout"] is True and body["variations"] == {}
    assert body["holdout_campaigns"] == ["hero-newsletter"]
    assert body["reasons"]["hero-newsletter"].startswith("holdout; ")


def test_force_for_qa(client, published):
    (visitor,) = not_in_holdout()
    body = client.post(URL, json={"visitor_id": visitor, "attributes": {"page": {"path": "/product.html"}},
                                  "force": {"cta-wording": "urgent"}}, headers=published).get_json()
    assert body["variations"]["cta-wording"] == "urgent"
    assert body["reasons"]["cta-wording"] == "forced urgent"


@pytest.mark.parametrize("body, path", [
    ({"attributes": {}}, "/visitor_id"),
    ({"visitor_id": "a b", "attributes": {}}, "/visitor_id"),
    ({"visitor_id": "v1", "attributes": []}, "/attributes"),
    ({"visitor_id": "v1", "now": "today"}, "/now"),
    ({"visitor_id": "v1", "now": 2.676513026904378e16}, "/now"),  # year 850123: no calendar has it
    ({"visitor_id": "v1", "now": -1e15}, "/now"),
    ({"visitor_id": "v1", "force": {"x": 1}}, "/force/x"),  # the value that is wrong
    ({"visitor_id": "v1", "triggered": "x"}, "/triggered"),
    ({"visitor_id": "v1", "zone": "Europe/Paris"}, ""),
    ([], ""),
])
def test_bad_requests_are_400(client, published, body, path):
    response = client.post(URL, json=body, headers=published)
    assert response.status_code == 400
    assert any(d["path"] == path for d in response.get_json()["details"])


def test_not_published_is_409_and_keys_are_scoped(app, client, shop):
    assert client.post(URL, json={"visitor_id": "v1"}, headers=shop).status_code == 409
    other = make_site(app, "other")
    assert client.post(URL, json={"visitor_id": "v1"}, headers=other).status_code == 403
    assert client.post(URL, json={"visitor_id": "v1"}).status_code == 401


def test_oversized_body_is_413(client, published):
    response = client.post(URL, data='{"visitor_id":"v1","attributes":{"x":"' + "a" * 70000 + '"}}',
                           headers={**published, "Content-Type": "application/json"})
    assert response.status_code == 413
