"""What publishing the draft would change against the live version, for people: campaigns added,
removed and changed (each with a unified diff of its compiled JSON), and the segments, goals and
settings that differ. Compiled forms are compared, so defaults spelled out or left out, and
draft or paused campaigns (never delivered), change nothing."""
import difflib
import json

from server.configs.compiler import compile_bundle


def _lines(value):
    return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False).splitlines()


def _diff(before, after, name):
    return "\n".join(difflib.unified_diff(_lines(before), _lines(after), f"live {name}", f"draft {name}", lineterm=""))


def changes(site, live_bundle, draft_config):
    """{added, removed, changed: [{key, diff}], others: [{what, diff}], any: bool}."""
    draft = compile_bundle(site, 0, draft_config)
    live = live_bundle or {"campaigns": [], "segments": {}, "goals": {}, "settings": {}}
    before = {c["key"]: c for c in live["campaigns"]}
    after = {c["key"]: c for c in draft["campaigns"]}
    changed = [{"key": key, "diff": _diff(before[key], after[key], key)}
               for key in after if key in before and before[key] != after[key]]
    order_before = [k for k in before if k in after]
    order_after = [k for k in after if k in before]
    others = [{"what": what, "diff": _diff(live.get(what), draft.get(what), what)}
              for what in ("segments", "goals", "settings") if live.get(what) != draft.get(what)]
    if order_before != order_after:
        others.append({"what": "decision order", "diff": _diff(order_before, order_after, "order")})
    result = {"added": [k for k in after if k not in before], "removed": [k for k in before if k not in after],
              "changed": changed, "others": others}
    result["any"] = any(result.values())
    return result
