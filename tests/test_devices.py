"""spec/07-devices.json: the server classifies real user agents (phones, tablets, desktops,
bots) as the vectors say; sdk_js/test/devices.test.js holds the SDK's own classifier (device.type
always comes from the browser) to the same types, and e2e/test_parity.py shows a browser carries
the server's os and browser."""
import json
import re
from pathlib import Path

import jsonschema
import pytest

from server.delivery.context import MAX_UA, device_for_ua

VECTORS = json.loads((Path(__file__).resolve().parents[1] / "spec" / "07-devices.json").read_text("utf-8"))
CASES = [pytest.param(c["user_agent"], c["expected"], id=c["description"][:70]) for c in VECTORS["cases"]]


@pytest.mark.parametrize("ua, expected", CASES)
def test_device_for_ua(ua, expected):
    assert device_for_ua(ua) == expected


def test_every_kind_of_device_is_covered():
    kinds = [c["expected"]["type"] for c in VECTORS["cases"]]
    assert len(kinds) >= 40 and len(set(c["user_agent"] for c in VECTORS["cases"])) == len(kinds)
    assert {k: kinds.count(k) >= 5 for k in ("mobile", "tablet", "desktop", "bot")} == dict.fromkeys(
        ("mobile", "tablet", "desktop", "bot"), True)
    for field in ("os", "browser"):
        # Every name the server maps to appears in some vector.
        assert {c["expected"][field] for c in VECTORS["cases"]} >= (
            {"ios", "android", "windows", "macos", "chromeos", "linux", "other"} if field == "os"
            else {"chrome", "firefox", "safari", "edge", "opera", "samsung", "other"})


@pytest.mark.parametrize("ua", [None, "", "x" * 10_000, "\x00\uffff"])
def test_missing_or_odd_user_agents_are_a_desktop_of_unknown_make(ua):
    assert device_for_ua(ua) == {"type": "desktop", "os": "other", "browser": "other"}


def test_only_the_first_bytes_of_a_huge_user_agent_are_read():
    iphone = VECTORS["cases"][0]["user_agent"]
    assert device_for_ua(iphone + " " * MAX_UA + "Googlebot/2.1")["type"] == "mobile"


def test_context_endpoint_carries_the_classification(client):
    for case in VECTORS["cases"][::7]:
        got = client.get("/v1/context", headers={"User-Agent": case["user_agent"]}).get_json()["device"]
        assert got == case["expected"], case["description"]


def test_each_context_script_carries_the_os_and_browser_of_its_own_user_agent(client, published):
    # The type is left to the browser's classifier (sdk_js/test/devices.test.js holds it to the same vectors).
    for case in VECTORS["cases"]:
        body = client.get("/v1/sites/shop/context.js", headers={"User-Agent": case["user_agent"]}).data
        context = json.loads(re.fullmatch(rb"\(function\(c\)\{.*\}\)\((.*)\);", body, re.S).group(1))
        expected = case["expected"]
        assert context["device"] == {"os": expected["os"], "browser": expected["browser"]}, case["description"]


@pytest.mark.parametrize("case", [
    {"description": "x", "user_agent": "UA", "expected": {"type": "phone", "os": "ios", "browser": "safari"}},
    {"description": "x", "user_agent": "UA", "expected": {"type": "mobile", "os": "iOS", "browser": "safari"}},
    {"description": "x", "user_agent": "UA", "expected": {"type": "mobile", "os": "ios"}},
    {"description": "x", "expected": {"type": "mobile", "os": "ios", "browser": "safari"}},
], ids=["unknown type", "os not in the short names", "browser missing", "no user agent"])
def test_schema_rejects_malformed_device_vectors(case):
    schema = json.loads((Path(__file__).resolve().parents[1] / "spec" / "schema.json").read_text("utf-8"))
    doc = {"specVersion": "1.0.0", "topic": "devices", "cases": [case]}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(doc, schema, cls=jsonschema.Draft202012Validator)
