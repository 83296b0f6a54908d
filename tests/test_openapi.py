"""GET /api/openapi.json describes the whole HTTP API, checked against the running server by
schemathesis: every operation, bodies drawn from their schemas, answers checked for no 5xx, a
documented status and a body that matches its schema. Bounded to a few examples per operation."""
import json
import os
import urllib.request

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import (
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)
from servers import gunicorn_server, vitrina

from server.web.openapi import OPERATIONS, document
from tests.conftest import DEMO_CONFIG

SECRET = "openapi-test-secret-key-0123456789"
SITE = "shop"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    env = {"VITRINA_DATABASE": str(tmp_path_factory.mktemp("openapi") / "v.sqlite3"), "VITRINA_SECRET_KEY": SECRET}
    full = {**os.environ, **env}
    key = vitrina(full, "sites", "create", SITE).stdout.strip().splitlines()[-1]
    assert vitrina(full, "publish", SITE, str(DEMO_CONFIG)).returncode == 0
    with gunicorn_server(env, workers=1) as url:
        yield url, key


@schemathesis.serializer("application/x-ndjson")
def ndjson(ctx, value):
    """Feeds and orders as JSON lines: one drawn value a line."""
    rows = value if isinstance(value, list) else [value]
    return "".join(json.dumps(row) + "\n" for row in rows).encode()


# The very document /api/openapi.json serves (test_the_server_serves_this_document checks it).
schema = schemathesis.openapi.from_dict(document())


@schema.parametrize()
@settings(max_examples=6, deadline=None, suppress_health_check=list(HealthCheck))
def test_every_operation_answers_as_documented(case, server):
    url, key = server
    if "site" in (case.path_parameters or {}):
        case.path_parameters["site"] = SITE  # the site the key opens: past 401/403/404 to the real work
    case.call_and_validate(base_url=url, headers={"Authorization": f"Bearer {key}"},
                           checks=[not_a_server_error, status_code_conformance, response_schema_conformance])


def test_the_server_serves_this_document(server):
    url, _ = server
    with urllib.request.urlopen(f"{url}/api/openapi.json", timeout=5) as response:
        assert json.loads(response.read()) == json.loads(json.dumps(document()))


def test_the_document_lists_every_route_of_the_app(app):
    documented = {(method.upper(), path) for method, path, *_ in OPERATIONS}
    routed = set()
    for rule in app.url_map.iter_rules():
        path = rule.rule.replace("<path:", "<").replace("<", "{").replace(">", "}")
        if path.startswith(("/app", "/static")):
            continue  # the workspace's pages: HTML for people, not the API
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            routed.add((method, path))
    assert routed == documented


def test_bodies_reuse_the_wire_schemas(client):
    doc = client.get("/api/openapi.json").get_json()
    assert doc["openapi"].startswith("3.1")
    schemas = doc["components"]["schemas"]
    assert schemas["SiteConfig"]["title"] == "Vitrina site config"
    text = json.dumps(doc)
    assert "schema.json#" not in text  # every $ref points inside the document
    put = doc["paths"]["/api/v1/sites/{site}/config"]["put"]
    assert put["requestBody"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/SiteConfig"}
    assert "412" in put["responses"] and "If-Match" in [p["name"] for p in put["parameters"]]


def test_the_docs_page_is_self_hosted_and_names_every_operation(client):
    page = client.get("/api/docs")
    assert page.status_code == 200 and "script-src" not in page.headers["Content-Security-Policy"]
    text = page.get_data(as_text=True)
    assert "<script" not in text and 'src="http' not in text and 'href="http' not in text  # nothing from elsewhere
    for method, path, *_ in OPERATIONS:
        assert f"{method.upper()} {path}" in text
