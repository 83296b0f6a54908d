"""spec/schemas/*.schema.json as validators whose problems read like the rest of the API:
`{"path": JSON pointer, "message": sentence}`, sorted by path."""
import json
from functools import lru_cache
from pathlib import Path

from jsonschema import Draft202012Validator, validators
from referencing import Registry, Resource

SCHEMAS = Path(__file__).resolve().parents[2] / "spec" / "schemas"

# JSON Schema counts 1.0 as an integer; on our wire an integer is written without a fraction or
# exponent (as every client serialises one), so the hand-written fast paths can test `type(x) is int`.
_StrictValidator = validators.extend(
    Draft202012Validator,
    type_checker=Draft202012Validator.TYPE_CHECKER.redefine("integer", lambda checker, value: type(value) is int))


@lru_cache(maxsize=None)
def schema(name):
    """The parsed spec/schemas/<name>.schema.json."""
    return json.loads((SCHEMAS / f"{name}.schema.json").read_text())


@lru_cache(maxsize=1)
def _registry():
    """Every schema under its $id, so a "$ref": "ids.schema.json#/..." resolves across files."""
    resources = []
    for path in sorted(SCHEMAS.glob("*.schema.json")):
        contents = schema(path.name.removesuffix(".schema.json"))
        resources.append((contents["$id"], Resource.from_contents(contents)))
    return Registry().with_resources(resources)


@lru_cache(maxsize=None)
def validator(name):
    found = schema(name)
    _StrictValidator.check_schema(found)
    return _StrictValidator(found, registry=_registry())


def definition(file, name):
    """A `$defs` entry of a schema, following local `$ref`s to the one that holds the format."""
    defs = schema(file)["$defs"]
    found = defs[name]
    while "$ref" in found and "pattern" not in found:
        found = defs[found["$ref"].rpartition("/")[2]]
    return found


def pointer(parts):
    return "".join("/" + str(p).replace("~", "~0").replace("/", "~1") for p in parts)


def _path_order(parts):
    return [(0, p, "") if isinstance(p, int) else (1, 0, p) for p in parts]


def by_path(problems):
    """Problems sorted by their JSON pointer, array indexes in numeric order (stable)."""
    return sorted(problems, key=lambda problem: _path_order(
        [int(p) if p.isdecimal() else p for p in problem["path"].split("/")[1:]]))


def problems(name, instance):
    """Every way `instance` breaks the schema `name`, as [{"path", "message"}] sorted by path."""
    found = []
    root = schema(name)
    for error in validator(name).iter_errors(instance):
        path = list(error.absolute_path)
        if error.validator == "required":
            missing = next((p for p in error.validator_value
                            if p not in error.instance and error.message == f"{p!r} is a required property"), None)
            found.append((path + [missing], "is required"))
        elif error.validator == "additionalProperties" and error.validator_value is False:
            extra = sorted(set(error.instance) - set(error.schema.get("properties", {})))
            found.append((path, f"unknown fields: {', '.join(extra)}"))
        elif error.schema is root and error.validator == "type":
            found.append((path, "must be a JSON object"))
        elif "description" in error.schema and error.schema is not root:
            found.append((path, f"must be {error.schema['description']}"))
        else:
            found.append((path, error.message))
    return by_path([{"path": pointer(path), "message": message} for path, message in found])
