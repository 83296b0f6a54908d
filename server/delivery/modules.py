"""Which optional SDK modules a published bundle needs in its tag.js (docs/DESIGN.md "Modules").

One rule per module, by the name sdk_js/build.mjs gives its file (dist/manifest.json). A bundle
that needs none gets the core alone."""
import re

# The behaviour the triggers module watches, which conditions may read too.
BEHAVIOUR_PATH = re.compile(r"page(?:\.(?:scroll|idle|exit_intent))?")


def condition_paths(condition):
    """The attribute paths a condition reads: its keys, through $and, $or, $nor and $not
    (sdk_js/src/context.js conditionPaths is the twin)."""
    if not isinstance(condition, dict):
        return []
    paths = []
    for key, value in condition.items():
        if key == "$not":
            paths += condition_paths(value)
        elif key in ("$and", "$or", "$nor"):
            for nested in value if isinstance(value, list) else []:
                paths += condition_paths(nested)
        else:
            paths.append(key)
    return paths


def reads(bundle, pattern):
    """Whether a campaign (pages, segment, conditions) or a page-view goal reads a path matching `pattern`."""
    segments = bundle.get("segments") or {}
    conditions = [c.get(field) for c in bundle.get("campaigns") or [] for field in ("pages", "conditions")]
    conditions += [segments.get(c["segment"]) for c in bundle.get("campaigns") or [] if c.get("segment") is not None]
    conditions += [goal.get("pageview") for goal in (bundle.get("goals") or {}).values() if isinstance(goal, dict)]
    return any(pattern.fullmatch(path) for condition in conditions for path in condition_paths(condition))


MODULES = {
    # known customers: a condition on crm.* (the compiler lists the names in the bundle's `crm`) or a
    # campaign bucketed by customer; the core's vitrina.identify() says so in the debug log otherwise
    "identity": lambda bundle: (bool(bundle.get("crm"))
                                or any(c.get("bucket_by") == "customer" for c in bundle.get("campaigns") or [])),
    # behavioural triggers, and the page behaviour (scroll, idle, exit intent) they share with conditions
    "triggers": lambda bundle: (any(c.get("trigger") is not None for c in bundle.get("campaigns") or [])
                                or reads(bundle, BEHAVIOUR_PATH)),
}


def modules_for(bundle):
    """The names of the modules `bundle` needs, sorted (tag.js joins them in this order)."""
    return sorted(name for name, needed in MODULES.items() if bundle and needed(bundle))
