"""Forms ↔ config: a campaign's form fields to its JSON and back, the segment builder's rows to a
condition, and the server's problems (JSON pointers) placed beside the fields that show them."""
import json
import re
from functools import lru_cache

from jinja2 import Undefined

from server.accounts.users import role_allows
from server.configs.attributes import REGISTRY

ACTION_KINDS = [  # (kind, label, label of its value field or None, needs a selector)
    ("text", "Replace text", "Text", True), ("html", "Replace HTML", "HTML", True),
    ("attr", "Set an attribute", "Attribute value", True), ("addClass", "Add classes", "Classes", True),
    ("removeClass", "Remove classes", "Classes", True), ("style", "Inline style", "CSS declarations", True),
    ("hide", "Hide", None, True), ("remove", "Remove", None, True),
    ("insertBefore", "Insert HTML before", "HTML", True), ("insertAfter", "Insert HTML after", "HTML", True),
    ("append", "Append HTML inside", "HTML", True), ("css", "Add a stylesheet", "Stylesheet", False),
    ("redirect", "Redirect to", "URL", False),
]
KIND_FIELDS = {kind: (value_label, selector) for kind, _, value_label, selector in ACTION_KINDS}
TRIGGERS = [("", "On page load"), ("scroll", "Scroll depth (%)"), ("time_on_page", "Time on page (s)"),
            ("exit_intent", "Exit intent"), ("idle", "Idle for (s)"), ("event", "After a tracked event")]
_INT = re.compile(r"-?[0-9]{1,12}\Z")
_NUMBER = re.compile(r"-?[0-9]{1,12}(\.[0-9]{1,12})?\Z")


def number(text, integer=False):
    """A form's number as JSON wants it; text that is no number stays text, so that validation
    names the field ("'abc' is not of type 'integer'")."""
    text = text.strip()
    if _INT.match(text):
        return int(text)
    if not integer and _NUMBER.match(text):
        return float(text)
    return text


def role_allows_edit(role):
    return role_allows(role, "editor")


class FormProblems(list):
    """Problems found reading the form itself (JSON that does not parse), as {path, message}."""

    def json_field(self, text, path):
        text = text.strip()
        if not text:
            return None
        try:
            return json.loads(text)
        except ValueError as e:
            self.append({"path": path, "message": f"not valid JSON: {e}"})
            return None


def _indexes(form, pattern):
    found = set()
    for name in form:
        match = re.fullmatch(pattern, name)
        if match:
            found.add(int(match.group(1)))
    return sorted(found)


def campaign_from_form(form, at, problems):
    """The campaign dict of a submitted form; `at` is its JSON pointer (/campaigns/<i>)."""
    get = lambda name: form.get(name, "")  # noqa: E731
    campaign = {"key": get("key").strip()}
    for name in ("name", "type", "status", "segment", "group", "seed"):
        if get(name).strip():
            campaign[name] = get(name).strip()
    for name in ("pages", "conditions"):
        value = problems.json_field(get(name), f"{at}/{name}")
        if value is not None:
            campaign[name] = value
    trigger = get("trigger_kind")
    if trigger == "exit_intent":
        campaign["trigger"] = {"exit_intent": True}
    elif trigger == "event":
        campaign["trigger"] = {"event": get("trigger_value").strip()}
    elif trigger in ("scroll", "time_on_page", "idle"):
        campaign["trigger"] = {trigger: number(get("trigger_value"))}
    if get("priority").strip():
        campaign["priority"] = number(get("priority"), integer=True)
    if get("traffic").strip():
        campaign["traffic"] = number(get("traffic"))
    if get("bucket_by") == "customer":  # visitor is the default: left out
        campaign["bucket_by"] = "customer"
    if get("schedule_start").strip() or get("schedule_end").strip():
        campaign["schedule"] = {"start": get("schedule_start").strip() or None, "end": get("schedule_end").strip() or None}
    cap = {name: number(get(f"cap_{name}"), integer=True) for name in ("per_visitor", "per_session")
           if get(f"cap_{name}").strip()}
    if cap:
        campaign["cap"] = cap
    campaign["variations"] = [_variation(form, j) for j in _indexes(form, r"v([0-9]+)_key")]
    goals = form.getlist("goals")
    if goals:
        campaign["goals"] = goals
    return campaign


def _variation(form, j):
    variation = {"key": form.get(f"v{j}_key", "").strip()}
    if form.get(f"v{j}_name", "").strip():
        variation["name"] = form[f"v{j}_name"].strip()
    if form.get(f"v{j}_weight", "").strip():
        variation["weight"] = number(form[f"v{j}_weight"])
    actions = [_action(form, f"v{j}_a{k}") for k in _indexes(form, rf"v{j}_a([0-9]+)_kind")]
    variation["actions"] = [a for a in actions if a is not None]
    return variation


def _action(form, prefix):
    kind = form.get(f"{prefix}_kind", "")
    if kind not in KIND_FIELDS:
        return None
    value_label, needs_selector = KIND_FIELDS[kind]
    action = {}
    selector = form.get(f"{prefix}_selector", "").strip()
    if needs_selector or selector:
        action["selector"] = selector
    value = form.get(f"{prefix}_value", "")
    if kind in ("hide", "remove"):
        action[kind] = True
    elif kind == "attr":
        action["attr"] = {form.get(f"{prefix}_attr", "").strip(): value}
    else:
        action[kind] = value
    return action


def apply_op(campaign, op):
    """The edit an add/remove button asks for, made on the campaign dict before it is shown again."""
    variations = campaign.setdefault("variations", [])
    name, _, args = op.partition(":")
    numbers = [int(n) for n in args.split(":") if n.isdecimal()]
    if name == "add-variation":
        keys = {v.get("key") for v in variations}
        n = len(variations) + 1
        while f"variation-{n}" in keys:
            n += 1
        variations.append({"key": "control" if not variations else f"variation-{n}", "actions": []})
    elif name == "remove-variation" and numbers and numbers[0] < len(variations):
        del variations[numbers[0]]
    elif name == "add-action" and numbers and numbers[0] < len(variations):
        variations[numbers[0]].setdefault("actions", []).append({"selector": "", "text": ""})
    elif name == "remove-action" and len(numbers) == 2 and numbers[0] < len(variations):
        actions = variations[numbers[0]].get("actions", [])
        if numbers[1] < len(actions):
            del actions[numbers[1]]
    return campaign


def action_row(action):
    """(kind, selector, attribute name, value) of an action dict, for the form."""
    kind = next((k for k in KIND_FIELDS if k in action), "text")
    value = action.get(kind, "")
    attr = ""
    if kind == "attr" and isinstance(value, dict) and value:
        attr, value = next(iter(value.items()))
    if kind in ("hide", "remove") or value is None:
        value = ""
    if not isinstance(value, str):
        value = json.dumps(value)
    return kind, action.get("selector", ""), attr, value


def trigger_fields(trigger):
    if not isinstance(trigger, dict) or not trigger:
        return "", ""
    kind, value = next(iter(trigger.items()))
    return kind, "" if value is True else value


def pretty(value):
    """JSON for a textarea; nothing for a missing value (None, or a template's undefined)."""
    return "" if value is None or isinstance(value, Undefined) else json.dumps(value, indent=2, ensure_ascii=False)


def place(problems, shown):
    """{path: [messages]} with each problem at the nearest path (itself or an ancestor) that the
    page shows a field for; `shown` is that set of paths. Problems no field shows are still in the
    page's summary, which lists them all."""
    placed = {}
    for problem in problems:
        path = problem["path"]
        while path and path not in shown:
            path = path.rpartition("/")[0]
        if path in shown:
            placed.setdefault(path, []).append(problem["message"])
    return placed


def campaign_paths(campaign, at):
    """Every path the campaign form shows a field (or a group) for."""
    paths = {f"{at}/{name}" for name in ("key", "name", "type", "status", "segment", "pages", "conditions", "trigger",
                                         "priority", "group", "seed", "traffic", "bucket_by", "schedule/start", "schedule/end",
                                         "cap/per_visitor", "cap/per_session", "goals", "variations")}
    for j, variation in enumerate(campaign.get("variations", [])):
        paths |= {f"{at}/variations/{j}/{name}" for name in ("key", "name", "weight", "actions")}
        for k, action in enumerate(variation.get("actions", []) if isinstance(variation, dict) else []):
            base = f"{at}/variations/{j}/actions/{k}"
            kind = action_row(action)[0] if isinstance(action, dict) else "text"
            paths |= {base, f"{base}/selector", f"{base}/{kind}"}
    return paths


# The segment builder: rows of (attribute, operator, value) over the registry.

OPERATORS = {  # operator -> (label, how the value is read)
    "$eq": ("is", "scalar"), "$ne": ("is not", "scalar"), "$in": ("is one of", "list"),
    "$ini": ("is one of, ignoring case", "list"), "$nin": ("is none of", "list"),
    "$regex": ("matches the regex", "text"), "$regexi": ("matches the regex, ignoring case", "text"),
    "$gt": ("is greater than", "number"), "$gte": ("is at least", "number"), "$lt": ("is less than", "number"),
    "$lte": ("is at most", "number"), "$exists": ("is present", "boolean"), "$all": ("contains all of", "list"),
    "$size": ("has this many items", "number"),
}
OPERATORS_BY_TYPE = {
    "string": ["$eq", "$ne", "$in", "$ini", "$nin", "$regex", "$regexi", "$exists"],
    "number": ["$eq", "$ne", "$gt", "$gte", "$lt", "$lte", "$in", "$exists"],
    "boolean": ["$eq", "$ne", "$exists"],
    "array": ["$all", "$size", "$exists"],
    "any": ["$eq", "$ne", "$in", "$nin", "$gt", "$lt", "$regex", "$exists"],
}


@lru_cache(maxsize=1)
def attributes():
    """The registry's entries for the builder: name, type, description, example, and whether
    the name has a part the user fills in (page.query.<key>, user.*)."""
    entries = json.loads(REGISTRY.read_text("utf-8"))["attributes"]
    out = []
    for entry in entries:
        name = entry["name"]
        out.append({**entry, "open": "<" in name or name.endswith(".*"),
                    "example_text": json.dumps(entry["example"], ensure_ascii=False)})
    return out


def attribute(name):
    return next((a for a in attributes() if a["name"] == name), None)


def filled_name(entry, part):
    """The attribute's name with the user's part in its open place (page.query.<key> + color)."""
    name = entry["name"]
    if "<" in name:
        return re.sub(r"<[^>]+>", part.strip() or "_", name)
    if name.endswith(".*"):
        return name[:-1] + (part.strip() or "_")
    return name


def _typed(text, kind):
    text = text.strip()
    if kind == "number":
        value = number(text)
        return value
    if kind == "boolean":
        return text.lower() not in ("false", "0", "no", "")
    if kind == "list":
        return [_scalar(item) for item in text.split(",") if item.strip()]
    return text


def _scalar(text):
    text = text.strip()
    if text in ("true", "false"):
        return text == "true"
    value = number(text)
    return value


def row_condition(entry, part, operator, value):
    """One builder row as a condition, or None when it is incomplete."""
    if entry is None or operator not in OPERATORS:
        return None
    name = filled_name(entry, part)
    kind = OPERATORS[operator][1]
    if kind == "scalar":
        typed = _scalar(value) if entry["type"] in ("number", "boolean", "any") else value.strip()
        if entry["type"] == "boolean":
            typed = value.strip().lower() in ("true", "1", "yes")
        return {name: typed} if operator == "$eq" else {name: {operator: typed}}
    return {name: {operator: _typed(value, kind)}}


def builder_rows(form):
    """The rows of a submitted builder: [{attribute, part, operator, value}]."""
    rows = []
    for n in _indexes(form, r"r([0-9]+)_attribute"):
        rows.append({"attribute": form.get(f"r{n}_attribute", ""), "part": form.get(f"r{n}_part", ""),
                     "operator": form.get(f"r{n}_operator", ""), "value": form.get(f"r{n}_value", "")})
    return rows


def rows_condition(rows, match):
    conditions = [c for c in (row_condition(attribute(r["attribute"]), r["part"], r["operator"], r["value"])
                              for r in rows) if c is not None]
    if not conditions:
        return {}
    if len(conditions) == 1:
        return conditions[0]
    return {"$or" if match == "any" else "$and": conditions}


def condition_rows(condition):
    """Builder rows for a condition the builder could have made; None for anything else (edited as JSON)."""
    if not isinstance(condition, dict):
        return None
    match, parts = "all", [condition]
    if len(condition) == 1 and next(iter(condition)) in ("$and", "$or") and isinstance(next(iter(condition.values())), list):
        match = "any" if "$or" in condition else "all"
        parts = next(iter(condition.values()))
    rows = []
    for part in parts:
        if not isinstance(part, dict) or len(part) != 1:
            return None
        name, test = next(iter(part.items()))
        entry = _entry_for(name)
        if entry is None:
            return None
        if isinstance(test, dict):
            if len(test) != 1 or next(iter(test)) not in OPERATORS:
                return None
            operator, value = next(iter(test.items()))
        else:
            operator, value = "$eq", test
        text = ", ".join(_text(v) for v in value) if isinstance(value, list) else _text(value)
        rows.append({"attribute": entry["name"], "part": _part(entry, name), "operator": operator, "value": text})
    return match, rows


def _text(value):
    return json.dumps(value) if isinstance(value, bool) else str(value)


def _entry_for(name):
    exact = attribute(name)
    if exact is not None:
        return exact
    for entry in attributes():
        if entry["open"]:
            prefix = re.split(r"<|\*", entry["name"])[0]
            if name.startswith(prefix) and "." not in name[len(prefix):] or (entry["name"].endswith(".*") and name.startswith(prefix)):
                return entry
    return None


def _part(entry, name):
    if not entry["open"]:
        return ""
    prefix = re.split(r"<|\*", entry["name"])[0]
    return name[len(prefix):]
