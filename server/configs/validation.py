"""Site config validation: the JSON Schema (spec/schemas/site-config.schema.json) and the rules
it cannot say, checked together so one answer lists every problem, each with its JSON pointer.
Merchant HTML is sanitised rather than judged: the review returns the config to store, with
warnings saying what was removed. Nothing invalid gets stored (docs/DESIGN.md "Config validation")."""
import difflib
import ipaddress
import json
import re
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from jsonschema import Draft202012Validator

from server.configs.attributes import attribute_problem, attribute_type
from server.configs.merchant_content import (
    attr_problem,
    css_problems,
    sanitise_html,
    selector_problem,
)
from server.configs.placeholders import page_problems, template_problems
from server.configs.urls import redirect_problem
from server.decisions.conditions import regex_problem

SCHEMA = Path(__file__).resolve().parents[2] / "spec" / "schemas" / "site-config.schema.json"
COMBINATORS = {"$and", "$or", "$nor"}
VALUE_OPERATORS = {
    "$eq", "$ne", "$in", "$nin", "$gt", "$gte", "$lt", "$lte", "$regex", "$exists", "$type", "$size",
    "$all", "$elemMatch", "$not", "$ini", "$nini", "$alli", "$regexi",
    "$veq", "$vne", "$vgt", "$vgte", "$vlt", "$vlte",
}
OPERATORS = VALUE_OPERATORS | COMBINATORS
REGEX_OPERATORS = {"$regex", "$regexi"}
LIST_OPERATORS = {"$in", "$nin", "$ini", "$nini", "$all", "$alli"}
TYPE_NAMES = ("string", "number", "boolean", "null", "array", "object")
SELECTOR_ACTIONS = {"text", "html", "attr", "addClass", "removeClass", "style", "hide", "remove",
                    "insertBefore", "insertAfter", "append", "recommend", "reorder"}
# Goals the compiler adds to campaigns that recommend (server/configs/compiler.py): not the merchant's to define.
RECOMMENDATION_GOALS = ("recommendation_click", "recommendation_add", "recommendation_purchase")
HTML_FIELDS = ("html", "insertBefore", "insertAfter", "append")
MAX_CONDITION_DEPTH = 12
MAX_DEPTH = 64
MAX_MESSAGE_LENGTH = 300
MAX_REGEX_LENGTH = 500
_TIMESTAMP = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}(?::[0-9]{2}(?:\.[0-9]{1,6})?)?"
                        r"(?:Z|[+-]([0-9]{2}):([0-9]{2}))")
_INLINE_FLAGS = re.compile(r"\(\?[a-zA-Z]+[):]")
# CRM attribute types and the literals a condition may compare them with (dates compare as ISO strings)
CRM_LITERALS = {
    "string": lambda x: isinstance(x, str), "date": lambda x: isinstance(x, str),
    "number": lambda x: isinstance(x, (int, float)) and not isinstance(x, bool),
    "boolean": lambda x: isinstance(x, bool),
}
COMPARED = {"$eq", "$ne", "$gt", "$gte", "$lt", "$lte"}
LISTED = {"$in", "$nin"}


def pointer(parts):
    return "/" + "/".join(str(p).replace("~", "~0").replace("/", "~1") for p in parts) if parts else ""


@lru_cache(maxsize=1)
def _validator():
    schema = json.loads(SCHEMA.read_text("utf-8"))
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


class Review:
    """What validation says of a config: `problems` (it may not be stored), `warnings` (what
    sanitising removed) and `config`, the sanitised config to store and compile."""

    def __init__(self, problems, warnings, config):
        self.problems, self.warnings, self.config = problems, warnings, config


def review_config(config, crm_types=None):
    """The review of a config; with `crm_types` ({"crm.<name>": type}, the site's CRM attributes,
    server/identity/customers.py), conditions on crm.* are checked against the customers' data:
    a warning for a name no customer has, a problem for a literal of another type than the
    attribute's one type."""
    too_deep = _too_deep(config)
    if too_deep is not None:  # nothing below may recurse into it: not the checks, nor json.dumps
        return Review([{"path": pointer(too_deep), "message": f"nested deeper than {MAX_DEPTH} levels"}], [], config)
    checker = _Checker(_sanitisable_copy(config), crm_types)
    schema_problems = [_schema_problem(e) for e in _validator().iter_errors(config)]
    checker.check()
    flagged = {p["path"] for p in schema_problems}
    problems = schema_problems + [p for p in checker.problems if p["path"] not in flagged]
    return Review(_in_order(problems), _in_order(checker.warnings), checker.config)


def _too_deep(config):
    """The path of the first value nested deeper than MAX_DEPTH, found without recursion; or None."""
    stack = [(config, [])]
    while stack:
        value, parts = stack.pop()
        if len(parts) > MAX_DEPTH:
            return parts
        children = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
        stack.extend((child, parts + [key]) for key, child in children)
    return None


def _sanitisable_copy(config):
    """A copy in which HTML fields can be replaced: campaigns, variations and actions are new
    containers; everything else is shared with the input (no deep copy, no recursion)."""
    if not isinstance(config, dict):
        return config
    config = dict(config)
    for campaign in _copied_objects(config, "campaigns"):
        for variation in _copied_objects(campaign, "variations"):
            _copied_objects(variation, "actions")
    return config


def _copied_objects(parent, key):
    """Replace the list parent[key] by one holding copies of its objects; returns the copies."""
    items = parent.get(key)
    if not isinstance(items, list):
        return []
    parent[key] = [dict(x) if isinstance(x, dict) else x for x in items]
    return [x for x in parent[key] if isinstance(x, dict)]


def validate_config(config):
    """The list of problems ({path, message}); empty means valid."""
    return review_config(config).problems


def _schema_problem(error):
    if error.context:
        error = _likeliest_branch(error)
    message = error.message
    if error.validator == "pattern" and isinstance(error.schema, dict) and "description" in error.schema:
        message = f"{error.instance!r} does not match the expected form: {error.schema['description']}"
    if len(message) > MAX_MESSAGE_LENGTH:  # jsonschema quotes the whole value, which may be 20 KB
        message = message[:MAX_MESSAGE_LENGTH - 1] + "…"
    return {"path": pointer(error.absolute_path), "message": message}


def _likeliest_branch(error):
    """oneOf/anyOf only say "is not valid under any of the given schemas". The branch that takes
    the value's type and fails deeper inside says more: {"scroll": 150} is a scroll trigger whose
    150 is over the maximum, not a null."""
    typed = [e for e in error.context if e.validator != "type"]
    deepest = max(typed, key=lambda e: len(e.absolute_path), default=None)
    if deepest is not None and len(deepest.absolute_path) > len(error.absolute_path):
        return deepest
    if not typed:
        types = [t for e in error.context for t in _listed(e.validator_value)]
        error.message = f"{error.instance!r} is not of type {' or '.join(dict.fromkeys(types))}"
    elif len(typed) == 1:
        return typed[0]
    return error


def _listed(value):
    return value if isinstance(value, list) else [value]


def _sort_key(problem):
    parts = problem["path"].split("/")[1:]
    return [(0, int(p), "") if p.isdecimal() else (1, 0, p) for p in parts]


def _in_order(problems):
    unique = list({(p["path"], p["message"]): p for p in problems}.values())
    return sorted(unique, key=_sort_key)


def _dict(x):
    return x if isinstance(x, dict) else {}


def _list(x):
    return x if isinstance(x, list) else []


class _Checker:
    """The semantic rules, over a config that may also break the schema: every rule looks only
    at what has the shape it expects. Sanitises HTML fields of `config` in place."""

    def __init__(self, config, crm_types=None):
        self.config = config
        self.crm_types = crm_types
        self.problems, self.warnings = [], []

    def add(self, parts, message):
        self.problems.append({"path": pointer(parts), "message": message})

    def warn(self, parts, message):
        self.warnings.append({"path": pointer(parts), "message": message})

    def check(self):
        config = _dict(self.config)
        segments, goals = _dict(config.get("segments")), _dict(config.get("goals"))
        redirect_hosts = [h for h in _list(_dict(config.get("settings")).get("redirect_hosts")) if isinstance(h, str)]
        for name, condition in segments.items():
            self.condition(condition, ["segments", name])
        for name, goal in goals.items():
            if name in RECOMMENDATION_GOALS:
                self.add(["goals", name], f"{name} is Vitrina's own goal: campaigns that recommend get it")
            if "pageview" in _dict(goal):
                self.condition(goal["pageview"], ["goals", name, "pageview"])
        for i, cidr in enumerate(_list(_dict(config.get("settings")).get("exclude_ips"))):
            if isinstance(cidr, str):
                self.network(cidr, ["settings", "exclude_ips", i])
        zone = _dict(config.get("settings")).get("timezone")
        if isinstance(zone, str) and 0 < len(zone) <= 64 and not _known_zone(zone):
            self.add(["settings", "timezone"], f"unknown time zone {zone!r}: use an IANA name such as Europe/Paris or UTC")
        seen_keys = {}
        for i, campaign in enumerate(_list(config.get("campaigns"))):
            if isinstance(campaign, dict):
                self.campaign(campaign, ["campaigns", i], segments, goals, seen_keys, redirect_hosts)

    def campaign(self, campaign, at, segments, goals, seen_keys, redirect_hosts):
        key = campaign.get("key")
        if isinstance(key, str):
            if key in seen_keys:
                self.add(at + ["key"], f"duplicate campaign key {key!r} (also at /campaigns/{seen_keys[key]})")
            seen_keys.setdefault(key, at[-1])
        segment = campaign.get("segment")
        if isinstance(segment, str) and segment not in segments:
            self.add(at + ["segment"], f"unknown segment {segment!r}" + _did_you_mean(segment, segments))
        for field in ("conditions", "pages"):
            if campaign.get(field) is not None:
                self.condition(campaign[field], at + [field])
        for field in ("goals", "guardrails"):
            for j, goal in enumerate(_list(campaign.get(field))):
                if isinstance(goal, str) and goal not in goals and goal not in RECOMMENDATION_GOALS:
                    self.add(at + [field, j], f"unknown goal {goal!r}" + _did_you_mean(goal, goals))
        if campaign.get("auto_pause") is True and not _list(campaign.get("guardrails")):
            self.add(at + ["auto_pause"], "auto_pause pauses on a guardrail alert: list the goals in `guardrails`")
        variations = _list(campaign.get("variations"))
        if campaign.get("type") == "experiment" and len(variations) == 1:
            self.add(at + ["variations"], "an experiment needs at least two variations")
        self.schedule(_dict(campaign.get("schedule")), at + ["schedule"])
        self.variations(variations, at + ["variations"], redirect_hosts)
        allocation = _dict(campaign.get("allocation"))
        if allocation.get("mode") == "adaptive":
            self.allocation(allocation, campaign, at + ["allocation"], segments, goals)

    def allocation(self, allocation, campaign, at, segments, goals):
        goal = allocation.get("goal")
        if goal is None:
            self.add(at + ["goal"], "is required for an adaptive allocation: the goal whose conversions the weights follow")
        elif isinstance(goal, str) and goal not in goals:
            self.add(at + ["goal"], f"unknown goal {goal!r}" + _did_you_mean(goal, goals))
        for j, entry in enumerate(_list(allocation.get("by"))):
            if not isinstance(entry, str):
                continue
            if entry.startswith("segment:"):
                if entry[8:] not in segments:
                    self.add(at + ["by", j], f"unknown segment {entry[8:]!r}" + _did_you_mean(entry[8:], segments))
            else:
                self.report(at + ["by", j], attribute_problem(entry) or _slice_type_problem(entry))
        keys = [v.get("key") for v in _list(campaign.get("variations")) if isinstance(v, dict)]
        if len([k for k in keys if k != "control"]) < 2:
            self.add(at, "an adaptive allocation needs at least two variations besides control to choose between")
        if campaign.get("bucket_by") == "customer":
            self.add(at, "an adaptive allocation slices browsers: it cannot bucket by customer")

    def network(self, cidr, at):
        try:
            ipaddress.ip_network(cidr, strict=False)
        except ValueError:
            self.add(at, f"{cidr!r} is not an IPv4 or IPv6 address or CIDR range (e.g. 203.0.113.0/24, 2001:db8::/32)")

    def schedule(self, schedule, at):
        times = {}
        for bound in ("start", "end"):
            value = schedule.get(bound)
            match = _TIMESTAMP.fullmatch(value) if isinstance(value, str) else None
            if match is None:
                continue  # absent, null, or the schema's pattern already says what is wrong
            if match.group(1) and (int(match.group(1)) > 23 or int(match.group(2)) > 59):
                self.add(at + [bound], f"not a real date and time: {value[-6:]} is not a UTC offset")
                continue
            try:
                times[bound] = datetime.fromisoformat(value.replace("Z", "+00:00"))
            except ValueError as e:
                self.add(at + [bound], f"not a real date and time: {e}")
        if len(times) == 2 and times["end"] <= times["start"]:
            self.add(at + ["end"], "the schedule ends before it starts")

    def variations(self, variations, at, redirect_hosts):
        keys = {}
        for j, variation in enumerate(variations):
            if not isinstance(variation, dict):
                continue
            key = variation.get("key")
            if isinstance(key, str):
                if key in keys:
                    self.add(at + [j, "key"], f"duplicate variation key {key!r}")
                keys.setdefault(key, j)
            for k, action in enumerate(_list(variation.get("actions"))):
                if isinstance(action, dict):
                    self.action(action, at + [j, "actions", k], redirect_hosts)
        variations = [v for v in variations if isinstance(v, dict)]
        weights = [v["weight"] for v in variations if isinstance(v.get("weight"), (int, float))]
        if any("weight" in v for v in variations) and not all("weight" in v for v in variations):
            self.add(at, "give every variation a weight, or none (equal split)")
        elif weights and len(weights) == len(variations) and abs(sum(weights) - 1) > 1e-6:
            self.add(at, f"variation weights must sum to 1, they sum to {round(sum(weights), 6)}")

    def action(self, action, at, redirect_hosts):
        needs_selector = SELECTOR_ACTIONS & action.keys()
        if needs_selector and "selector" not in action:
            self.add(at, f"{', '.join(sorted(needs_selector))} needs a 'selector'")
        if not needs_selector and not ({"css", "redirect"} & action.keys()):
            self.add(at, "the action does nothing: give it text, html, attr, addClass, removeClass, style, hide, "
                         "remove, insertBefore, insertAfter, append, recommend, reorder, css or redirect")
        if isinstance(action.get("selector"), str):
            self.report(at + ["selector"], selector_problem(action["selector"]))
        if isinstance(action.get("redirect"), str):
            self.report(at + ["redirect"], redirect_problem(action["redirect"], redirect_hosts))
        for field in HTML_FIELDS:
            if isinstance(action.get(field), str):
                action[field], removed = sanitise_html(action[field])
                for message in removed:
                    self.warn(at + [field], message)
        for field in ("text", "html"):
            if isinstance(action.get(field), str):
                for problem in page_problems(action[field]):
                    self.add(at + [field], problem)
        if isinstance(action.get("recommend"), dict):
            self.recommend(action, at + ["recommend"])
        for name, value in _dict(action.get("attr")).items():
            if isinstance(value, (str, type(None))):
                self.report(at + ["attr", name], attr_problem(name, value))
        if isinstance(action.get("css"), str):
            for problem in css_problems(action["css"], stylesheet=True):
                self.add(at + ["css"], problem)
        self.style(action.get("style"), at + ["style"])

    def recommend(self, action, at):
        """The template is merchant HTML (sanitised like any, placeholders kept) naming product fields."""
        recommend = action["recommend"] = dict(action["recommend"])
        if isinstance(recommend.get("template"), str):
            recommend["template"], removed = sanitise_html(recommend["template"])
            for message in removed:
                self.warn(at + ["template"], message)
            for problem in template_problems(recommend["template"]):
                self.add(at + ["template"], problem)
        low, high = recommend.get("min_price"), recommend.get("max_price")
        if isinstance(low, (int, float)) and isinstance(high, (int, float)) and low > high:
            self.add(at + ["max_price"], "max_price is below min_price")

    def style(self, style, at):
        declarations = [([], style)] if isinstance(style, str) else [
            ([name], f"{name}: {value}") for name, value in _dict(style).items() if isinstance(value, str)]
        for parts, text in declarations:
            for problem in css_problems(text, stylesheet=False):
                self.add(at + parts, problem)

    def report(self, parts, problem):
        if problem:
            self.add(parts, problem)

    def condition(self, condition, at, depth=0, attributes=True):
        """A condition: keys are attribute names (paths inside the element, under $elemMatch)
        or $and $or $nor $not."""
        if depth > MAX_CONDITION_DEPTH:
            self.add(at, f"condition nested deeper than {MAX_CONDITION_DEPTH} levels")
            return
        if not isinstance(condition, dict):
            self.add(at, "a condition is an object, such as {\"utm.source\": \"newsletter\"}")
            return
        for key, value in condition.items():
            here = at + [key]
            if key in COMBINATORS:
                if not isinstance(value, list):
                    self.add(here, f"{key} takes a list of conditions")
                    continue
                for i, item in enumerate(value):
                    self.condition(item, here + [i], depth + 1, attributes)
            elif key == "$not":
                self.condition(value, here, depth + 1, attributes)
            elif key.startswith("$"):
                self.add(here, f"{key} compares an attribute's value: write {{\"<attribute>\": {{\"{key}\": ...}}}}"
                         if key in VALUE_OPERATORS else _unknown_operator(key))
            else:
                if attributes:
                    self.report(here, attribute_problem(key))
                    if key.startswith("crm.") and self.crm_types is not None:
                        self.crm(key, value, here)
                self.value(value, here, depth + 1)

    def value(self, expression, at, depth):
        """What an attribute is compared with: a literal, or an object of operators."""
        if depth > MAX_CONDITION_DEPTH:
            self.add(at, f"condition nested deeper than {MAX_CONDITION_DEPTH} levels")
            return
        if not (isinstance(expression, dict) and expression and all(k.startswith("$") for k in expression)):
            return  # a literal, compared for equality
        for op, operand in expression.items():
            here = at + [op]
            if op in COMBINATORS:
                self.add(here, f"{op} combines conditions, not values: put it at the top of the condition")
            elif op not in VALUE_OPERATORS:
                self.add(here, _unknown_operator(op))
            elif op in REGEX_OPERATORS:
                self.regex(operand, here)
            elif op in LIST_OPERATORS and not isinstance(operand, list):
                self.add(here, f"{op} takes a list of values")
            elif op == "$type" and operand not in TYPE_NAMES:
                self.add(here, f"$type is one of {', '.join(TYPE_NAMES)}")
            elif op in ("$not", "$size"):
                self.value(operand, here, depth + 1)
            elif op == "$all":
                for i, item in enumerate(operand):
                    self.value(item, here + [i], depth + 1)
            elif op == "$elemMatch":
                if not isinstance(operand, dict):
                    self.add(here, "$elemMatch takes an object")
                elif all(k.startswith("$") for k in operand):
                    self.value(operand, here, depth + 1)
                else:
                    self.condition(operand, here, depth + 1, attributes=False)

    def crm(self, path, expression, at):
        """A condition on a CRM attribute against what the site's customers hold."""
        name = ".".join(path.split(".")[:2])
        kind = self.crm_types.get(name)
        if kind is None:
            self.warn(at, f"no customer has {name} yet (GET .../crm-attributes lists the site's CRM attributes); "
                          "only tokens' crm claims can set it")
            return
        wanted = CRM_LITERALS.get(kind)
        if wanted is None or name != path:
            return  # mixed types, lists, or a path inside the value: nothing cheap to say
        if isinstance(expression, dict) and expression and all(k.startswith("$") for k in expression):
            literals = [(at + [op], operand) for op, operand in expression.items() if op in COMPARED]
            literals += [(at + [op, i], item) for op, operand in expression.items() if op in LISTED
                         and isinstance(operand, list) for i, item in enumerate(operand)]
        else:
            literals = [(at, expression)]
        for where, literal in literals:
            if literal is not None and not wanted(literal):
                hint = f"; for days, use crm.days_since_{name[4:].removesuffix('_at')}" if kind == "date" else ""
                self.add(where, f"{name} is a {kind} in the site's customer data; {json.dumps(literal)} is not"
                                + hint)

    def regex(self, pattern, at):
        if not isinstance(pattern, str):
            self.add(at, "a regex must be a string")
        elif len(pattern) > MAX_REGEX_LENGTH:
            self.add(at, f"a regex may be at most {MAX_REGEX_LENGTH} characters")
        else:
            problem = regex_problem(pattern)
            if problem:
                hint = "; for case-insensitive matching use $regexi" if _INLINE_FLAGS.search(pattern) else ""
                self.add(at, f"invalid regex (JavaScript syntax): {problem}{hint}")


@lru_cache(maxsize=256)
def _known_zone(name):
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):  # ValueError: a path, not a key ("../x")
        return False
    return True


def _unknown_operator(op):
    return f"unknown operator {op!r}" + _did_you_mean(op, OPERATORS)


def _slice_type_problem(path):
    """A slice is named by its attribute's value, a string: a number or a flag would put every
    visitor in the default slice."""
    kind = attribute_type(path)
    if kind in ("string", "any", None):
        return None
    return (f"slices by the value of an attribute, a string; {path} is a {kind}, so every visitor would fall in "
            "the default slice: slice by a segment instead (segment:<name>, with the condition on it)")


def _did_you_mean(word, choices):
    guesses = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f"; did you mean {guesses[0]!r}?" if guesses else ""
