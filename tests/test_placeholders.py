"""Placeholders: the validator (server/configs/placeholders.py) and the SDK's recommend module
read the same {{name|default}} in the same strings."""
import json
import subprocess

from hypothesis import given, settings
from hypothesis import strategies as st

from server.configs.placeholders import PLACEHOLDER, page_problems, template_problems
from tests.servers import REPO

NODE = """
const { PLACEHOLDER } = await import(process.argv[1])
let input = ""
for await (const chunk of process.stdin) input += chunk
const found = JSON.parse(input).map((s) => [...s.matchAll(PLACEHOLDER)].map((m) => [m.index, m[1], m[2] ?? null]))
process.stdout.write(JSON.stringify(found))
"""
PIECES = st.sampled_from(["{{", "}}", "{", "}", "|", " ", "\t", "\n", "\u00a0", "\x1c", "a", "Z", "_", ".", "0", "geo.city",
                          "product.title", "é", "-", "x|y", "{{ cart.value }}", "{{a|b c}}", "{{ a | b }}", "{{a|}}"])


@settings(max_examples=10, deadline=None)
@given(st.lists(st.lists(PIECES, max_size=12).map("".join), min_size=30, max_size=60))
def test_the_sdk_finds_the_placeholders_the_validator_finds(strings):
    run = subprocess.run(["node", "--input-type=module", "-e", NODE, str(REPO / "sdk_js" / "src" / "recommend.js")],
                         input=json.dumps(strings), capture_output=True, text=True, timeout=30, check=True, cwd=REPO)
    for s, sdk in zip(strings, json.loads(run.stdout)):
        server = [[m.start(), m.group(1), m.group(2)] for m in PLACEHOLDER.finditer(s)]
        assert sdk == server, (s, sdk, server)


def test_page_placeholders_name_attributes_or_product_fields():
    assert page_problems("{{geo.city|you}} {{cart.lines.0}} {{user.plan}} {{product.views_24h}} {{page.query.q}}") == []
    assert page_problems("{{product.stock}}") == ["unknown placeholder {{product.stock}}"]
    assert page_problems("{{utm.medum}}") == ["placeholder {{utm.medum}}: unknown attribute utm.medum; "
                                              "did you mean utm.medium?"]


def test_template_placeholders_name_product_fields():
    assert template_problems('<a href="{{link}}">{{title}} {{regular_price}} {{sale_price}}</a>') == []
    assert template_problems("{{product.title}}")[0].startswith("unknown placeholder {{product.title}}")
