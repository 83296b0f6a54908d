"""CRM data: customers' attributes, imported from the merchant's CRM, typed, resolved for a
customer as the `crm` namespace conditions read, and erased on request.

A record is `{"customer_id": "..."}` or `{"email_sha256": "<64 hex>"}` followed by attributes:
`name: value`, where a name is 1 to 64 of `a-z 0-9 _` starting with a letter, and a value a string
(at most MAX_STRING characters), a finite number, a boolean, or a list of at most MAX_LIST strings
or numbers; `null` removes the attribute (PATCH). CSV cells are typed as they read: `true`/`false`,
a number written as JSON writes one and below 1e15 (`01234` and a 16-digit id stay strings), else
a string.
A string holding an ISO 8601 date (`2026-11-02`, `2026-11-02T10:00:00Z`) has type `date`, and every
date attribute `<x>_at` (or `<x>`) brings a derived number `days_since_<x>`, whole days from it to
the moment of the decision (so `{"crm.days_since_last_order": {"$gt": 90}}` finds lapsed customers).

Stored: `{"attributes": {...}, "updated_at": seconds}` under the customer key (site_secrets.py);
the statistics of names and types (`GET .../crm-attributes`, config validation) as one JSON
document per site, `{name: {type: customers}}`, kept up to date by every import and erasure (a
PUT recounts from the stored customers)."""
import json
import math
import re
import secrets
import time
from datetime import datetime, timezone

from server.identity import site_secrets
from server.identity.tokens import EMAIL_SHA256_RE, customer_id_problem
from server.store import get_store

BATCH = 1000
MAX_LISTED_ERRORS = 1000
MAX_ATTRIBUTES = 100
MAX_STRING = 1000
MAX_LIST = 50
NAME_RE = re.compile(r"^[a-z][a-z0-9_]{0,63}\Z")
ID_FIELDS = ("customer_id", "email_sha256")
_NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?")
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}(?:T[0-9]{2}:[0-9]{2}(?::[0-9]{2}(?:\.[0-9]{1,6})?)?"
                   r"(?:Z|[+-][0-9]{2}:[0-9]{2})?)?")
_compact = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode
DAY_MS = 86_400_000


def _p(path, message):
    return {"path": path, "message": message}


def parse_date(text):
    """A date or date-time string -> aware datetime (no offset: UTC), or None."""
    if not isinstance(text, str) or not _DATE.fullmatch(text):
        return None
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def value_type(value):
    """string, number, boolean, date or list."""
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, list):
        return "list"
    return "date" if parse_date(value) else "string"


def _cell(text):
    """A CSV cell as the value it writes."""
    if text in ("true", "false"):
        return text == "true"
    if _NUMBER.fullmatch(text) and abs(float(text)) < 1e15:  # longer digit strings are ids, kept as text
        number = float(text)
        return int(text) if "." not in text and "e" not in text.lower() else number
    return text


def _value_problem(value):
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (int, float)):
        return None if math.isfinite(value) and abs(value) < 1e15 else "must be a finite number below 1e15"
    if isinstance(value, str):
        return None if len(value) <= MAX_STRING else f"must be at most {MAX_STRING} characters"
    if isinstance(value, list):
        if len(value) > MAX_LIST or not all(isinstance(x, str) and len(x) <= MAX_STRING or
                                            isinstance(x, (int, float)) and not isinstance(x, bool)
                                            and math.isfinite(x) for x in value):
            return f"must be a list of at most {MAX_LIST} strings or numbers"
        return None
    return "must be a string, a number, a boolean, a list or null"


def attributes_problems(attributes, at=""):
    """Problems of an attribute object (import record or token claim), each with its path."""
    problems = []
    if len(attributes) > MAX_ATTRIBUTES:
        problems.append(_p(at, f"at most {MAX_ATTRIBUTES} attributes"))
    for name, value in attributes.items():
        if not isinstance(name, str) or not NAME_RE.match(name):
            problems.append(_p(f"{at}/{name}", "an attribute name is 1 to 64 of a-z 0-9 _, starting with a letter"))
            continue
        if name.startswith("days_since_"):
            problems.append(_p(f"{at}/{name}", "days_since_* attributes are derived from dates: send the date"))
            continue
        problem = _value_problem(value)
        if problem:
            problems.append(_p(f"{at}/{name}", problem))
    return problems


def parse_record(record, typed_cells):
    """(key field, id, attributes, problems) of one imported record."""
    if not isinstance(record, dict):
        return None, None, None, [_p("", "must be an object {customer_id or email_sha256, attributes...}")]
    if typed_cells:
        record = {k: (_cell(v) if k not in ID_FIELDS and isinstance(v, str) else v) for k, v in record.items()}
    given = [f for f in ID_FIELDS if f in record]
    if len(given) != 1:
        return None, None, None, [_p("", "must have exactly one of customer_id and email_sha256")]
    field = given[0]
    value = record[field]
    if isinstance(value, int) and not isinstance(value, bool) and field == "customer_id":
        value = str(value)
    problem = customer_id_problem(value) if field == "customer_id" else (
        None if isinstance(value, str) and EMAIL_SHA256_RE.match(value) else "must be 64 hex digits (SHA-256 of "
                                                                              "the lowercased, trimmed email)")
    attributes = {k: v for k, v in record.items() if k != field}
    problems = ([_p(f"/{field}", problem)] if problem else []) + attributes_problems(attributes)
    return field, value, attributes, problems


def key_for(site, field, value, salt):
    if field == "customer_id":
        return site_secrets.customer_key(site, value, salt)
    return site_secrets.email_key(site, value, salt)


class _Answer:
    def __init__(self, **counts):
        self.counts, self.errors = counts, []

    def refuse(self, line, problems):
        for problem in problems:
            if len(self.errors) < MAX_LISTED_ERRORS:
                self.errors.append({"line": line, **problem})

    def as_dict(self):
        return {**self.counts, "errors": self.errors}


def _types(attributes):
    return {name: value_type(value) for name, value in attributes.items()}


class _Statistics:
    """{name: {type: customers}} with deltas applied as records change."""

    def __init__(self, document):
        self.counts = document

    def change(self, before, after):
        for name, kind in _types(before).items():
            left = self.counts.get(name, {}).get(kind, 0) - 1
            if left > 0:
                self.counts[name][kind] = left
            else:
                self.counts.get(name, {}).pop(kind, None)
                if name in self.counts and not self.counts[name]:
                    del self.counts[name]
        for name, kind in _types(after).items():
            self.counts.setdefault(name, {})[kind] = self.counts.get(name, {}).get(kind, 0) + 1


def statistics(site):
    raw = get_store().get_crm_schema(site)
    return json.loads(raw) if raw else {}


def import_customers(store, site, lines, replace, typed_cells=False):
    """Store the customers of `lines` ((line, record, problem) from server.catalog.feed.records;
    typed_cells: CSV, whose cells are all text, typed as the module says). replace=True (PUT): the body is every customer; customers
    it does not hold are removed (not erased: their events stay), unless every record was refused.
    replace=False (PATCH): attributes are merged into the stored ones (null removes one).
    Returns {received, upserted, removed, errors}."""
    answer = _Answer(received=0, upserted=0, removed=0)
    salt = site_secrets.salt(site)
    mark = secrets.token_hex(8) if replace else None
    stats = _Statistics({} if replace else statistics(site))
    pending = {}  # key -> attributes given, in arrival order (a later record of the same key wins)

    def flush():
        if not pending:
            return
        stored = {k: json.loads(v)["attributes"] for k, v in store.get_customers(site, list(pending)).items()}
        now, rows = time.time(), []
        for key, given in pending.items():
            before = stored.get(key, {})
            after = {k: v for k, v in given.items() if v is not None} if replace else \
                {k: v for k, v in {**before, **given}.items() if v is not None}
            if not replace:
                stats.change(before, after)
            rows.append((key, _compact({"attributes": after, "updated_at": now})))
        answer.counts["upserted"] += store.upsert_customers(site, rows, mark=mark)
        pending.clear()

    for line, record, problem in lines:
        answer.counts["received"] += 1
        if problem:
            answer.refuse(line, [problem])
            continue
        field, value, attributes, problems = parse_record(record, typed_cells)
        if problems:
            answer.refuse(line, problems)
            continue
        key = key_for(site, field, value, salt)
        pending[key] = {**pending.get(key, {}), **attributes} if not replace else attributes
        if len(pending) >= BATCH:
            flush()
    flush()
    if replace and (answer.counts["upserted"] or not answer.counts["received"]):
        answer.counts["removed"] = store.delete_customers_unmarked(site, mark)
        for _, body in store.iter_customers(site):
            stats.change({}, json.loads(body)["attributes"])
    if answer.counts["upserted"] or answer.counts["removed"]:
        store.save_crm_schema(site, json.dumps(stats.counts, sort_keys=True))
    return answer.as_dict()


def with_derived(attributes, now_ms):
    """The attributes and, for each date, its `days_since_*` at now_ms."""
    out = dict(attributes)
    for name, value in attributes.items():
        when = parse_date(value)
        if when is not None:
            base = name[:-3] if name.endswith("_at") and len(name) > 3 else name
            out.setdefault(f"days_since_{base}", math.floor((now_ms - when.timestamp() * 1000) / DAY_MS))
    return out


def resolve(site, customer_id=None, email_sha256=None, claims=None, now_ms=None, wanted=None):
    """(the customer's crm attributes, whether any is stored): stored by email, then by customer id,
    then the token's claims, each over the one before; with derived values; only the names in
    `wanted` (the bundle's `crm` list; "*" or None: all)."""
    salt = site_secrets.salt(site)
    keys = ([site_secrets.email_key(site, email_sha256, salt)] if email_sha256 else []) + \
        ([site_secrets.customer_key(site, customer_id, salt)] if customer_id is not None else [])
    found = get_store().get_customers(site, keys) if keys else {}
    merged = {}
    for key in keys:
        if key in found:
            merged.update(json.loads(found[key])["attributes"])
    merged.update({k: v for k, v in (claims or {}).items() if v is not None})
    out = with_derived(merged, time.time() * 1000 if now_ms is None else now_ms)
    if wanted is not None and "*" not in wanted:
        out = {k: v for k, v in out.items() if k in wanted}
    return out, bool(found)


def describe(site):
    """What GET .../crm-attributes answers: every attribute with its type and how many customers
    have it, derived ones included."""
    listed = []
    for name, types in sorted(statistics(site).items()):
        kind = next(iter(types)) if len(types) == 1 else "mixed"
        listed.append({"name": f"crm.{name}", "type": kind, "types": types, "customers": sum(types.values())})
        if "date" in types:
            base = name[:-3] if name.endswith("_at") and len(name) > 3 else name
            listed.append({"name": f"crm.days_since_{base}", "type": "number", "derived_from": f"crm.{name}",
                           "customers": types["date"]})
    return {"site": site, "customers": get_store().count_customers(site), "attributes": listed}


def known_types(site):
    """{"crm.<name>": type or "mixed"} for config validation."""
    return {entry["name"]: entry["type"] for entry in describe(site)["attributes"]}


def stored(site, customer_id=None, email_sha256=None):
    """The stored record {"attributes", "updated_at"} of a customer id or email hash, or None."""
    key = site_secrets.customer_key(site, customer_id) if customer_id is not None else \
        site_secrets.email_key(site, email_sha256)
    raw = get_store().get_customers(site, [key]).get(key)
    return json.loads(raw) if raw else None


def erase(site, customer_id, email_sha256=None):
    """Erase a customer: the attributes stored under their id (and email hash, when given), the
    browsers identified as them (identity links), and every raw event and interaction of those
    browsers and of the customer key; counters stay, as aggregates. Returns what was removed."""
    store = get_store()
    salt = site_secrets.salt(site)
    keys = [site_secrets.customer_key(site, customer_id, salt)] + \
        ([site_secrets.email_key(site, email_sha256, salt)] if email_sha256 else [])
    visitors = store.linked_visitors(site, keys[0])
    records = store.get_customers(site, keys)
    if records:
        stats = _Statistics(statistics(site))
        for body in records.values():
            stats.change(json.loads(body)["attributes"], {})
        store.save_crm_schema(site, json.dumps(stats.counts, sort_keys=True))
    # the raw id as well: order histories imported before ids were hashed name it (c:<id>)
    erased = store.erase_units(site, keys, [keys[0], customer_id, *visitors])
    return {"customers": erased["customers"], "visitors": len(visitors), "events": erased["events"],
            "interactions": erased["interactions"]}
