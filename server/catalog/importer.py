"""Importing a feed or an order history into the store, batch by batch, as its records are read.

Good records are stored even when others are refused; each refusal is listed with its line and
the JSON path of the field at fault (the first MAX_LISTED_ERRORS of them)."""
import json
import secrets

from server.catalog.orders import order_interaction
from server.catalog.products import item_id_problem, product_id, validate_product
from server.identity import site_secrets

BATCH = 1000
MAX_LISTED_ERRORS = 1000
_compact = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode
_TRUE = (True, "true", "1", "yes")


class _Answer:
    def __init__(self, **counts):
        self.counts = counts
        self.errors = []

    def refuse(self, line, problems):
        for problem in problems:
            if len(self.errors) < MAX_LISTED_ERRORS:
                self.errors.append({"line": line, "path": problem["path"], "message": problem["message"]})

    def as_dict(self):
        return {**self.counts, "errors": self.errors}


def import_products(store, site, lines, replace):
    """Store the products of `lines` ((line, record, problem) from server.catalog.feed.records).
    replace=True (PUT): the feed is the whole catalogue; products it does not hold are removed at
    the end, unless every record was refused. replace=False (PATCH): upserts, and records
    {"id": ..., "_delete": true} remove products. Returns {received, upserted, deleted, errors}."""
    answer = _Answer(received=0, upserted=0, deleted=0)
    mark = secrets.token_hex(8) if replace else None
    pending, pending_kind = [], None

    def flush():
        nonlocal pending
        if pending_kind == "upsert":
            answer.counts["upserted"] += store.upsert_products(site, pending, mark=mark)
        elif pending_kind == "delete":
            answer.counts["deleted"] += store.delete_products(site, pending)
        pending = []

    for line, record, problem in lines:
        answer.counts["received"] += 1
        if problem:
            answer.refuse(line, [problem])
            continue
        kind, item = _operation(record, replace, answer, line)
        if kind is None:
            continue
        if kind != pending_kind or len(pending) >= BATCH:
            flush()
            pending_kind = kind
        pending.append(item)
    flush()
    if replace and (answer.counts["upserted"] or not answer.counts["received"]):
        answer.counts["deleted"] += store.delete_products_unmarked(site, mark)
    if answer.counts["upserted"] or answer.counts["deleted"]:
        store.touch_recs_inputs(site, "imports")
    return answer.as_dict()


def _operation(record, replace, answer, line):
    """("upsert", (id, json)) or ("delete", id), or (None, None) with the refusal noted."""
    if isinstance(record, dict) and "_delete" in record:
        if replace:
            answer.refuse(line, [{"path": "/_delete", "message": "deleting is for PATCH; a PUT replaces the whole catalogue"}])
            return None, None
        if record["_delete"] in _TRUE:
            pid = product_id(record)
            problem = item_id_problem(pid)
            if problem:
                answer.refuse(line, [{"path": "/id", "message": problem}])
                return None, None
            return "delete", pid
    product, problems = validate_product(record)
    if problems:
        answer.refuse(line, problems)
        return None, None
    return "upsert", (product["id"], _compact(product))


def import_orders(store, site, lines, now=None):
    """Record the orders of `lines` as purchase interactions, idempotently on order_id.
    Returns {received, imported, duplicates, errors}."""
    answer = _Answer(received=0, imported=0, duplicates=0)
    batch = []

    def flush():
        new = store.record_interactions(site, batch) if batch else 0
        answer.counts["imported"] += new
        answer.counts["duplicates"] += len(batch) - new
        batch.clear()

    seen_here, salt = set(), None
    for line, record, problem in lines:
        answer.counts["received"] += 1
        if problem:
            answer.refuse(line, [problem])
            continue
        row, problems = order_interaction(record, now)
        if problems:
            answer.refuse(line, problems)
            continue
        if row[2].startswith("c:"):  # customer ids are kept as the site's customer keys, never raw
            salt = salt or site_secrets.load_record(site, store)["salt"]
            row = (*row[:2], "c:" + site_secrets.customer_key(site, row[2][2:], salt), *row[3:])
        if row[0] in seen_here:  # the same order twice in one body: the store would see it once
            answer.counts["duplicates"] += 1
            continue
        seen_here.add(row[0])
        batch.append(row)
        if len(batch) >= BATCH:
            flush()
    flush()
    if answer.counts["imported"]:
        store.touch_recs_inputs(site, "imports")
    return answer.as_dict()
