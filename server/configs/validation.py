"""Site config validation: the shipped JSON Schema, then semantic checks. Every problem is
reported with its JSON pointer; nothing invalid gets stored."""
import json
import re
from functools import lru_cache
from html.parser import HTMLParser
from importlib import resources

from jsonschema import Draft202012Validator

OPERATORS = {
    "$eq", "$ne", "$in", "$nin", "$gt", "$gte", "$lt", "$lte", "$regex", "$exists", "$type", "$size",
    "$all", "$elemMatch", "$not", "$and", "$or", "$nor", "$ini", "$nini", "$alli", "$regexi",
    "$veq", "$vne", "$vgt", "$vgte", "$vlt", "$vlte",
}
REGEX_OPERATORS = {"$regex", "$regexi"}
SELECTOR_ACTIONS = {"text", "html", "attr", "addClass", "removeClass", "style", "hide", "remove",
                    "insertBefore", "insertAfter", "append"}
MAX_CONDITION_DEPTH = 12
URL_ATTRS = {"href", "src", "action", "formaction", "xlink:href", "srcdoc"}
HTML_FIELDS = ("html", "insertBefore", "insertAfter", "append")
SCRIPT_TAGS = {"script", "iframe", "object", "embed", "frame", "frameset", "base", "meta"}


def pointer(parts):
    return "/" + "/".join(str(p).replace("~", "~0").replace("/", "~1") for p in parts) if parts else ""


@lru_cache(maxsize=1)
def _validator():
    schema = json.loads(resources.files("server.configs").joinpath("schema/site-config.schema.json").read_text())
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


class DuplicateKey(ValueError):
    pass


def _no_duplicates(pairs):
    seen = {}
    for key, value in pairs:
        if key in seen:
            raise DuplicateKey(key)
        seen[key] = value
    return seen


def parse_config(raw):
    """Parse JSON text, refusing duplicate object keys; returns (config, problems)."""
    try:
        return json.loads(raw, object_pairs_hook=_no_duplicates), []
    except DuplicateKey as e:
        return None, [{"path": "", "message": f"duplicate key {str(e)!r} in a JSON object"}]
    except (ValueError, RecursionError) as e:
        return None, [{"path": "", "message": f"not valid JSON: {e}"}]


def validate_config(config):
    """Return the list of problems ({path, message}); empty means valid."""
    problems = [{"path": pointer(e.absolute_path), "message": e.message}
                for e in sorted(_validator().iter_errors(config), key=lambda e: list(map(str, e.absolute_path)))]
    if problems:
        return problems
    return _semantic_problems(config)


def _semantic_problems(config):
    problems = []

    def add(parts, message):
        problems.append({"path": pointer(parts), "message": message})

    segments = config.get("segments", {})
    goals = config.get("goals", {})
    for name, condition in segments.items():
        _check_condition(condition, ["segments", name], add)
    for name, goal in goals.items():
        if "pageview" in goal:
            _check_condition(goal["pageview"], ["goals", name, "pageview"], add)

    seen_keys = {}
    for i, campaign in enumerate(config.get("campaigns", [])):
        at = ["campaigns", i]
        key = campaign["key"]
        if key in seen_keys:
            add(at + ["key"], f"duplicate campaign key {key!r} (also at /campaigns/{seen_keys[key]})")
        seen_keys.setdefault(key, i)
        segment = campaign.get("segment")
        if segment is not None and segment not in segments:
            add(at + ["segment"], f"unknown segment {segment!r}")
        for field in ("conditions", "pages"):
            if campaign.get(field) is not None:
                _check_condition(campaign[field], at + [field], add)
        for j, goal in enumerate(campaign.get("goals", [])):
            if goal not in goals:
                add(at + ["goals", j], f"unknown goal {goal!r}")
        if campaign.get("type") == "experiment" and len(campaign["variations"]) < 2:
            add(at + ["variations"], "an experiment needs at least two variations")
        _check_schedule(campaign.get("schedule") or {}, at + ["schedule"], add)
        _check_variations(campaign["variations"], at + ["variations"], add)
    return problems


def _check_schedule(schedule, at, add):
    start, end = schedule.get("start"), schedule.get("end")
    if start and end:
        from datetime import datetime
        if datetime.fromisoformat(end.replace("Z", "+00:00")) <= datetime.fromisoformat(start.replace("Z", "+00:00")):
            add(at + ["end"], "the schedule ends before it starts")


def _check_variations(variations, at, add):
    keys = {}
    for j, variation in enumerate(variations):
        if variation["key"] in keys:
            add(at + [j, "key"], f"duplicate variation key {variation['key']!r}")
        keys.setdefault(variation["key"], j)
        for k, action in enumerate(variation.get("actions", [])):
            _check_action(action, at + [j, "actions", k], add)
    weighted = [v for v in variations if "weight" in v]
    if weighted and len(weighted) != len(variations):
        add(at, "give every variation a weight, or none (equal split)")
    elif weighted:
        total = sum(v["weight"] for v in variations)
        if abs(total - 1) > 1e-6:
            add(at, f"variation weights must sum to 1, they sum to {round(total, 6)}")


def _check_action(action, at, add):
    needs_selector = SELECTOR_ACTIONS & action.keys()
    if needs_selector and "selector" not in action:
        add(at, f"{', '.join(sorted(needs_selector))} needs a 'selector'")
    if not needs_selector and not ({"css", "redirect"} & action.keys()):
        add(at, "the action does nothing: give it text, html, attr, addClass, removeClass, style, hide, "
                "remove, insertBefore, insertAfter, append, css or redirect")
    if "redirect" in action and not _safe_url(action["redirect"]):
        add(at + ["redirect"], "redirect must be an http(s) URL or a path")
    for field in HTML_FIELDS:
        if field in action:
            problem = html_problem(action[field])
            if problem:
                add(at + [field], problem)
    for name, value in (action.get("attr") or {}).items():
        if name.lower() in URL_ATTRS and value is not None and not _safe_url(value):
            add(at + ["attr", name], f"{name} must be an http(s) URL, a path or a fragment")


class _ScriptFinder(HTMLParser):
    """Finds what would run as script once the SDK inserts merchant HTML: script-capable
    elements, on* handler attributes, and javascript:-style URLs."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.problem = None

    def handle_starttag(self, tag, attrs):
        if self.problem:
            return
        if tag in SCRIPT_TAGS:
            self.problem = f"<{tag}> is not allowed: inserted HTML never runs code"
        for name, value in attrs:
            if name.startswith("on"):
                self.problem = f"the event handler attribute {name}= is not allowed: inserted HTML never runs code"
            elif name in URL_ATTRS and value is not None and not _safe_url(value):
                self.problem = f"{name}= must be an http(s) URL, a path or a fragment"

    handle_startendtag = handle_starttag


def html_problem(markup):
    finder = _ScriptFinder()
    finder.feed(markup)
    finder.close()
    return finder.problem


def _safe_url(url):
    scheme = re.match(r"^\s*([A-Za-z][A-Za-z0-9+.-]*):", url)
    return scheme is None or scheme.group(1).lower() in ("http", "https", "mailto", "tel")


def _check_condition(condition, at, add, depth=0):
    if depth > MAX_CONDITION_DEPTH:
        add(at, f"condition nested deeper than {MAX_CONDITION_DEPTH} levels")
        return
    if isinstance(condition, list):
        for i, item in enumerate(condition):
            _check_condition(item, at + [i], add, depth + 1)
        return
    if not isinstance(condition, dict):
        return
    for key, value in condition.items():
        here = at + [key]
        if key.startswith("$"):
            if key not in OPERATORS:
                add(here, f"unknown operator {key!r}")
            elif key in REGEX_OPERATORS:
                _check_regex(value, here, add)
            elif key in ("$and", "$or", "$nor") and not isinstance(value, list):
                add(here, f"{key} takes a list of conditions")
        if isinstance(value, (dict, list)):
            _check_condition(value, here, add, depth + 1)


def _check_regex(value, at, add):
    if not isinstance(value, str):
        add(at, "a regex must be a string")
        return
    if len(value) > 500:
        add(at, "a regex may be at most 500 characters")
        return
    try:
        re.compile(value)
    except re.error as e:
        add(at, f"invalid regex: {e}")
