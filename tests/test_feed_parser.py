"""The feed parser against malformed input (Hypothesis): it never raises, every good record is
stored, every bad one is refused alone with the line it starts on, in every format."""
import csv
import io
import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from server.catalog import feed
from server.catalog.importer import import_products
from server.store.sqlite import SQLiteStore


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return SQLiteStore(str(tmp_path_factory.mktemp("feed") / "store.sqlite3"))


def good(i):
    return {"id": f"p-{i}", "title": f"Product {i}", "link": f"https://s.example/{i}", "price": f"{i}.50 EUR",
            "availability": "in_stock"}


text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=30)
odd_values = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), text,
                       st.lists(st.integers(), max_size=2), st.dictionaries(text, st.integers(), max_size=2))
bad_fields = st.dictionaries(st.sampled_from(["id", "title", "link", "image_link", "price", "sale_price", "currency",
                                              "availability", "brand", "product_type", "custom_label_0"]),
                             odd_values, min_size=1, max_size=3)


@st.composite
def records(draw):
    """A list of ("good", record) / ("bad", record) / ("junk", text) in order."""
    out = []
    for i in range(draw(st.integers(0, 12))):
        kind = draw(st.sampled_from(["good", "bad", "junk"]))
        if kind == "good":
            out.append(("good", good(i)))
        elif kind == "bad":
            record = {**good(i), **draw(bad_fields)}
            out.append(("maybe", record))
        else:
            out.append(("junk", draw(text.filter(lambda t: "\n" not in t and "\r" not in t))))
    return out


def _stored(store, site):
    return {pid for pid, _ in store.list_products(site, "", 1000)}


def _check(store, site, answer, expected_good_lines, expected_bad_lines, good_ids):
    refused = {e["line"] for e in answer["errors"]}
    assert refused == expected_bad_lines
    assert answer["upserted"] == len(expected_good_lines)
    assert good_ids <= _stored(store, site)


def _classify(store, site, items, line_of):
    """Expected (good lines, bad lines, ids) from the product validator's own verdict."""
    from server.catalog.products import validate_product
    good_lines, bad_lines, ids = set(), set(), set()
    for n, (kind, value) in enumerate(items):
        line = line_of(n)
        if kind == "junk":
            try:
                value = json.loads(value)
            except ValueError:
                bad_lines.add(line)
                continue
        product, problems = validate_product(value)
        (bad_lines if problems else good_lines).add(line)
        if not problems:
            ids.add(product["id"])
    return good_lines, bad_lines, ids


counter = iter(range(10**9))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(items=records())
def test_json_lines(store, items):
    site = f"jl{next(counter)}"
    lines = [json.dumps(value) if kind != "junk" else value for kind, value in items]
    body = "\n".join(lines).encode()
    nonblank = [n for n, line in enumerate(lines) if line.encode().strip()]  # ASCII whitespace only, as JSON
    answer = import_products(store, site, feed.records(io.BytesIO(body), "application/x-ndjson"), replace=False)
    assert answer["received"] == len(nonblank)
    expected = _classify(store, site, [items[n] for n in nonblank], lambda k: nonblank[k] + 1)
    _check(store, site, answer, *expected)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(items=records(), indent=st.sampled_from([None, 1]))
def test_json_array_of_valid_json(store, items, indent):
    site = f"ja{next(counter)}"
    values = [value for kind, value in items if kind != "junk"]
    parts, lines_of = ["["], []
    for n, value in enumerate(values):
        prefix = "\n" if n or indent else ""
        lines_of.append("".join(parts).count("\n") + prefix.count("\n") + 1)
        parts.append(prefix + json.dumps(value, indent=indent) + ("," if n < len(values) - 1 else ""))
    parts.append("]")
    answer = import_products(store, site, feed.records(io.BytesIO("".join(parts).encode()), "application/json"),
                             replace=False)
    assert answer["received"] == len(values)
    expected = _classify(store, site, [("maybe", v) for v in values], lambda k: lines_of[k])
    _check(store, site, answer, *expected)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(items=records(), delimiter=st.sampled_from([",", "\t"]))
def test_csv_cells_with_quotes_commas_and_newlines(store, items, delimiter):
    site = f"cs{next(counter)}"
    columns = ["id", "title", "link", "price", "availability", "brand"]
    out = io.StringIO()
    writer = csv.writer(out, delimiter=delimiter, lineterminator="\n")
    writer.writerow(columns)
    lines_of, rows = [], []
    for kind, value in items:
        if kind == "junk" or not isinstance(value, dict):
            continue
        row = ["" if value.get(c) is None else str(value.get(c)) for c in columns]
        if any("\r" in cell for cell in row):
            continue  # csv.writer leaves a lone CR unquoted, which every reader takes for a line end
        if not any(cell.strip() for cell in row):
            continue
        lines_of.append(out.getvalue().count("\n") + 1)
        writer.writerow(row)
        rows.append(("maybe", {c: cell for c, cell in zip(columns, row) if cell != ""}))
    media = "text/csv" if delimiter == "," else "text/tab-separated-values"
    answer = import_products(store, site, feed.records(io.BytesIO(out.getvalue().encode()), media), replace=False)
    assert answer["received"] == len(rows)
    expected = _classify(store, site, rows, lambda k: lines_of[k])
    _check(store, site, answer, *expected)


@settings(max_examples=300, deadline=None)
@given(body=st.binary(max_size=300), media=st.sampled_from(feed.MEDIA_TYPES))
def test_random_bytes_never_raise(body, media):
    found = list(feed.records(io.BytesIO(body), media))
    for line, record, problem in found:
        assert isinstance(line, int) and line >= 1
        assert problem is None or (record is None and set(problem) == {"path", "message"})


@settings(max_examples=200, deadline=None)
@given(prefix=st.lists(st.sampled_from([good(1), good(2)]), max_size=3), tail=st.binary(max_size=80))
def test_a_json_array_broken_anywhere_keeps_the_elements_before(prefix, tail):
    body = ("[" + ",".join(json.dumps(p) for p in prefix) + ("," if prefix else "")).encode() + tail
    found = list(feed.records(io.BytesIO(body), "application/json"))
    assert [r for _, r, _ in found[:len(prefix)]] == prefix
