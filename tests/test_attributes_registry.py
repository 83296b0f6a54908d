"""The attribute registry (spec/attributes.json): valid against its schema, read by validation,
and the source of docs/reference/attributes.md; the config schema a merchant's editor reads."""
import copy
import importlib.util
import json
from pathlib import Path

import jsonschema
import pytest

from server.configs.attributes import attribute_problem, registry
from server.configs.validation import SCHEMA, review_config, validate_config

REPO = Path(__file__).resolve().parents[1]
REGISTRY = json.loads((REPO / "spec" / "attributes.json").read_text("utf-8"))
REGISTRY_SCHEMA = json.loads((REPO / "spec" / "schemas" / "attributes.schema.json").read_text("utf-8"))
CONFIG_SCHEMA = json.loads(SCHEMA.read_text("utf-8"))


def _doc_script():
    spec = importlib.util.spec_from_file_location("attributes_doc", REPO / "scripts" / "attributes_doc.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_registry_matches_its_schema_and_names_are_unique():
    jsonschema.Draft202012Validator.check_schema(REGISTRY_SCHEMA)
    jsonschema.validate(REGISTRY, REGISTRY_SCHEMA, cls=jsonschema.Draft202012Validator)
    names = [a["name"] for a in REGISTRY["attributes"]]
    assert len(names) == len(set(names))


@pytest.mark.parametrize("change", [
    lambda r: r["attributes"][0].pop("description"),
    lambda r: r["attributes"][0].update(type="text"),
    lambda r: r["attributes"][0].update(name="Page.URL"),
    lambda r: r["attributes"][0].update(name="page.url\n"),
    lambda r: r["attributes"][0].update(source="cookie"),
    lambda r: r["attributes"][0].update(example_name="page.url"),  # only for names with <key> or .*
    lambda r: next(a for a in r["attributes"] if a["name"] == "user.*").pop("example_name"),
    lambda r: r.update(extra=1),
], ids=["no description", "unknown type", "upper case", "trailing newline", "unknown source",
        "example_name on a plain name", "family without example_name", "unknown field"])
def test_registry_schema_refuses_malformed_entries(change):
    broken = copy.deepcopy(REGISTRY)
    change(broken)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, REGISTRY_SCHEMA, cls=jsonschema.Draft202012Validator)


def test_every_registered_attribute_and_example_is_accepted_by_validation():
    for a in REGISTRY["attributes"]:
        name = a.get("example_name", a["name"])
        assert attribute_problem(name) is None, name
        assert validate_config({"segments": {"s": {name: a["example"]}}}) == [], name


def test_the_open_families_are_the_issue_s_four_and_predict():
    families = sorted(a.name for a in registry() if a.open or any(p.startswith("<") for p in a.parts))
    assert families == ["crm.*", "history.events.<name>", "page.query.<key>", "predict.<goal>", "user.*"]


def test_validation_reads_the_registry(monkeypatch, tmp_path):
    """A name added to spec/attributes.json is accepted at once: the registry is the one list."""
    assert attribute_problem("weather.rain") is not None
    extended = copy.deepcopy(REGISTRY)
    extended["attributes"].append({"name": "weather.rain", "type": "boolean", "source": "server",
                                   "description": "It rains where the visitor is.", "example": True})
    path = tmp_path / "attributes.json"
    path.write_text(json.dumps(extended))
    monkeypatch.setattr("server.configs.attributes.REGISTRY", path)
    registry.cache_clear()
    try:
        assert attribute_problem("weather.rain") is None
    finally:
        registry.cache_clear()


def test_attributes_reference_page_is_up_to_date():
    script = _doc_script()
    committed = (REPO / "docs" / "reference" / "attributes.md").read_text("utf-8")
    assert committed == script.render(REGISTRY), "run: .venv/bin/python scripts/attributes_doc.py"
    for a in REGISTRY["attributes"]:
        assert f"`{a['name']}`" in committed


def _schemas_with_properties(node, at="#"):
    if isinstance(node, dict):
        for name, sub in (node.get("properties") or {}).items():
            yield f"{at}/properties/{name}", sub
        for key, sub in node.items():
            yield from _schemas_with_properties(sub, f"{at}/{key}")
    elif isinstance(node, list):
        for i, sub in enumerate(node):
            yield from _schemas_with_properties(sub, f"{at}/{i}")


def test_every_property_of_the_config_schema_has_a_description():
    """Editors that read `$schema` show these as the merchant types."""
    missing = [at for at, sub in _schemas_with_properties(CONFIG_SCHEMA) if "description" not in sub]
    missing += [f"#/$defs/{name}" for name, sub in CONFIG_SCHEMA["$defs"].items() if "description" not in sub]
    assert missing == []


def test_the_config_schema_is_loaded_from_spec():
    assert SCHEMA == REPO / "spec" / "schemas" / "site-config.schema.json"
    assert not (REPO / "server" / "configs" / "schema").exists()
    settings = CONFIG_SCHEMA["$defs"]["settings"]["properties"]
    assert settings["redirect_hosts"]["type"] == "array"
    assert settings["max_value"] == {"type": "number", "minimum": 0, "description": "largest conversion value accepted",
                                     "default": 100000}


@pytest.mark.parametrize("path", ["server/demo/config.json", "e2e/pages/config.json"])
def test_the_shipped_configs_validate_and_lose_nothing_to_sanitising(path):
    config = json.loads((REPO / path).read_text("utf-8"))
    review = review_config(config)
    assert (review.problems, review.warnings) == ([], [])
    assert review.config == config


def test_a_config_naming_its_schema_validates(demo_config):
    demo_config["$schema"] = "../spec/schemas/site-config.schema.json"
    assert validate_config(demo_config) == []
