"""One past order of the order history: validated, then kept as a purchase interaction.

`{"order_id", "ts", "visitor_id" or "customer_id", "items": [{"id", "quantity", "price"}]}`:
`ts` is milliseconds since 1970 or an ISO 8601 time (default: now); `quantity` defaults to 1 and
`price` is optional. Other fields are ignored. Recommendations read which items were bought
together and by whom; quantities and prices are checked, not stored."""
import json
import math
import re
import time
from datetime import datetime, timezone

from server.catalog.products import item_id_problem

MAX_ITEMS = 200
MAX_QUANTITY = 100_000
MIN_TS_S = 946_684_800  # 2000-01-01
_NAME_RE = re.compile(r"^[^\x00-\x1f\x7f]{1,128}\Z")
_compact = json.JSONEncoder(separators=(",", ":")).encode


def _p(path, message):
    return {"path": path, "message": message}


def _name(record, field, problems):
    value = record.get(field)
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or not _NAME_RE.match(value):
        problems.append(_p(f"/{field}", "must be 1 to 128 characters, without control characters"))
        return None
    return value


def _timestamp(value, now, problems):
    """Seconds since 1970 from milliseconds or ISO 8601; not before 2000 nor in the future."""
    if value is None:
        return now
    seconds = None
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        seconds = value / 1000
    elif isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            parsed = None
        if parsed is not None:
            seconds = (parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)).timestamp()
    if seconds is None:
        problems.append(_p("/ts", "must be milliseconds since 1970 or an ISO 8601 time"))
    elif not MIN_TS_S <= seconds <= now + 86_400:
        problems.append(_p("/ts", "must be after 2000 and not in the future"))
    else:
        return seconds
    return None


def _items(value, problems):
    if not isinstance(value, list) or not 1 <= len(value) <= MAX_ITEMS:
        problems.append(_p("/items", f"must be a list of 1 to {MAX_ITEMS} items"))
        return []
    ids = []
    for i, item in enumerate(value):
        at = f"/items/{i}"
        if not isinstance(item, dict):
            problems.append(_p(at, "must be an object {id, quantity, price}"))
            continue
        pid = str(item["id"]) if isinstance(item.get("id"), int) and not isinstance(item["id"], bool) else item.get("id")
        problem = item_id_problem(pid)
        if problem:
            problems.append(_p(at + "/id", problem))
        else:
            ids.append(pid)
        quantity = item.get("quantity", 1)
        if isinstance(quantity, bool) or not isinstance(quantity, int) or not 1 <= quantity <= MAX_QUANTITY:
            problems.append(_p(at + "/quantity", f"must be an integer from 1 to {MAX_QUANTITY}"))
        price = item.get("price", 0)
        if isinstance(price, bool) or not isinstance(price, (int, float)) or not math.isfinite(price) \
                or not 0 <= price < 1e12:
            problems.append(_p(at + "/price", "must be a number, at least 0"))
    return list(dict.fromkeys(ids))


def order_interaction(record, now=None):
    """((key, ts, who, basket, action, items_json), []) for a valid order, else (None, problems)."""
    now = time.time() if now is None else now
    if not isinstance(record, dict):
        return None, [_p("", "must be an object {order_id, ts, visitor_id or customer_id, items}")]
    problems = []
    order_id = _name(record, "order_id", problems)
    ts = _timestamp(record.get("ts"), now, problems)
    who = None
    if ("visitor_id" in record) == ("customer_id" in record):
        problems.append(_p("", "must have exactly one of visitor_id and customer_id"))
    else:
        field = "visitor_id" if "visitor_id" in record else "customer_id"
        name = _name(record, field, problems)
        who = name and f"{field[0]}:{name}"
    ids = _items(record.get("items"), problems)
    if problems:
        return None, problems
    key = f"o:{order_id}"
    return (key, ts, who, key, "purchase", _compact(ids)), []
