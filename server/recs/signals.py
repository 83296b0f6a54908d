"""Browser signals for recommendations: collect's `item` events as interaction rows.

    {"id": "...", "type": "item", "action": "view" | "cart" | "purchase", "items": ["sku-1", ...],
     "session": 3, "ts": 1763900000000}

A view or cart belongs to the visitor's session `session` (co-views are counted within it); a
purchase event is one basket. The time kept is the server's (a browser's clock could be set to
the future to look trending). Ids not in the feed are kept but count for nothing until they are."""
import json
import time

_compact = json.JSONEncoder(separators=(",", ":")).encode


def interaction_rows(visitor_id, events, now=None):
    """[(key, ts, who, basket, action, items_json)] for the store, from validated item events."""
    now = time.time() if now is None else now
    who = f"v:{visitor_id}"
    rows = []
    for event in events:
        action = event["action"]
        basket = f"e:{event['id']}" if action == "purchase" else f"s:{visitor_id}:{event.get('session', 0)}"
        rows.append((event["id"], now, who, basket, action, _compact(list(dict.fromkeys(event["items"])))))
    return rows
