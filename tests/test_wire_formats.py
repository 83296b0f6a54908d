"""The wire formats of spec/schemas/: valid, described, the server's hand-written checks equal to
them (collect's fast path accepts exactly what the schema accepts), and the SDK's visitor id
test equal to the schema's pattern."""
import copy
import json
import re
import subprocess

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from server.events.batch import BatchInvalid, _checked_batch, _valid_batch, parse_batch
from server.wire import ids
from server.wire.schemas import SCHEMAS, definition, problems, schema, validator
from tests.servers import REPO

NAMES = sorted(p.name.removesuffix(".schema.json") for p in SCHEMAS.glob("*.schema.json"))
WIRE = ["ids", "collect-batch", "decide-request", "event-export"]
COLLECT = schema("collect-batch")
EVENT = COLLECT["$defs"]["event"]["properties"]
VALUE = COLLECT["$defs"]["conversion"]["properties"]["value"]
MAX_EVENTS = COLLECT["properties"]["events"]["maxItems"]


@pytest.mark.parametrize("name", NAMES)
def test_each_schema_is_valid(name):
    validator(name)  # checks the schema against the 2020-12 meta-schema


@pytest.mark.parametrize("name", WIRE)
def test_each_wire_schema_has_its_own_id_and_its_examples_pass(name):
    assert schema(name)["$id"] == f"https://vitrina.dev/schemas/{name}.schema.json"
    for example in schema(name).get("examples", []):
        assert problems(name, example) == []


def _undescribed(node, file, at=""):
    """Paths of property schemas (and $defs) with no description, directly or through a $ref."""
    if not isinstance(node, dict):
        return []
    found = []
    for group in ("properties", "$defs"):
        for key, sub in (node.get(group) or {}).items():
            if sub is True:
                continue  # "any value": the field is described where it is constrained
            if "description" not in sub and not _ref_described(sub.get("$ref"), file):
                found.append(f"{at}/{group}/{key}")
    for key, sub in node.items():
        if key == "if":
            continue  # a test, not a field
        if isinstance(sub, dict):
            found += _undescribed(sub, file, f"{at}/{key}")
        elif isinstance(sub, list):
            for i, item in enumerate(sub):
                found += _undescribed(item, file, f"{at}/{key}/{i}")
    return found


def _ref_described(ref, file):
    if not ref:
        return False
    target_file, _, fragment = ref.partition("#")
    target = schema(target_file.removesuffix(".schema.json") or file)
    for part in fragment.strip("/").split("/"):
        target = target[part]
    return "description" in target


@pytest.mark.parametrize("name", WIRE)
def test_every_field_is_described_for_editors_and_error_messages(name):
    assert schema(name)["description"]
    assert _undescribed(schema(name), name) == []


def test_the_strategies_a_conversion_may_name_are_the_servers():
    from server.recs.strategies import STRATEGIES
    assert COLLECT["$defs"]["conversion"]["properties"]["strategy"]["enum"] == list(STRATEGIES)


def test_the_server_takes_its_id_regexes_from_the_schema():
    assert ids.SITE_RE.pattern == schema("ids")["$defs"]["site"]["pattern"]
    assert ids.KEY_RE.pattern == schema("ids")["$defs"]["key"]["pattern"]
    assert ids.VISITOR_ID_RE.pattern == ids.EVENT_ID_RE.pattern == schema("ids")["$defs"]["token"]["pattern"]
    assert ids.CALLER_VISITOR_ID_RE.pattern == schema("ids")["$defs"]["caller_visitor_id"]["pattern"]
    for good in ("shop", "a", "shop-fr", "0" * 63):
        assert ids.SITE_RE.match(good)
    for bad in ("", "Shop", "-shop", "shop\n", "0" * 64, "shop_fr", "shop.fr"):
        assert not ids.SITE_RE.match(bad)


# --- the SDK's visitor id ---------------------------------------------------------------------

def _sdk_visitor_id_literal():
    source = (REPO / "sdk_js" / "src" / "storage.js").read_text()
    found = re.findall(r"^const \w+ = /(.*\{8,64\}.*)/([a-z]*)$", source, re.M)
    assert len(found) == 1, "sdk_js/src/storage.js should have one `const NAME = /...{8,64}.../`, the visitor id test"
    return found[0]  # (source, flags)


NODE_MATCHES = """
const [[source, flags], pattern, strings] = JSON.parse(require("fs").readFileSync(0, "utf8"))
const sdk = new RegExp(source, flags)  // the regex literal of storage.js
const schema = new RegExp(pattern, "u")  // JSON Schema patterns are ECMA-262, as validators run them
process.stdout.write(JSON.stringify(strings.map((s) => [sdk.test(s), schema.test(s)])))
"""
ID_ALPHABET = st.sampled_from(list("abcXYZ019_.-") + ["\n", " ", "é", "ſ", "K", "\u212a", "/", "+", "\U0001f600",
                                                      "\x00", "\u2028"])
ID_LIKE = st.one_of(st.text(ID_ALPHABET, max_size=70), st.from_regex(definition("ids", "visitor_id")["pattern"]),
                    st.from_regex(definition("ids", "visitor_id")["pattern"]).map(lambda s: s + "\n"),
                    st.integers(6, 66).map(lambda n: "v" * n))


@settings(max_examples=15, deadline=None)
@given(st.lists(ID_LIKE, min_size=20, max_size=60))
def test_the_sdk_visitor_id_test_is_the_schema_pattern(strings):
    pattern = definition("ids", "visitor_id")["pattern"]
    run = subprocess.run(["node", "-e", NODE_MATCHES], input=json.dumps([_sdk_visitor_id_literal(), pattern, strings]),
                         capture_output=True, text=True, timeout=30, check=True)
    for s, (sdk, schema_in_js) in zip(strings, json.loads(run.stdout)):
        server = bool(ids.VISITOR_ID_RE.match(s))
        assert sdk == schema_in_js == server, (s, {"sdk": sdk, "schema in JS": schema_in_js, "server": server})


# --- collect: the fast path against the schema --------------------------------------------------

def _pattern(name):
    return st.from_regex(definition("ids", name)["pattern"])


def _bounded(field):
    return st.integers(field["minimum"], field["maximum"])


@st.composite
def events(draw):
    """A valid event, every value drawn from what the schema allows."""
    kind = draw(st.sampled_from(EVENT["type"]["enum"]))
    event = {"id": draw(_pattern("event_id")), "type": kind, "version": draw(_bounded(EVENT["version"])),
             "ts": draw(_bounded(EVENT["ts"]))}
    if draw(st.booleans()):
        event["forced"] = draw(st.booleans())
    if draw(st.booleans()):
        event["internal"] = draw(st.booleans())
    if kind == "exposure":
        event["campaign"] = draw(_pattern("key"))
        claims = COLLECT["$defs"]["exposure"]["properties"]
        if draw(st.booleans()):
            event["segments"] = draw(st.from_regex(claims["segments"]["pattern"]))
        if draw(st.booleans()):
            event["acquisition"] = draw(st.text(max_size=claims["acquisition"]["maxLength"]))
        if draw(st.booleans()):
            event["pre"] = draw(st.lists(_bounded(claims["pre"]["items"]), min_size=2, max_size=2))
        holdout = draw(st.sampled_from([None, False, True]))
        if holdout is not None:
            event["holdout"] = holdout
        if not holdout:
            event["variation"] = draw(_pattern("key"))
        elif draw(st.booleans()):
            event["variation"] = None
    elif kind == "item":
        item = COLLECT["$defs"]["item"]["properties"]
        if "version" in event and draw(st.booleans()):
            del event["version"]  # an item event names no campaign: its version is optional
        event["action"] = draw(st.sampled_from(item["action"]["enum"]))
        event["items"] = draw(st.lists(_pattern("product_id"), min_size=1, max_size=item["items"]["maxItems"]))
        if draw(st.booleans()):
            event["session"] = draw(_bounded(item["session"]))
    else:
        conversion = COLLECT["$defs"]["conversion"]["properties"]
        event["goal"] = draw(_pattern("key"))
        if draw(st.booleans()):
            event["value"] = draw(_bounded(VALUE) | st.floats(VALUE["minimum"], VALUE["maximum"]))
        if draw(st.booleans()):
            event["order_id"] = draw(_pattern("order_id"))
        if draw(st.booleans()):
            event["campaign"] = draw(_pattern("key"))
            event["strategy"] = draw(st.sampled_from(conversion["strategy"]["enum"]))
            event["items"] = draw(st.lists(_pattern("product_id"), min_size=1, max_size=conversion["items"]["maxItems"]))
    return event


CLAIMS = COLLECT["$defs"]["exposure"]["properties"]
claims = st.fixed_dictionaries({}, optional={
    "segments": st.from_regex(CLAIMS["segments"]["pattern"]),
    "acquisition": st.text(max_size=CLAIMS["acquisition"]["maxLength"]),
    "pre": st.lists(_bounded(CLAIMS["pre"]["items"]), min_size=2, max_size=2)})
valid_batches = st.fixed_dictionaries({
    "visitor_id": _pattern("visitor_id"),
    "events": st.lists(events(), min_size=1, max_size=6, unique_by=lambda e: e["id"])},
    optional={"identity": _pattern("identity"), "internal": st.booleans(),
              # the slices module's; keys drawn from a few, so some name a campaign of the batch
              "first_exposure": st.dictionaries(st.sampled_from(["hero", "a", "b-1"]) | _pattern("key"), claims,
                                                max_size=3)})

# Values at and around every bound and format of the schema, and of every JSON type.
ODD = st.sampled_from([
    None, True, False, 0, 1, -1, 1.0, 0.5, -0.0, "", "x", "event-0001", "abcdefgh\n", "a" * 64, "a" * 65, "hero",
    "T 1", "bought_together", ["sku-1"], ["sku 1"], ["sku-1"] * 21,
    "-hero", "hero\n", "a" * 15, "a" * 16, "a" * 512, "a" * 513, "exposure", "conversion", "click", [], {}, [1], {"a": 1},
    EVENT["version"]["maximum"], EVENT["version"]["maximum"] + 1, EVENT["ts"]["minimum"], EVENT["ts"]["minimum"] - 1,
    EVENT["ts"]["maximum"], EVENT["ts"]["maximum"] + 1, float(EVENT["ts"]["minimum"]), VALUE["maximum"],
    VALUE["maximum"] + 1, VALUE["minimum"] - 0.5, 1e999, -1e999, 10**400,
    "0f", "A", "0" * 125, "0" * 126, "e" * 64, "é" * 64, "é" * 65, [0, 0], [1, -1], [0, 1.0], [0], [0, 0, 0],
    [10**9, 10**9 + 1], [True, 0]]).map(copy.deepcopy)
FIELDS = ["id", "type", "version", "ts", "campaign", "variation", "holdout", "forced", "internal", "goal", "value",
          "action", "items", "session", "segments", "acquisition", "pre", "order_id", "strategy", "extra"]


@st.composite
def mutated_batches(draw):
    """A valid batch with a few things broken (or not): a field set to an odd value or removed,
    an unknown field, an id repeated, an event that is not an object, the batch's own fields."""
    body = draw(valid_batches)
    for _ in range(draw(st.integers(0, 3))):
        what = draw(st.integers(0, 9))
        events = body.get("events")
        if not (isinstance(events, list) and events and all(isinstance(e, dict) for e in events)):
            break
        event = draw(st.sampled_from(events))
        if what <= 4:
            event[draw(st.sampled_from(FIELDS))] = draw(ODD)
        elif what == 5:
            event.pop(draw(st.sampled_from(FIELDS)), None)
        elif what == 6 and len(events) > 1:
            events[1]["id"] = events[0].get("id")
        elif what == 7:
            events[draw(st.integers(0, len(events) - 1))] = draw(ODD)
        elif what == 8:
            field = draw(st.sampled_from(["visitor_id", "events", "identity", "extra", "internal", "first_exposure"]))
            first = body.get("first_exposure")
            if field == "first_exposure" and isinstance(first, dict) and first and draw(st.booleans()):
                body = {**body, "first_exposure": {**first, draw(st.sampled_from(sorted(first))): draw(
                    st.fixed_dictionaries({draw(st.sampled_from(["segments", "acquisition", "pre", "slice"])): ODD}))}}
                continue
            if draw(st.booleans()):
                body.pop(field, None)
            else:
                body[field] = draw(ODD)
        else:
            body["events"] = (events * MAX_EVENTS)[:draw(st.sampled_from([0, MAX_EVENTS, MAX_EVENTS + 1]))]
    return json.loads(json.dumps(body))  # the types json.loads gives, as the server sees them


def _full_checks_accept(body):
    try:
        _checked_batch(body)
        return True
    except BatchInvalid:
        return False


@settings(max_examples=150, deadline=None)
@given(valid_batches)
def test_batches_built_from_the_schema_take_the_fast_path(body):
    assert problems("collect-batch", body) == []
    assert _valid_batch(body)
    assert parse_batch(json.dumps(body)) == (body["visitor_id"], _as_collect_reads(body), body.get("identity"))


def _as_collect_reads(body):
    """The batch's events as collect reads them: an exposure given what `first_exposure` says of its
    campaign that it does not say itself; every event internal when the batch is."""
    events = json.loads(json.dumps(body["events"]))
    for event in events:
        if event["type"] == "exposure":
            event.update({**body.get("first_exposure", {}).get(event["campaign"], {}), **event})
        if body.get("internal"):
            event["internal"] = True
    return events


def test_the_fast_path_accepts_exactly_what_the_schema_accepts():
    """Neither accepts what the other refuses: the fast path is the schema (plus distinct ids)."""
    outcomes = set()

    @settings(max_examples=500, deadline=None)
    @given(mutated_batches())
    def agree(body):
        accepted = _full_checks_accept(body)
        assert _valid_batch(body) == accepted, problems("collect-batch", body)
        outcomes.add(accepted)

    agree()
    assert outcomes == {True, False}


@pytest.mark.parametrize("raw", ['{"visitor_id":"visitor-0001","events":[{"id":"event-0001","type":"conversion",'
                                 '"version":1,"ts":1763900000000,"goal":"purchase","value":NaN}]}',
                                 '{"visitor_id":"visitor-0001","events":[],"x":Infinity}'])
def test_nan_and_infinity_are_not_json(raw):
    with pytest.raises(BatchInvalid, match="not valid JSON"):
        parse_batch(raw)


def test_problems_point_at_the_field_and_read_as_sentences():
    body = {"visitor_id": "x", "extra": 1, "events": [
        {"id": "event-0001", "type": "exposure", "version": 1.0, "ts": 1763900000000, "campaign": "hero",
         "holdout": True, "variation": "promo"},
        {"type": "conversion", "version": 1, "ts": 1763900000000, "goal": "purchase", "ip": "1.2.3.4"},
        {"id": "event-0001", "type": "conversion", "version": 1, "ts": 1763900000000, "goal": "purchase"}]}
    with pytest.raises(BatchInvalid) as refused:
        _checked_batch(body)
    assert refused.value.details == [
        {"path": "", "message": "unknown fields: extra"},
        {"path": "/events/0/variation", "message": "must be null for a holdout exposure"},
        {"path": "/events/0/version", "message": "must be " + EVENT["version"]["description"]},
        {"path": "/events/1", "message": "unknown fields: ip"},
        {"path": "/events/1/id", "message": "is required"},
        {"path": "/events/2/id", "message": "the same id appears twice in the batch"},
        {"path": "/visitor_id", "message": "must be 8 to 64 characters of A-Z a-z 0-9 _ . -"}]


# --- decide ------------------------------------------------------------------------------------

def test_decide_requests_are_checked_by_their_schema(client, published):
    for example in schema("decide-request")["examples"]:
        assert client.post("/api/v1/sites/shop/decide", json=example, headers=published).status_code == 200
    bad = {"visitor_id": "v1 x", "attributes": [], "triggered": ["a", 1], "zone": "Europe/Paris"}
    response = client.post("/api/v1/sites/shop/decide", json=bad, headers=published)
    assert response.status_code == 400
    assert response.get_json()["details"] == problems("decide-request", bad)
    assert [d["path"] for d in response.get_json()["details"]] == ["", "/attributes", "/triggered/1", "/visitor_id"]


def test_the_config_schema_reads_product_ids_as_the_wire_does():
    config = schema("site-config")
    anchors = config["$defs"]["action"]["properties"]["recommend"]["properties"]["items"]["oneOf"][1]
    assert anchors["items"]["pattern"] == definition("ids", "product_id")["pattern"]
