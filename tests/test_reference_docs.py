"""docs/reference/ says what the code does: every config example validates, every command and
option cli.md names exists, and nothing in the docs points outside the repository."""
import argparse
import json
import re

import pytest

from server.cli import build_parser
from server.configs.validation import validate_config
from tests.servers import REPO

REFERENCE = REPO / "docs" / "reference"
CONFIG_MD = (REFERENCE / "config.md").read_text()

# What a fragment needs around it to be a whole config: the segments and goals it may name.
SEGMENTS = {"newsletter": {"utm.source": "newsletter"}, "mobile_fr": {"$and": [{"device.type": "mobile"},
                                                                               {"geo.country": "FR"}]}}
GOALS = {"purchase": {"event": "purchase"}, "add_to_cart": {"click": "button.add-to-cart"}}


def _campaign(**fields):
    return {"key": "example", "variations": [{"key": "control", "actions": []}], **fields}


WRAP = {
    "full config": lambda block: block,
    "campaign": lambda block: {"segments": SEGMENTS, "goals": GOALS, "campaigns": [block]},
    "condition": lambda block: {"segments": {"example": block}},
    "goals": lambda block: {"goals": block},
    "action": lambda block: {"campaigns": [_campaign(variations=[{"key": "v", "actions": [block]}])]},
    "trigger": lambda block: {"campaigns": [_campaign(trigger=block)]},
    "settings": lambda block: {"settings": block},
}


def _json_blocks(markdown):
    """(marker, parsed JSON, line) for every ```json block; the marker is the `<!-- ... -->`
    comment on the line before it (None without one)."""
    blocks = []
    for found in re.finditer(r"(?:<!-- ([a-z ]+) -->\n)?```json\n(.*?)\n```", markdown, re.S):
        line = markdown[:found.start()].count("\n") + 1
        blocks.append((found.group(1), json.loads(found.group(2)), line))
    return blocks


BLOCKS = _json_blocks(CONFIG_MD)


def test_config_md_has_marked_examples_of_every_kind():
    kinds = [marker for marker, _, _ in BLOCKS]
    assert None not in kinds, "every ```json block of config.md says what it is (<!-- full config --> ...)"
    assert set(kinds) == set(WRAP)
    assert kinds.count("full config") >= 1 and kinds.count("action") >= 14 and kinds.count("trigger") == 5


@pytest.mark.parametrize("marker, block, line", BLOCKS, ids=[f"line{b[2]}-{b[0]}" for b in BLOCKS])
def test_every_config_example_is_valid(marker, block, line):
    assert validate_config(WRAP[marker](block)) == []


def _table_conditions(markdown):
    """The example column of the operator tables: rows starting with | `$...` or | plain value."""
    found = []
    for row in markdown.splitlines():
        if re.match(r"\| (`\$|plain value)", row):
            found.append(json.loads(re.findall(r"`(\{.*?\})`(?= \|$)", row)[-1]))
    return found


def test_every_operator_has_a_valid_example():
    from server.configs.validation import OPERATORS
    conditions = _table_conditions(CONFIG_MD)
    documented = {op for row in CONFIG_MD.splitlines() for op in re.findall(r"^\| `(\$\w+)`", row)}
    assert documented == OPERATORS
    for condition in conditions:
        assert validate_config({"segments": {"example": condition}}) == [], condition


def test_every_trigger_and_action_of_the_schema_is_documented():
    moved = REPO / "spec" / "schemas" / "site-config.schema.json"
    config = json.loads((moved if moved.exists() else
                         REPO / "server" / "configs" / "schema" / "site-config.schema.json").read_text())
    actions = set(config["$defs"]["action"]["properties"]) - {"selector"}
    assert {a for a in actions if f"| `{a}` |" not in CONFIG_MD} == set()
    triggers = {key for option in config["$defs"]["trigger"]["oneOf"] for key in option.get("properties", {})}
    assert {t for t in triggers if f"`{{\"{t}\":" not in CONFIG_MD} == set()
    for section in ("campaign", "variation", "settings"):
        node = config["$defs"][section]
        assert {f for f in node["properties"] if f"| `{f}` |" not in CONFIG_MD} == set(), section


# --- cli.md ------------------------------------------------------------------------------------

# Documented ahead of the branch that adds them; checked like the rest once the parser has them.
def _commands(parser, words=()):
    """{("sites", "create"): parser, ...} for every command and subcommand."""
    found = {words: parser}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found.update(_commands(sub, words + (name,)))
    return found


def _options(parser):
    """The options a user sees (an internal one, help=SUPPRESS, is not documented)."""
    return {option for action in parser._actions if action.help != argparse.SUPPRESS for option in action.option_strings}


def test_every_command_and_option_in_cli_md_exists():
    commands = _commands(build_parser())
    text = (REFERENCE / "cli.md").read_text()
    named = re.findall(r"^#+ `vitrina ([a-z -]+?)(?: [A-Z<\[].*)?`", text, re.M)
    assert len(named) >= 7
    for heading in named:
        words = tuple(heading.split())
        assert words in commands, f"cli.md documents `vitrina {heading}`, which the parser does not have"
    documented = {tuple(h.split()) for h in named}
    leaves = {words for words, parser in commands.items()
              if words and not any(isinstance(a, argparse._SubParsersAction) for a in parser._actions)}
    assert leaves <= documented, f"commands missing from cli.md: {leaves - documented}"
    # each command's section names only options it has, and all of them
    sections = re.split(r"^#+ `vitrina ", text, flags=re.M)[1:]
    for section in sections:
        words = tuple(re.match(r"([a-z -]+?)(?: [A-Z<\[].*)?`", section).group(1).split())
        if words not in commands:
            continue
        used = set(re.findall(r"(?<![\w-])(--[a-z][a-z-]*)", section))
        have = _options(commands[words]) - {"-h"}
        assert used <= have, f"vitrina {' '.join(words)}: cli.md names {used - have}"
        assert have - {"--help"} <= used, f"vitrina {' '.join(words)}: cli.md leaves out {have - used - {'--help'}}"


# --- links ---------------------------------------------------------------------------------------

DOCS = [REPO / "README.md", *sorted((REPO / "docs").rglob("*.md")), REPO / "e2e" / "README.md",
        REPO / "bench" / "README.md"]


@pytest.mark.parametrize("path", DOCS, ids=lambda p: str(p.relative_to(REPO)))
def test_docs_point_only_inside_the_repository(path):
    text = path.read_text()
    assert "shared/" not in text, f"{path.name} points at the steering folder, which a clone does not have"
    for target in re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", text):
        if re.match(r"[a-z]+:", target):
            continue  # a web address
        assert (path.parent / target).resolve().is_relative_to(REPO), f"{path.name}: {target} leaves the repository"


def _core_files():
    """The SDK's core: index.js and what it imports, transitively."""
    src, seen, todo = REPO / "sdk_js" / "src", set(), ["index.js"]
    while todo:
        name = todo.pop()
        if name not in seen:
            seen.add(name)
            todo += re.findall(r'from "\./([\w.]+\.js)"', (src / name).read_text())
    return seen


def test_each_browser_storage_key_is_documented_and_belongs_to_one_module():
    src = REPO / "sdk_js" / "src"
    documented = set(re.findall(r"\| `(vtr_\w+)` \|", (REPO / "docs" / "reference" / "js-api.md").read_text()))
    core = _core_files()
    owners = {}
    for path in src.glob("*.js"):
        for key in set(re.findall(r'"(vtr_[a-z]+)"', path.read_text())):
            assert key in documented, f"{path.name} stores {key}, which docs/reference/js-api.md does not list"
            if path.name not in core:
                owners.setdefault(key, []).append(path.name)
    shared = {key: files for key, files in owners.items() if len(files) > 1}
    assert not shared, f"modules share storage keys: {shared}"
    assert owners, "no module keeps anything: the check reads the wrong files"
