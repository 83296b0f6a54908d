"""Merchant content that can never run script in a shopper's page (docs/DESIGN.md "Merchant
content"). HTML is sanitised, not inspected: nh3 (Rust's ammonia, on the HTML5 parser html5ever)
keeps an allow-list and drops the rest, and the sanitised HTML is what gets published. CSS,
selectors and attributes are checked: their problems are errors the merchant fixes."""
from collections import Counter
from functools import lru_cache

import nh3
import tinycss2
from selectolax.lexbor import LexborHTMLParser

from server.configs.urls import srcset_problem, url_problem

_TEXT = {"a", "abbr", "b", "bdi", "bdo", "blockquote", "br", "cite", "code", "data", "del", "dfn", "em",
         "h1", "h2", "h3", "h4", "h5", "h6", "hr", "i", "ins", "kbd", "mark", "p", "pre", "q", "s", "samp",
         "small", "span", "strong", "sub", "sup", "time", "u", "var", "wbr"}
_STRUCTURE = {"address", "article", "aside", "div", "footer", "header", "hgroup", "main", "nav", "section"}
_LISTS = {"dd", "dl", "dt", "li", "ol", "ul"}
_TABLES = {"caption", "col", "colgroup", "table", "tbody", "td", "tfoot", "th", "thead", "tr"}
_MEDIA = {"figcaption", "figure", "img", "picture", "source"}
ALLOWED_TAGS = frozenset(_TEXT | _STRUCTURE | _LISTS | _TABLES | _MEDIA | {"button"})
GENERIC_ATTRIBUTES = frozenset({"class", "id", "role", "title", "alt", "width", "height", "lang", "dir"})
GENERIC_PREFIXES = frozenset({"data-", "aria-"})
TAG_ATTRIBUTES = {
    "a": {"href", "target", "rel", "hreflang"},
    "img": {"src", "srcset", "sizes", "loading", "decoding"},
    "source": {"src", "srcset", "sizes", "media", "type"},
    "blockquote": {"cite"}, "q": {"cite"}, "del": {"cite", "datetime"}, "ins": {"cite", "datetime"},
    "time": {"datetime"}, "data": {"value"}, "li": {"value"}, "ol": {"start", "reversed", "type"},
    "td": {"colspan", "rowspan", "headers"}, "th": {"colspan", "rowspan", "headers", "scope", "abbr"},
    "col": {"span"}, "colgroup": {"span"},
    "button": {"type", "disabled", "name", "value"},
}
# Removed with everything inside them: their content is code, or is parsed by other rules
# (raw text, foreign content) that mutation attacks play on.
DROPPED_WITH_CONTENT = frozenset({"script", "style", "template", "iframe", "frame", "frameset", "object",
                                  "embed", "applet", "noscript", "noembed", "noframes", "xmp", "plaintext",
                                  "textarea", "title", "svg", "math", "select", "option", "head"})
URL_ATTRIBUTES = frozenset({"href", "src", "cite", "action", "formaction", "xlink:href", "poster",
                            "background", "data", "codebase", "longdesc", "manifest"})
SRCSET_ATTRIBUTES = frozenset({"srcset", "imagesrcset", "ping"})
# SVG animation of an attribute: <set attributeName="href" to="javascript:...">.
ANIMATION_VALUE_ATTRIBUTES = frozenset({"values", "to", "from", "by"})
FORBIDDEN_TARGETS = frozenset({"script", "style", "iframe", "object", "embed", "base", "meta", "link"})
_SELECTOR_LISTS = {"is", "where", "matches", "-webkit-any", "-moz-any"}
_TABLE_PARTS = frozenset({"tr", "td", "th", "thead", "tbody", "tfoot", "caption", "colgroup", "col"})


def _url_filter(tag, attribute, value):
    """ammonia checks href and src schemes itself; this adds srcset and the other URL
    attributes, with the same parser as everywhere else. Never raises."""
    if attribute in SRCSET_ATTRIBUTES:
        return None if srcset_problem(value) else value
    if attribute in URL_ATTRIBUTES:
        return None if url_problem(value) else value
    return value


@lru_cache(maxsize=1)
def _cleaner():
    return nh3.Cleaner(
        tags=set(ALLOWED_TAGS),
        clean_content_tags=set(DROPPED_WITH_CONTENT),
        attributes={"*": set(GENERIC_ATTRIBUTES), **{tag: set(names) for tag, names in TAG_ATTRIBUTES.items()}},
        generic_attribute_prefixes=set(GENERIC_PREFIXES),
        url_schemes={"http", "https", "mailto", "tel"},
        link_rel=None,
        strip_comments=True,
        attribute_filter=_url_filter,
    )


MAX_SANITISE_PASSES = 4


def sanitise_html(markup):
    """(sanitised HTML, [what was removed, one sentence each]). Sanitised again until it stops
    changing: a tree the parser builds can serialise to markup that parses into another tree (an
    <a> inside an <a>, moved out of a table), and what is published must read back as itself."""
    clean = markup
    for _ in range(MAX_SANITISE_PASSES):
        cleaner = _cleaner().clean(clean)
        if cleaner == clean:
            break
        clean = cleaner
    return clean, _removed(markup, clean) if clean != markup else []


def _inventory(markup):
    """Elements and (element, attribute, value) triples of the fragment as the SDK's browser
    builds it (parsed in a <template>, scripting on): lexbor, a parser independent of the
    sanitiser whose work it describes, and linear in time where html5lib was quadratic."""
    elements, attributes = Counter(), Counter()
    fragment = LexborHTMLParser(markup, is_fragment=True, fragment_tag="template", scripting=True).root
    for element in fragment.traverse() if fragment is not None else ():
        if not element.is_element_node:
            continue
        tag = element.tag.lower()
        elements[tag] += 1
        for name, value in element.attributes.items():
            attributes[tag, name.lower(), value or ""] += 1
    return elements, attributes


def _removed(markup, clean):
    before, before_attributes = _inventory(markup)
    after, after_attributes = _inventory(clean)
    messages = []
    for tag, count in sorted((before - after).items()):
        times = f" ({count} times)" if count > 1 else ""
        reason = ": table rows, cells and sections stay only inside a whole <table>" \
            if tag in _TABLE_PARTS and tag in ALLOWED_TAGS else ""
        messages.append(f"removed <{tag}> element{times}{reason}")
    for (tag, name, value), _ in sorted((before_attributes - after_attributes).items()):
        if tag in after:
            messages.append(f"removed attribute {name} (on <{tag}>){_attribute_reason(tag, name, value)}")
    return list(dict.fromkeys(messages))


def _attribute_reason(tag, name, value):
    if name.startswith("on"):
        return ": event handlers never run in merchant HTML"
    if name == "style":
        return ": inline style goes through the style action"
    allowed = name in GENERIC_ATTRIBUTES or name in TAG_ATTRIBUTES.get(tag, ()) or \
        any(name.startswith(p) for p in GENERIC_PREFIXES)
    if allowed and name in URL_ATTRIBUTES | SRCSET_ATTRIBUTES:
        problem = srcset_problem(value) if name in SRCSET_ATTRIBUTES else url_problem(value)
        return f": {problem}" if problem else ""
    return "" if allowed else ": not an allowed attribute"


def attr_problem(name, value):
    """Why an `attr` action may not set attribute `name` to `value` (None removes it), or None."""
    lower = name.lower()
    if lower.startswith("on"):
        return f"attr never sets event handlers ({name}): a site's own code can listen to vitrina.on(\"exposure\")"
    if lower == "style":
        return "attr never sets style: use the style action"
    if lower == "srcdoc":
        return "attr never sets srcdoc"
    if value is None:
        return None
    if lower in URL_ATTRIBUTES:
        return url_problem(value)
    if lower in SRCSET_ATTRIBUTES:
        return srcset_problem(value)
    if lower in ANIMATION_VALUE_ATTRIBUTES:
        return next(filter(None, (url_problem(v.strip()) for v in value.split(";") if v.strip())), None)
    if lower == "attributename" and (value.lower().startswith("on") or value.lower().rpartition(":")[2] in
                                     URL_ATTRIBUTES | SRCSET_ATTRIBUTES | {"style"}):
        return f"attr never animates {value}"
    return None


def selector_problem(selector):
    """Why an action may not use `selector`: its subject (the element it selects, after the
    last combinator) is a script, style, iframe, object, embed, base, meta or link element.
    A selector that does not say (`#later`) is refused by the SDK when it applies."""
    for subject in _subjects(tinycss2.parse_component_value_list(selector, skip_comments=True)):
        if subject in FORBIDDEN_TARGETS:
            return f"actions never target <{subject}> elements"
    return None


def _split(tokens, literal=","):
    part = []
    for token in tokens:
        if token.type == "literal" and token.value == literal:
            yield part
            part = []
        else:
            part.append(token)
    yield part


def _subjects(tokens):
    """Element names the subjects of a selector list name (lower case; escapes read)."""
    for complex_selector in _split(tokens):
        compound, boundary = [], False
        for token in complex_selector:
            if token.type == "whitespace" or (token.type == "literal" and token.value in (">", "+", "~", "||")):
                boundary = True
            else:
                if boundary:
                    compound, boundary = [], False
                compound.append(token)
        yield from _compound_subjects(compound)


def _compound_subjects(compound):
    if len(compound) >= 3 and compound[1].type == "literal" and compound[1].value == "|":
        compound = compound[2:]  # ns|type, *|type
    if compound and compound[0].type == "ident":
        yield compound[0].lower_value
    for before, token in zip(compound, compound[1:]):
        if before.type == "literal" and before.value == ":" and token.type == "function" \
                and token.lower_name in _SELECTOR_LISTS:
            yield from _subjects(token.arguments)


def _urls(tokens):
    """Every URL a CSS token list loads: url(...), src("..."), image-set("..."), @import "..."."""
    follows_import = False
    for token in tokens:
        if token.type == "url":
            yield token.value
        elif token.type == "string" and follows_import:
            yield token.value
        elif token.type == "function":
            if token.lower_name in ("url", "src", "image-set", "-webkit-image-set"):
                yield from (t.value for t in token.arguments if t.type == "string")
            yield from _urls(token.arguments)
        elif token.type in ("() block", "[] block", "{} block"):
            yield from _urls(token.content)
        if token.type != "whitespace":
            follows_import = token.type == "at-keyword" and token.lower_value == "import"


def css_problems(css, stylesheet):
    """Problems of CSS text: a stylesheet (`css` action) or declarations (`style` action)."""
    problems = []
    if stylesheet and "</style" in css.lower():
        problems.append("a stylesheet may not contain </style")
    try:
        tokens = tinycss2.parse_component_value_list(css, skip_comments=True)
    except ValueError:  # a number of more than 4300 digits: Python refuses to read it (int_max_str_digits)
        return problems + ["CSS syntax error: a number too long to read"]
    for url in _urls(tokens):
        problem = url_problem(url)
        if problem:
            problems.append(f"url({url!r}): {problem}")
    problems.extend(dict.fromkeys(f"CSS syntax error: {error.message}" for error in _errors(tokens)))
    return problems


def _errors(tokens):
    for token in tokens:
        if token.type == "error":
            yield token
        elif token.type == "function":
            yield from _errors(token.arguments)
        elif token.type in ("() block", "[] block", "{} block"):
            yield from _errors(token.content)
