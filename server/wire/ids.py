"""The site name and id formats of spec/schemas/ids.schema.json as compiled regexes: use
`.match(s)` (each pattern is anchored at both ends)."""
import re

from server.wire.schemas import definition


def _compiled(name):
    return re.compile(definition("ids", name)["pattern"])


SITE_RE = _compiled("site")
KEY_RE = _compiled("key")                          # campaign, variation, goal and segment keys
SLICE_RE = _compiled("slice")                      # an adaptive campaign's slice, on exposures
VISITOR_ID_RE = _compiled("visitor_id")            # what the SDK makes and collect accepts
EVENT_ID_RE = _compiled("event_id")
CALLER_VISITOR_ID_RE = _compiled("caller_visitor_id")  # decide: the SDK's id or the caller's own
PRODUCT_ID_RE = _compiled("product_id")            # catalogue ids, in feeds, orders and item events
ORDER_ID_RE = _compiled("order_id")                # a purchase conversion's order
IDENTITY_RE = _compiled("identity")                # a signed identity from /identify, in collect batches
