"""collect fuzzed with Hypothesis: malformed input always gets a 4xx and never changes results."""
import json
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from server import create_app
from server.store import get_store
from tests.conftest import DEMO_CONFIG, make_site

NOW = int(time.time() * 1000)
URL = "/v1/sites/shop/collect"
FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.fixture(scope="module")
def fuzz_app(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("fuzz")
    app = create_app(env={"VITRINA_DATABASE": str(tmp / "f.sqlite3"), "VITRINA_SECRET_KEY": "fuzz-secret-key-0123456789",
                          "VITRINA_RATE_CLIENT": "0", "VITRINA_RATE_SITE": "0"})
    auth = make_site(app, "shop")
    client = app.test_client()
    client.put("/api/v1/sites/shop/config", data=DEMO_CONFIG.read_text(), headers={**auth, "Content-Type": "application/json"})
    client.post("/api/v1/sites/shop/publish", headers=auth)
    return app


def snapshot(app):
    with app.app_context():
        store = get_store()
        return sorted(map(repr, store.counters("shop")))


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=20)

VALID_EXPOSURE = {"id": "fuzz-event-1", "type": "exposure", "version": 1, "ts": NOW, "campaign": "cta-wording",
                  "variation": "control", "holdout": False}
VALID_CONVERSION = {"id": "fuzz-event-2", "type": "conversion", "version": 1, "ts": NOW, "goal": "purchase", "value": 3}


not_str = json_values.filter(lambda v: not isinstance(v, str))
not_int = json_values.filter(lambda v: not isinstance(v, int) or isinstance(v, bool))
not_number = json_values.filter(lambda v: not isinstance(v, (int, float)) or isinstance(v, bool))
not_bool = json_values.filter(lambda v: not isinstance(v, bool))
WRONG_TYPE = {"id": not_str, "type": not_str, "campaign": not_str, "variation": not_str, "goal": not_str,
              "version": not_int, "ts": not_int, "value": not_number, "holdout": not_bool, "extra": json_values}
REQUIRED = {"id", "type", "version", "ts", "campaign", "variation", "goal"}


@st.composite
def broken_events(draw):
    """A valid event with one field of the wrong type, a required field removed, or an unknown field."""
    event = dict(draw(st.sampled_from([VALID_EXPOSURE, VALID_CONVERSION])))
    field = draw(st.sampled_from(sorted(set(event) | {"extra"})))
    if field in REQUIRED and draw(st.booleans()):
        del event[field]
    else:
        event[field] = draw(WRONG_TYPE[field])
    return event


def _assert_refused(app, body):
    before = snapshot(app)
    response = app.test_client().post(URL, data=body, headers={"Content-Type": "text/plain"})
    assert 400 <= response.status_code < 500, (response.status_code, body[:200])
    assert response.get_json()["error"]
    assert snapshot(app) == before


@FUZZ
@given(st.binary(max_size=300))
def test_random_bytes(fuzz_app, body):
    _assert_refused(fuzz_app, body)


@FUZZ
@given(json_values)
def test_random_json(fuzz_app, value):
    _assert_refused(fuzz_app, json.dumps(value).encode())


@FUZZ
@given(st.lists(broken_events(), min_size=1, max_size=3), st.booleans())
def test_valid_batches_with_a_broken_event(fuzz_app, bad, valid_first):
    # Whatever the visitor, a batch holding any junk is refused whole.
    events = ([dict(VALID_EXPOSURE, id="fuzz-ok-0001")] if valid_first else []) + bad
    for i, e in enumerate(events):
        if isinstance(e.get("id"), str) and e["id"].startswith("fuzz-event"):
            e["id"] = f"fuzz-event-{i}"
    _assert_refused(fuzz_app, json.dumps({"visitor_id": "visitor-00000", "events": events}).encode())
