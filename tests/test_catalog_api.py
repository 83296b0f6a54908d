"""The catalogue API: product feeds in every body format (PUT replaces, PATCH upserts and
deletes), refusals with their line and JSON path, limits, reading back; the order history."""
import json

import pytest
from conftest import make_site

from server import create_app
from server.catalog.importer import MAX_LISTED_ERRORS

JSONL = "application/x-ndjson"
URL = "/api/v1/sites/shop/catalog"


def product(pid, **fields):
    return {"id": pid, "title": f"Product {pid}", "link": f"https://shop.example/p/{pid}",
            "image_link": f"https://shop.example/i/{pid}.png", "price": "12.00 EUR", "availability": "in_stock",
            **fields}


def jsonl(*records):
    return "\n".join(r if isinstance(r, str) else json.dumps(r) for r in records) + "\n"


def send(client, headers, body, content_type=JSONL, method="PUT", url=URL):
    return client.open(url, method=method, data=body, headers={**headers, "Content-Type": content_type})


def ids(client, headers):
    return [p["id"] for p in client.get(URL + "?limit=1000", headers=headers).get_json()["products"]]


def test_put_json_lines_stores_normalised_products(client, shop):
    record = product("mug-1", price="12.5 eur", sale_price="9.99", availability="In Stock",
                     product_type="Home>Kitchen >  Mugs", brand=" Acme ", custom_label_0="high_margin",
                     google_product_category=2169, description="ignored: not used by recommendations")
    answer = send(client, shop, jsonl(record)).get_json()
    assert answer == {"received": 1, "upserted": 1, "deleted": 0, "errors": []}
    stored = client.get(URL + "/mug-1", headers=shop).get_json()
    assert stored == {"id": "mug-1", "title": "Product mug-1", "link": "https://shop.example/p/mug-1",
                      "image_link": "https://shop.example/i/mug-1.png", "price": 12.5, "sale_price": 9.99,
                      "currency": "EUR", "availability": "in_stock", "brand": "Acme",
                      "product_type": "Home > Kitchen > Mugs", "google_product_category": "2169",
                      "custom_label_0": "high_margin"}


def test_put_json_array_and_numbers_with_a_currency(client, shop):
    body = json.dumps([product("a", price=12, currency="usd"), product(7, price=3.5, currency="USD")], indent=2)
    answer = send(client, shop, body, "application/json; charset=utf-8").get_json()
    assert answer == {"received": 2, "upserted": 2, "deleted": 0, "errors": []}
    assert client.get(URL + "/7", headers=shop).get_json()["price"] == 3.5
    assert client.get(URL + "/a", headers=shop).get_json()["currency"] == "USD"


@pytest.mark.parametrize("content_type, sep", [("text/csv", ","), ("text/tab-separated-values", "\t")])
def test_put_csv_and_tsv_with_a_header_row(client, shop, content_type, sep):
    rows = [["id", "title", "link", "price", "availability", "product_type", "Unused Column"],
            ["a", "Mug", "https://s.example/a", "12.00 EUR", "in stock", "Home > Mugs", "x"],
            ["b", "Big mug", "https://s.example/b", "15.00 EUR", "out of stock", "", ""]]
    body = "\ufeff" + "\r\n".join(sep.join(row) for row in rows) + "\r\n"
    answer = send(client, shop, body.encode(), content_type).get_json()
    assert answer == {"received": 2, "upserted": 2, "deleted": 0, "errors": []}
    b = client.get(URL + "/b", headers=shop).get_json()
    assert b["availability"] == "out_of_stock" and "product_type" not in b


def test_csv_quoted_cells_may_span_lines_and_errors_name_the_starting_line(client, shop):
    body = ('id,title,description,link,price,availability\n'
            'a,"Mug, ""large""","two\nlines",https://s.example/a,2 EUR,in_stock\n'
            'b,Bad,,ftp://s.example/b,2 EUR,in_stock\n'
            'c,Short row\n'
            'd,"Line\nbreak",,https://s.example/d,2 EUR,in_stock\n')
    answer = send(client, shop, body, "text/csv").get_json()
    assert answer["upserted"] == 1
    assert answer["errors"] == [
        {"line": 4, "path": "/link", "message": "must be an absolute http:// or https:// URL"},
        {"line": 5, "path": "", "message": "has 2 cells; the header has 6"},
        {"line": 6, "path": "/title", "message": "must not contain control characters"}]
    assert client.get(URL + "/a", headers=shop).get_json()["title"] == 'Mug, "large"'


def test_good_lines_are_stored_and_each_bad_one_is_listed_with_line_and_path(client, shop):
    body = jsonl(product("ok-1"),
                 product("bad-price", price="12,00 EUR"),
                 "{not json",
                 product("no-currency", price="12.00"),
                 "",
                 product("js-link", link="javascript:alert(1)", image_link='https://x.example/a"onerror=alert(1)'),
                 product("ok-2", sale_price="13.00 EUR"),
                 {k: v for k, v in product("x").items() if k != "id"},
                 product("bad id", availability="maybe", link="https://s.example/x", image_link=None),
                 [1, 2],
                 product("ok-3"))
    answer = send(client, shop, body).get_json()
    assert (answer["received"], answer["upserted"], answer["deleted"]) == (10, 2, 0)
    assert [(e["line"], e["path"]) for e in answer["errors"]] == [
        (2, "/price"), (3, ""), (4, "/price"), (6, "/link"), (6, "/image_link"), (7, "/sale_price"),
        (8, "/id"), (9, "/id"), (9, "/availability"), (10, ""), ]
    assert "not valid JSON" in answer["errors"][1]["message"]
    assert answer["errors"][2]["message"] == 'needs a currency: "12.00 EUR" or a currency field'
    assert answer["errors"][6]["message"] == "is required"
    assert ids(client, shop) == ["ok-1", "ok-3"]


@pytest.mark.parametrize("field, value, message", [
    ("title", "x" * 151, "must be at most 150 characters"),
    ("title", "a\u0000b", "must not contain control characters"),
    ("title", 5, "must be a string"),
    ("link", "https://shop.example/a b", "must not contain spaces, quotes"),
    ("link", "//shop.example/a", "must be an absolute http:// or https:// URL"),
    ("link", "data:text/html,<script>", "must not contain spaces, quotes"),
    ("image_link", "https://" + "a" * 2000, "must be at most 2000 characters"),
    ("price", "-1 EUR", 'must look like "12.00 EUR"'),
    ("price", True, 'must be a number or a string'),
    ("price", 1e300, "must be at least 0 and below"),
    ("sale_price", "2.00 USD", "is in USD, the product's currency is EUR"),
    ("currency", "EURO", "must be an ISO 4217 code"),
    ("availability", None, "is required"),
    ("brand", "b" * 71, "must be at most 70 characters"),
    ("custom_label_4", ["x"], "must be a string"),
    ("_delete", True, "deleting is for PATCH"),
])
def test_each_field_is_checked(client, shop, field, value, message):
    record = product("p1", **{field: value})
    if field == "currency":
        record["price"] = "12.00"
    answer = send(client, shop, jsonl(record)).get_json()
    assert answer["upserted"] == 0
    assert answer["errors"][0]["path"] == f"/{field}" and answer["errors"][0]["message"].startswith(message), answer


def test_put_replaces_the_whole_catalogue(client, shop):
    send(client, shop, jsonl(*(product(f"old-{i}") for i in range(5)), product("kept")))
    answer = send(client, shop, jsonl(product("kept", title="Kept, renamed"), product("new"))).get_json()
    assert (answer["upserted"], answer["deleted"]) == (2, 5)
    assert ids(client, shop) == ["kept", "new"]
    assert client.get(URL + "/kept", headers=shop).get_json()["title"] == "Kept, renamed"


def test_a_put_whose_every_line_is_refused_replaces_nothing_but_an_empty_one_empties(client, shop):
    send(client, shop, jsonl(product("a"), product("b")))
    answer = send(client, shop, "id,title\n1,x\n", "text/csv").get_json()  # a wrong file, say
    assert (answer["received"], answer["upserted"], answer["deleted"]) == (1, 0, 0)
    assert ids(client, shop) == ["a", "b"]
    assert send(client, shop, "[]", "application/json").get_json()["deleted"] == 2
    assert ids(client, shop) == []


def test_patch_upserts_and_deletes_in_order(client, shop):
    send(client, shop, jsonl(product("a"), product("b"), product("c")))
    body = jsonl(product("b", title="B2"), {"id": "c", "_delete": True}, {"id": "zz", "_delete": True},
                 product("d"), {"id": "d", "_delete": True}, product("e"), {"id": "bad id", "_delete": True})
    answer = send(client, shop, body, method="PATCH").get_json()
    assert (answer["received"], answer["upserted"], answer["deleted"]) == (7, 3, 2)
    assert answer["errors"] == [{"line": 7, "path": "/id", "message": answer["errors"][0]["message"]}]
    assert ids(client, shop) == ["a", "b", "e"]
    assert client.get(URL + "/b", headers=shop).get_json()["title"] == "B2"


def test_patch_csv_delete_column(client, shop):
    send(client, shop, jsonl(product("a"), product("b")))
    body = "id,_delete,title,link,price,availability\na,true,,,,\nc,,C,https://s.example/c,1 EUR,in_stock\n"
    answer = send(client, shop, body, "text/csv", method="PATCH").get_json()
    assert (answer["upserted"], answer["deleted"], answer["errors"]) == (1, 1, [])
    assert ids(client, shop) == ["b", "c"]


def test_a_broken_json_array_keeps_what_came_before(client, shop):
    body = '[\n' + json.dumps(product("a")) + ',\n' + json.dumps(product("b")) + ',\n{"id": "c",,}\n, {}]'
    answer = send(client, shop, body, "application/json").get_json()
    assert answer["upserted"] == 2
    assert answer["errors"][0]["line"] == 4 and "the rest of the body was not read" in answer["errors"][0]["message"]


def test_bytes_that_are_not_utf8_refuse_their_line_only(client, shop):
    body = jsonl(product("a")).encode() + b'{"id": "b", "title": "\xff"}\n' + jsonl(product("c")).encode()
    answer = send(client, shop, body).get_json()
    assert answer["upserted"] == 2 and answer["errors"] == [{"line": 2, "path": "", "message": "is not UTF-8"}]


def test_at_most_a_thousand_errors_are_listed(client, shop):
    answer = send(client, shop, "{}\n" * (MAX_LISTED_ERRORS + 50)).get_json()
    assert answer["received"] == MAX_LISTED_ERRORS + 50
    assert len(answer["errors"]) == MAX_LISTED_ERRORS


def test_unknown_content_type_is_415(client, shop):
    response = send(client, shop, "<xml/>", "application/xml")
    assert response.status_code == 415 and response.get_json()["error"] == "unsupported_media_type"
    assert send(client, shop, "x", "").status_code == 415


def test_feeds_have_their_own_size_limit(tmp_path):
    env = {"VITRINA_DATABASE": str(tmp_path / "v.sqlite3"), "VITRINA_SECRET_KEY": "test-secret-key-0123456789",
           "VITRINA_FEED_MAX_BYTES": "4096", "VITRINA_CONFIG_MAX_BYTES": "1024"}
    app = create_app(env=env)
    client, headers = app.test_client(), make_site(app, "shop")
    small = jsonl(*(product(f"p{i}") for i in range(10)))  # above the config limit, within the feed limit
    assert 1024 < len(small) <= 4096
    assert send(client, headers, small).get_json()["upserted"] == 10
    big = jsonl(*(product(f"p{i}") for i in range(40)))
    response = send(client, headers, big)
    assert response.status_code == 413 and response.get_json()["error"] == "payload_too_large"
    assert "4096" in response.get_json()["message"]
    response = send(client, headers, big, url="/api/v1/sites/shop/orders", method="POST")
    assert response.status_code == 413
    # other routes keep theirs
    assert client.put("/api/v1/sites/shop/config", data="x" * 2000, headers=headers).status_code == 413


def test_merchant_routes_need_the_sites_key(app, client, shop):
    other = make_site(app, "other")
    assert send(client, {}, jsonl(product("a"))).status_code == 401
    assert send(client, other, jsonl(product("a"))).status_code == 403
    assert client.get(URL, headers=other).status_code == 403
    assert client.post("/api/v1/sites/shop/orders", data="", headers=other).status_code == 403
    assert client.put("/api/v1/sites/shop/merchandising", json={"rules": []}, headers=other).status_code == 403


def test_list_is_paged_in_id_order(client, shop):
    send(client, shop, jsonl(*(product(f"p{i:03d}") for i in range(25))))
    first = client.get(URL + "?limit=10", headers=shop).get_json()
    assert first["total"] == 25 and len(first["products"]) == 10 and first["next"] == "p009"
    second = client.get(URL + f"?limit=10&after={first['next']}", headers=shop).get_json()
    assert second["products"][0]["id"] == "p010"
    last = client.get(URL + "?limit=10&after=p019", headers=shop).get_json()
    assert len(last["products"]) == 5 and last["next"] is None
    bad = client.get(URL + "?limit=5000&after=a%20b", headers=shop)
    assert bad.status_code == 400
    assert [d["path"] for d in bad.get_json()["details"]] == ["/limit", "/after"]


def test_one_product_and_a_missing_one(client, shop):
    send(client, shop, jsonl(product("cat/mug-1")))
    assert client.get(URL + "/cat/mug-1", headers=shop).get_json()["id"] == "cat/mug-1"
    missing = client.get(URL + "/nope", headers=shop)
    assert missing.status_code == 404 and missing.get_json()["error"] == "product_not_found"


# --- orders -------------------------------------------------------------------------------------

def order(oid, *items, who=("customer_id", "c-1"), ts="2026-11-01T10:00:00Z"):
    return {"order_id": oid, "ts": ts, who[0]: who[1], "items": [{"id": i, "quantity": 1, "price": 5} for i in items]}


def test_orders_are_imported_idempotently_on_order_id(app, client, shop):
    body = jsonl(order("1001", "a", "b"), order("1002", "b", who=("visitor_id", "v1.abc")), order("1001", "a"))
    answer = send(client, shop, body, method="POST", url="/api/v1/sites/shop/orders").get_json()
    assert answer == {"received": 3, "imported": 2, "duplicates": 1, "errors": []}
    again = send(client, shop, body, method="POST", url="/api/v1/sites/shop/orders").get_json()
    assert (again["imported"], again["duplicates"]) == (0, 3)
    with app.app_context():
        from server.identity.site_secrets import customer_key
        from server.store import get_store
        rows = sorted(get_store().interactions("shop", 0))
        customer = customer_key("shop", "c-1")  # customer ids are kept hashed with the site's salt
    assert [(who, action, json.loads(items)) for _, who, _, action, items in rows] == [
        (f"c:{customer}", "purchase", ["a", "b"]), ("v:v1.abc", "purchase", ["b"])]
    assert customer.startswith("c1.") and "c-1" not in customer


def test_bad_orders_are_listed_with_line_and_path(client, shop):
    body = jsonl(order("1", "a"),
                 {"order_id": "2", "customer_id": "c", "visitor_id": "v", "items": [{"id": "a"}]},
                 {"order_id": "3", "customer_id": "c", "items": []},
                 {"order_id": "4", "customer_id": "c", "ts": "yesterday", "items": [{"id": "a", "quantity": 0},
                                                                                   {"id": "b c", "price": -1}]},
                 {"order_id": "5", "customer_id": "c", "ts": 4_000_000_000_000, "items": [{"id": "a"}]},
                 order("6", "a", ts=1_763_900_000_000))
    answer = send(client, shop, body, method="POST", url="/api/v1/sites/shop/orders").get_json()
    assert (answer["received"], answer["imported"]) == (6, 2)
    assert [(e["line"], e["path"]) for e in answer["errors"]] == [
        (2, ""), (3, "/items"), (4, "/ts"), (4, "/items/0/quantity"), (4, "/items/1/id"), (4, "/items/1/price"),
        (5, "/ts")]


def test_orders_accept_csv_only_as_json_lines_or_array(client, shop):
    response = send(client, shop, json.dumps([order("1", "a")]), "application/json", method="POST",
                    url="/api/v1/sites/shop/orders")
    assert response.get_json()["imported"] == 1


# --- merchandising ------------------------------------------------------------------------------

def test_merchandising_rules_round_trip_and_are_validated(client, shop):
    url = "/api/v1/sites/shop/merchandising"
    assert client.get(url, headers=shop).get_json() == {"rules": []}
    rules = {"rules": [{"action": "pin", "id": "sku-1", "position": 2, "strategies": ["bought_together"]},
                       {"action": "boost", "match": {"custom_label_0": "high_margin"}, "factor": 1.5},
                       {"action": "bury", "match": {"category": ["Home>Garden", "Toys"]}}]}
    saved = client.put(url, json=rules, headers=shop)
    assert saved.status_code == 200
    assert client.get(url, headers=shop).get_json()["rules"][2]["match"] == {"category": ["Home > Garden", "Toys"]}
    bad = {"rules": [{"action": "pin", "id": "a b", "position": 0},
                     {"action": "boost", "match": {"color": "red"}, "factor": 1},
                     {"action": "bury", "match": {"brand": "x"}, "strategies": ["nope"]},
                     {"action": "hide"}, "x"]}
    response = client.put(url, json=bad, headers=shop)
    assert response.status_code == 400 and response.get_json()["error"] == "invalid_merchandising"
    assert [d["path"] for d in response.get_json()["details"]] == [
        "/rules/0/id", "/rules/0/position", "/rules/1/match", "/rules/1/factor", "/rules/2/strategies",
        "/rules/3/action", "/rules/4"]
    assert client.get(url, headers=shop).get_json()["rules"][0]["id"] == "sku-1"  # unchanged
    assert client.put(url, data="{", headers=shop).status_code == 400
