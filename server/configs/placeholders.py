"""Placeholders in merchant text: `{{name}}` or `{{name|default}}`, filled in the browser by the
recommend module (sdk_js/src/modules/recommend.js holds the same pattern). In a `text` or
`html` action a name is an attribute (`geo.city`, `cart.value`) or `product.<field>`, the
product on the page; in a recommend action's template it is a field of each recommended product."""
import difflib
import re

from server.configs.attributes import attribute_problem

PLACEHOLDER = re.compile(r"\{\{[ \t\n]*([A-Za-z_][A-Za-z0-9_.]*)[ \t\n]*(?:\|[ \t\n]*([^{}]*?)[ \t\n]*)?\}\}")
# What a recommended product shows: its public feed fields, prices formatted for its currency.
ITEM_FIELDS = ("id", "title", "link", "image_link", "price", "regular_price", "sale_price", "currency",
               "availability", "brand", "product_type")
# The product on the page: the same, and its live activity (GET /v1/sites/<site>/products/<id>).
PRODUCT_FIELDS = ITEM_FIELDS + ("views_24h", "purchases_24h")
PRODUCT = "product."


def names(text):
    """The placeholder names in `text`, in order."""
    return [match.group(1) for match in PLACEHOLDER.finditer(text)]


def has_placeholders(text):
    return isinstance(text, str) and PLACEHOLDER.search(text) is not None


def reads_product(text):
    return isinstance(text, str) and any(name.startswith(PRODUCT) for name in names(text))


def page_problems(text):
    """Problems of the placeholders of a text or html action: unknown attributes or product fields."""
    problems = []
    for name in names(text):
        if name.startswith(PRODUCT):
            field = name[len(PRODUCT):]
            if field not in PRODUCT_FIELDS:
                problems.append(f"unknown placeholder {{{{{name}}}}}" + _did_you_mean(field, PRODUCT_FIELDS, PRODUCT))
        else:
            problem = attribute_problem(name)
            if problem:
                problems.append(f"placeholder {{{{{name}}}}}: {problem}")
    return problems


def template_problems(template):
    """Problems of the placeholders of a recommend template: each names a product field."""
    return [f"unknown placeholder {{{{{name}}}}} in a recommendation template; the fields are "
            f"{', '.join(ITEM_FIELDS)}" + _did_you_mean(name, ITEM_FIELDS)
            for name in names(template) if name not in ITEM_FIELDS]


def _did_you_mean(word, choices, prefix=""):
    guesses = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f"; did you mean {{{{{prefix}{guesses[0]}}}}}?" if guesses else ""
