"""The attribute registry, spec/attributes.json: the names a condition may use. Validation reads
it here; scripts/attributes_doc.py writes docs/reference/attributes.md from the same file."""
import difflib
import json
import re
from functools import lru_cache
from pathlib import Path

REGISTRY = Path(__file__).resolve().parents[2] / "spec" / "attributes.json"
_INDEX = re.compile(r"0|[1-9][0-9]*")


class Attribute:
    """One registry entry: `parts` of its name, where "<...>" is any one segment; `open` when
    the name ends in .* (any path below)."""

    def __init__(self, entry):
        self.name, self.type = entry["name"], entry["type"]
        parts = self.name.split(".")
        self.open = parts[-1] == "*"
        self.parts = parts[:-1] if self.open else parts

    def matches(self, parts):
        n = len(self.parts)
        if len(parts) < n or not all(p == q or p.startswith("<") for p, q in zip(self.parts, parts)):
            return False
        rest = parts[n:]
        if self.open:
            return bool(rest)
        return not rest or (self.type == "array" and len(rest) == 1 and _INDEX.fullmatch(rest[0]) is not None)

    def named_like(self, parts):
        """This entry spelled with the segments of `parts` in its open places: what a
        misspelling of it most likely meant."""
        n = len(self.parts)
        filled = [q if p.startswith("<") and q else p for p, q in zip(self.parts, parts + [""] * n)]
        return ".".join(filled + (parts[n:] if self.open and len(parts) > n else ["*"] if self.open else []))


@lru_cache(maxsize=1)
def registry():
    return [Attribute(entry) for entry in json.loads(REGISTRY.read_text("utf-8"))["attributes"]]


def attribute_type(path):
    """The registry's type of `path` ("string", "number", "boolean", "array", "any"), None when
    it names no attribute."""
    parts = path.split(".")
    return next((a.type for a in registry() if a.matches(parts)), None)


def attribute_problem(path):
    """Why a condition may not name `path`, with a suggestion; None for a known attribute (or a
    namespace holding some, such as `utm` or `device.screen`)."""
    parts = path.split(".")
    entries = registry()
    if any(a.matches(parts) for a in entries):
        return None
    if any(a.parts[:len(parts)] == parts and (len(parts) < len(a.parts) or a.open) for a in entries):
        return None
    # A known namespace is the likelier intent: cart.total meant cart.value, not crm.total.
    family = [a.named_like(parts) for a in entries if a.parts[0] == parts[0]]
    guesses = difflib.get_close_matches(path, family, n=1, cutoff=0.6) or difflib.get_close_matches(
        path, [a.named_like(parts) for a in entries], n=1, cutoff=0.75)
    if guesses:
        return f"unknown attribute {path}; did you mean {guesses[0]}?"
    if family:
        return f"unknown attribute {path}; {parts[0]} has {', '.join(a.name for a in entries if a.parts[0] == parts[0])}"
    return f"unknown attribute {path}; docs/reference/attributes.md lists them"
