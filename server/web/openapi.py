"""The OpenAPI 3.1 document of the whole HTTP API (GET /api/openapi.json) and its readable page
(GET /api/docs, rendered here from the same document: no script, no CDN). Request bodies reuse
the JSON Schemas of spec/schemas/, copied under components/schemas with their $refs rewritten."""
import copy
import json
from functools import lru_cache

from flask import Blueprint, jsonify, make_response, render_template

from server.wire.schemas import SCHEMAS as SCHEMAS_DIR

bp = Blueprint("api_docs", __name__, template_folder="templates")
ERROR = {"$ref": "#/components/schemas/Error"}
CSP = "default-src 'none'; style-src 'self'; img-src 'self'; base-uri 'none'; frame-ancestors 'none'; form-action 'none'"
SCHEMA_FILES = {"SiteConfig": "site-config", "CollectBatch": "collect-batch", "DecideRequest": "decide-request",
                "Ids": "ids"}
OBJECT = {"type": "object"}
ERRORS = {400: "the request is invalid: `details` lists every problem with its JSON path",
          401: "no API key, or not a valid one", 403: "the key does not open this site, or its scope is too small",
          404: "no such site (or thing)", 409: "a conflict with the current state", 410: "gone",
          412: "If-Match names a stale version of the config: nothing was saved", 413: "the body is too large",
          415: "unsupported Content-Type", 429: "too many requests: retry after Retry-After seconds",
          503: "the store, the SDK or a bundle is unavailable"}
# (method, path, summary, scope or None for public, request body, {status: (description, schema, media)})
JSON = "application/json"
JS = "application/javascript"
OPERATIONS = [
    ("get", "/v1/sites/{site}/tag.js", "The tag: the SDK and the latest published bundle", None, None,
     {200: ("the script", {"type": "string"}, JS), 304: ("not modified", None, None), 404: None, 503: None}),
    ("get", "/v1/sites/{site}/context.js", "This visitor's server-resolved context, as a script before the tag", None,
     None, {200: ("the script", {"type": "string"}, JS), 404: None}),
    ("get", "/v1/sites/{site}/bundle.json", "The latest signed bundle", None, None,
     {200: ("{bundle, signature}", {"type": "object", "required": ["bundle", "signature"]}, JSON), 304: ("not modified", None, None),
      404: None, 503: None}),
    ("get", "/v1/context", "This visitor's server-resolved context", None, None,
     {200: ("{geo, device}", {"type": "object", "required": ["geo", "device"]}, JSON)}),
    ("post", "/v1/sites/{site}/collect", "A batch of exposures, conversions and item signals", None, "CollectBatch",
     {204: ("recorded", None, None), 200: ("some conversions refused alone, the rest recorded",
      {"type": "object", "required": ["refused"]}, JSON), 202: ("spooled: the store is away", None, None),
      400: None, 404: None, 413: None, 429: None}),
    ("get", "/v1/sites/{site}/preview.json", "A preview link's bundle and forced variation (never cached)", None, None,
     {200: ("{bundle, force, source, expires_at}", {"type": "object", "required": ["bundle", "force", "expires_at"]}, JSON),
      403: None, 404: None, 410: None}, [("token", True, "the preview link's token")]),
    ("get", "/v1/sites/{site}/recommendations", "Recommended products for a strategy", None, None,
     {200: ("{strategy, served_by, filled_by, items}", {"type": "object", "required": ["strategy", "items"]}, JSON),
      400: None, 404: None, 503: None},
     [("strategy", True, "the strategy"), ("items", False, "anchor product ids, comma-separated"),
      ("n", False, "how many, 1 to 20"), ("exclude", False, "product ids to leave out"),
      ("category", False, "a category path"), ("min_price", False, "lowest price"), ("max_price", False, "highest price"),
      ("availability", False, "comma-separated availabilities")]),
    ("get", "/v1/sites/{site}/products/{product_id}", "One product's public fields and its views and purchases of "
     "the last 24 hours", None, None,
     {200: ("the product, views_24h, purchases_24h", {"type": "object", "required": [
         "id", "views_24h", "purchases_24h"]}, JSON), 400: None, 404: None, 503: None}),
    ("get", "/sdk/vitrina.min.js", "The SDK alone", None, None,
     {200: ("the script", {"type": "string"}, JS), 304: ("not modified", None, None), 503: None}),
    ("get", "/sdk/modules/{name}.min.js", "One SDK module: one tag.js may carry, or one the core fetches (debug, preview)",
     None, None, {200: ("the script", {"type": "string"}, JS), 304: ("not modified", None, None), 404: None, 503: None}),
    ("get", "/healthz", "Liveness and store reachability", None, None,
     {200: ("healthy", {"type": "object", "required": ["status", "store_ok"]}, JSON),
      503: ("degraded", {"type": "object", "required": ["status", "store_ok"]}, JSON)}),
    ("put", "/api/v1/sites/{site}/config", "Save the draft config (If-Match optional)", "publish", "SiteConfig",
     {200: ("saved; ETag header: the new draft's tag", {"type": "object", "required": ["site", "saved", "warnings"]}, JSON),
      400: None, 412: None, 413: None}),
    ("get", "/api/v1/sites/{site}/config", "The draft config, with its ETag", "read", None,
     {200: ("the draft", {"$ref": "#/components/schemas/SiteConfig"}, JSON), 404: None}),
    ("post", "/api/v1/sites/{site}/publish", "Publish the draft as a new version", "publish", None,
     {201: ("published", {"type": "object", "required": ["site", "version", "warnings"]}, JSON), 400: None, 409: None}),
    ("get", "/api/v1/sites/{site}/versions", "Published versions, newest first", "read", None,
     {200: ("the versions", {"type": "object", "required": ["site", "versions"]}, JSON)}),
    ("post", "/api/v1/sites/{site}/rollback", "Publish an earlier version again", "publish",
     {"type": "object", "required": ["version"], "properties": {"version": {"type": "integer", "minimum": 1}}},
     {201: ("rolled back", {"type": "object", "required": ["site", "version", "rolled_back_from"]}, JSON),
      400: None, 404: None, 413: None, 503: None}),
    ("post", "/api/v1/sites/{site}/decide", "What a visitor gets, decided on the server", "read", "DecideRequest",
     {200: ("the decision", {"type": "object", "required": ["version", "variations", "reasons"]}, JSON),
      400: None, 409: None, 413: None, 503: None}),
    ("get", "/api/v1/sites/{site}/results", "Results per campaign and variation", "read", None,
     {200: ("the results", {"type": "object", "required": ["site", "version", "campaigns", "rejected"]}, JSON),
      400: None, 503: None}, [("goals", False, "campaign (each campaign's own goals, the default) or all"),
                              ("channel", False, "web or email: only the units first exposed there"),
                              ("breakdown", False, "segment, device.type, acquisition, visit.new or geo.country: "
                                                   "each campaign per slice, with winners and a summary")]),
    ("get", "/api/v1/sites/{site}/events", "The recorded events as JSON lines, oldest first", "read", None,
     {200: ("one event a line (spec/schemas/event-export.schema.json); the Vitrina-Next-Cursor header is the next "
            "page's `since`, Vitrina-More says whether to ask again now", {"type": "string"}, "application/x-ndjson"),
      400: None}, [("since", False, "the cursor of the last line read (none: from the start)"),
                              ("channel", False, "web or email: only the units first exposed there")]),
    ("get", "/api/v1/sites/{site}/models", "Each goal's newest model report (predict.<goal>)", "read", None,
     {200: ("the reports", {"type": "object", "required": ["site", "floor", "goals"]}, JSON)}),
    ("get", "/api/v1/sites/{site}/sample-size", "Visitors needed for a conversion-rate experiment", "read", None,
     {200: ("the sample size", OBJECT, JSON), 400: None},
     [(name, name in ("baseline", "mde"), about) for name, about in (
         ("baseline", "the control's conversion rate, between 0 and 1"), ("mde", "the relative effect to detect"),
         ("alpha", "the false-positive rate (default: the site's settings.stats)"), ("power", "the power"),
         ("variations", "how many arms, control included"))]),
    ("get", "/api/v1/sites/{site}/keys", "The site's API keys (never a secret)", "owner", None,
     {200: ("the keys", {"type": "object", "required": ["site", "keys"]}, JSON)}),
    ("post", "/api/v1/sites/{site}/keys", "Create a key (its secret shown once)", "owner",
     {"type": "object", "required": ["name", "scope"], "properties": {
         "name": {"type": "string"}, "scope": {"enum": ["owner", "publish", "read"]}}},
     {201: ("created", {"type": "object", "required": ["site", "name", "scope", "key"]}, JSON), 400: None, 409: None,
      413: None}),
    ("delete", "/api/v1/sites/{site}/keys/{name}", "Revoke a key", "owner", None,
     {200: ("revoked", {"type": "object", "required": ["site", "name", "revoked"]}, JSON), 404: None, 409: None}),
    ("put", "/api/v1/sites/{site}/catalog", "Replace the catalogue with a feed", "publish", "feed",
     {200: ("import summary", OBJECT, JSON), 400: None, 413: None, 415: None}),
    ("patch", "/api/v1/sites/{site}/catalog", "Upsert or delete some products", "publish", "feed",
     {200: ("import summary", OBJECT, JSON), 400: None, 413: None, 415: None}),
    ("get", "/api/v1/sites/{site}/catalog", "A page of products", "read", None,
     {200: ("products", OBJECT, JSON), 400: None}, [("after", False, "the last id of the page before"),
                                                   ("limit", False, "products per page, 1 to 1000")]),
    ("get", "/api/v1/sites/{site}/catalog/{product_id}", "One product", "read", None,
     {200: ("the product", OBJECT, JSON), 400: None}),
    ("post", "/api/v1/sites/{site}/orders", "Import past orders (JSON lines)", "publish", "feed",
     {200: ("import summary", OBJECT, JSON), 400: None, 413: None, 415: None}),
    ("put", "/api/v1/sites/{site}/merchandising", "Replace the merchandising rules", "publish", OBJECT,
     {200: ("saved", OBJECT, JSON), 400: None, 413: None}),
    ("get", "/api/v1/sites/{site}/merchandising", "The merchandising rules", "read", None,
     {200: ("the rules", OBJECT, JSON)}),
    ("get", "/api/v1/sites/{site}/recommendations/status", "When recommendations were last built", "read", None,
     {200: ("the status", OBJECT, JSON)}),
    ("post", "/v1/sites/{site}/identify", "An identity token in, the customer's crm attributes and a signed identity out",
     None, {"type": "object", "required": ["token", "visitor_id"], "properties": {
         "token": {"type": "string", "description": "the identity JWT (HS256) the shop's servers minted"},
         "visitor_id": {"$ref": "#/components/schemas/Ids/$defs/visitor_id"}}},
     {200: ("{customer, crm, identity, expires_at}", {"type": "object", "required": [
         "customer", "crm", "identity", "expires_at"]}, JSON), 400: None, 404: None, 413: None, 429: None, 503: None}),
    ("put", "/api/v1/sites/{site}/customers", "Replace the CRM data: the body holds every customer", "publish", "feed",
     {200: ("import summary", OBJECT, JSON), 400: None, 413: None, 415: None}),
    ("patch", "/api/v1/sites/{site}/customers", "Merge CRM attributes into some customers", "publish", "feed",
     {200: ("import summary", OBJECT, JSON), 400: None, 413: None, 415: None}),
    ("get", "/api/v1/sites/{site}/customers/{customer_id}", "A customer's CRM data", "read", None,
     {200: ("the customer", {"type": "object", "required": ["customer_id", "attributes", "crm"]}, JSON), 400: None},
     [("email_sha256", False, "also the record stored under this email hash")]),
    ("delete", "/api/v1/sites/{site}/customers/{customer_id}", "Erase a customer: data, links, raw events", "publish",
     None, {200: ("what was erased", {"type": "object", "required": ["customer_id", "erased"]}, JSON), 400: None},
     [("email_sha256", False, "also the record stored under this email hash")]),
    ("get", "/api/v1/sites/{site}/crm-attributes", "The site's CRM attributes and their types", "read", None,
     {200: ("the attributes", {"type": "object", "required": ["site", "customers", "attributes"]}, JSON)}),
    ("get", "/api/v1/sites/{site}/customers/{customer_id}/content", "What the customer gets in an email (recorded)",
     "read", None, {200: ("per campaign: variation, actions, recommendations", {"type": "object", "required": [
         "site", "version", "campaigns"]}, JSON), 400: None, 409: None, 503: None},
     [("campaigns", True, "campaign keys, comma-separated"), ("timezone", False, "an IANA zone for time.* (UTC)")]),
    ("get", "/api/openapi.json", "This document", None, None, {200: ("OpenAPI 3.1", OBJECT, JSON)}),
    ("get", "/api/docs", "This document as a page", None, None, {200: ("HTML", {"type": "string"}, "text/html")}),
]


def _component(name, text):
    """A spec/schemas file as a component: $id dropped, "#/$defs/x" and "other.schema.json#/$defs/x"
    pointed at components/schemas."""
    schema = json.loads(text)
    schema.pop("$id", None)
    schema.pop("$schema", None)

    def walk(node):
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str):
                target, _, pointer = ref.partition("#")
                owner = name if not target else next(k for k, v in SCHEMA_FILES.items() if target == f"{v}.schema.json")
                node["$ref"] = f"#/components/schemas/{owner}{pointer}"
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)
    walk(schema)
    return schema


def _operation(method, path, summary, scope, body, responses, query=()):
    op = {"summary": summary, "operationId": f"{method}_{path.strip('/').replace('/', '_').replace('{', '').replace('}', '').replace('.', '_')}",
          "tags": ["merchant" if scope else "public"], "responses": {}}
    params = [{"name": name, "in": "path", "required": True, "schema": {"type": "string", "minLength": 1}}
              for name in ("site", "name", "product_id", "customer_id") if "{" + name + "}" in path]
    params += [{"name": name, "in": "query", "required": required, "description": about, "schema": {"type": "string"}}
               for name, required, about in query]
    if params:
        op["parameters"] = params
    if scope:
        op["security"] = [{"bearer": []}]
        op["description"] = f"Needs an API key of scope `{scope}` or above."
        responses = {**responses, 401: None, 403: None, 404: None}
        if method == "put" and path.endswith("/config"):
            op["parameters"].append({"name": "If-Match", "in": "header", "required": False, "schema": {"type": "string"},
                                     "description": "the ETag of the draft this edit is based on"})
    if body == "feed":
        op["requestBody"] = {"required": True, "content": {m: {"schema": {"type": "string"}} for m in (
            "application/x-ndjson", "text/csv", "text/tab-separated-values", "application/json")}}
    elif isinstance(body, str):
        op["requestBody"] = {"required": True, "content": {JSON: {"schema": {"$ref": f"#/components/schemas/{body}"}}}}
    elif body is not None:
        op["requestBody"] = {"required": True, "content": {JSON: {"schema": body}}}
    for status, answer in sorted(responses.items()):
        if answer is None:
            op["responses"][str(status)] = {"description": ERRORS[status], "content": {JSON: {"schema": ERROR}}}
        else:
            description, schema, media = answer
            op["responses"][str(status)] = {"description": description}
            if schema is not None:
                op["responses"][str(status)]["content"] = {media: {"schema": schema}}
    return op


@lru_cache(maxsize=1)
def document():
    paths = {}
    for method, path, summary, scope, body, responses, *query in OPERATIONS:
        paths.setdefault(path, {})[method] = _operation(method, path, summary, scope, body, responses, *query)
    schemas = {name: _component(name, (SCHEMAS_DIR / f"{file}.schema.json").read_text("utf-8"))
               for name, file in SCHEMA_FILES.items()}
    schemas["Error"] = {
        "type": "object", "required": ["error", "message", "details"], "description": "The one error shape.",
        "properties": {"error": {"type": "string", "description": "a code, such as invalid_config"},
                       "message": {"type": "string", "description": "a sentence for people"},
                       "details": {"type": "array", "items": {"type": "object", "required": ["path", "message"], "properties": {
                           "path": {"type": "string", "description": "JSON pointer"}, "message": {"type": "string"}}}}}}
    return {"openapi": "3.1.0",
            "info": {"title": "Vitrina HTTP API", "version": "1",
                     "description": "Public endpoints (the tag, events, recommendations) and the merchant API "
                                    "(Bearer API keys). docs/reference/http-api.md describes each in prose."},
            "paths": paths,
            "components": {"schemas": schemas,
                           "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer",
                                                          "description": "a site's API key, vk_..."}}}}


@bp.get("/api/openapi.json")
def openapi_json():
    response = jsonify(document())
    response.headers["Access-Control-Allow-Origin"] = "*"
    return response


@bp.get("/api/docs")
def api_docs():
    doc = copy.deepcopy(document())
    response = make_response(render_template("api_docs.html", doc=doc,
                                             dumps=lambda v: json.dumps(v, indent=2, ensure_ascii=False)))
    response.headers.update({"Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff"})
    return response
