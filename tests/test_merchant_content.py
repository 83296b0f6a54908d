"""Merchant content that can never run script: the sanitiser attacked with the payloads that beat
the old deny-list and with Hypothesis mutations of them, its output read back by an independent
HTML5 parser (lexbor, through selectolax, in every context and scripting mode); URLs, selectors and CSS as the browser
reads them. The same payloads run in Chromium in e2e/test_merchant_content.py."""
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from selectolax.lexbor import LexborHTMLParser

from server.configs.merchant_content import (
    ALLOWED_TAGS,
    attr_problem,
    css_problems,
    sanitise_html,
    selector_problem,
)
from server.configs.urls import redirect_problem, srcset_problem, url_problem

# Each tries to call pwn(); every one ran in Chromium when the old validator let it through.
PAYLOADS = {
    **{f"{tag} title breakout": f'<{tag}><p title="</{tag}><img src=x onerror=pwn()>">'
       for tag in ("noembed", "xmp", "noframes", "textarea", "title", "noscript")},
    "svg style": "<svg><style><img src=x onerror=pwn()>",
    "CDATA in HTML": "<![CDATA[><img src=x onerror=pwn()>]]>",
    "comment that ends early": "<!--><img src=x onerror=pwn()>-->",
    "math mglyph mutation": '<math><mtext><table><mglyph><style><!--</style><img title="--&gt;&lt;/mglyph&gt;'
                            '&lt;img&Tab;src=1&Tab;onerror=pwn()&gt;">',
    "details ontoggle": "<details open ontoggle=pwn()>",
    "href with a tab": '<a href="java\tscript:pwn()">x</a>',
    "href with &NewLine;": '<a href="jav&NewLine;ascript:pwn()">x</a>',
    "href with a leading control": '<a href="\x01javascript:pwn()">x</a>',
    "formaction": '<form><button formaction="java\tscript:pwn()">x</button></form>',
    "iframe src": '<iframe src="\x01javascript:pwn()"></iframe>',
    "svg animate href": '<svg><a><animate attributeName=href values="javascript:pwn()"/><text y=20>x</text></a></svg>',
    "svg set href": '<svg><a><set attributeName=href to="javascript:pwn()"/><text y=20>x</text></a></svg>',
    "script": "<script>pwn()</script>",
    "srcdoc": '<iframe srcdoc="<img src=x onerror=pwn()>"></iframe>',
    "object data": '<object data="javascript:pwn()"></object>',
    "base href": '<base href="javascript:pwn()//">',
    "meta refresh": '<meta http-equiv="refresh" content="0;url=javascript:pwn()">',
    "form action": '<form action="javascript:pwn()"><input type=submit></form>',
    "srcset": '<img srcset="/a.png 1x,javascript:pwn() 2x">',
}
SCRIPT_CAPABLE = {"script", "iframe", "frame", "object", "embed", "base", "meta", "link", "style", "svg", "math",
                  "form", "template", "noscript", "animate", "set", "animatetransform", "animatemotion"}


def _elements(markup, context, scripting):
    root = LexborHTMLParser(markup, is_fragment=True, fragment_tag=context, scripting=scripting).root
    return [e for e in (root.traverse() if root is not None else ()) if e.is_element_node]


def assert_harmless(markup):
    """No script-capable element, handler or refused URL, however a browser parses it: in a
    <template> (as the SDK does) or a <div>, with scripting on or off."""
    for context in ("template", "div"):
        for scripting in (True, False):
            for element in _elements(markup, context, scripting):
                tag = element.tag.lower()
                assert tag in ALLOWED_TAGS and tag not in SCRIPT_CAPABLE, (markup, tag)
                for name, value in element.attributes.items():
                    name, value = name.lower(), value or ""
                    assert not name.startswith("on") and name not in ("style", "srcdoc", "formaction", "action"), \
                        (markup, name)
                    if name in ("href", "src", "cite", "xlink:href"):
                        assert url_problem(value) is None, (markup, name, value)
                    if name == "srcset":
                        assert srcset_problem(value) is None, (markup, value)


@pytest.mark.parametrize("markup", PAYLOADS.values(), ids=PAYLOADS.keys())
def test_every_known_payload_comes_out_harmless_and_says_what_was_removed(markup):
    clean, removed = sanitise_html(markup)
    assert_harmless(clean)
    assert removed, clean
    assert sanitise_html(clean) == (clean, [])  # stable: sanitising the output changes nothing


# Building blocks of mutation XSS: elements whose content the parser reads by other rules
# (raw text, foreign content, tables), handlers, URL disguises, quotes and comment openers.
TAGS = ["noembed", "xmp", "noframes", "textarea", "title", "noscript", "style", "script", "svg", "math", "mglyph",
        "malignmark", "mtext", "annotation-xml", "foreignobject", "desc", "table", "tr", "td", "select", "option",
        "template", "iframe", "img", "a", "p", "div", "form", "button", "details", "plaintext", "object", "embed",
        "base", "meta", "link", "set", "animate", "image", "use", "picture", "source", "frameset", "body", "html"]
ATTRIBUTES = ["onerror", "onload", "ontoggle", "onclick", "href", "src", "srcset", "formaction", "action",
              "xlink:href", "style", "title", "alt", "data", "srcdoc", "values", "to", "attributename", "class",
              "encoding", "is"]
URLS = ["javascript:pwn()", "java\tscript:pwn()", "jav&NewLine;ascript:pwn()", "\x01javascript:pwn()",
        "JaVaScRiPt:pwn()", "java&#x09;script:pwn()", "&#106;avascript:pwn()", " javascript:pwn()",
        "vbscript:pwn()", "data:text/html,<script>pwn()</script>", "/ok.png", "https://cdn.example/a.png",
        "x", "#top", "//evil.example/", "/a.png 1x,javascript:pwn() 2x", "text/html"]
TEXT = ["</", "<!--", "-->", "--!>", "<![CDATA[", "]]>", '"', "'", "`", ">", "<", "&", "&lt;", "\x00", "=",
        "pwn()", " ", "\n", "<img src=x onerror=pwn()>", "</style>", "</noscript>", "</title>", "</textarea>"]


def _attribute():
    quote = st.sampled_from(['"', "'", ""])
    return st.builds(lambda n, v, q: f" {n}={q}{v}{q}" if q or " " not in v else f' {n}="{v}"',
                     st.sampled_from(ATTRIBUTES), st.one_of(st.sampled_from(URLS), st.sampled_from(TEXT)), quote)


def _piece():
    tag = st.sampled_from(TAGS)
    opening = st.builds(lambda t, attrs, upper: f"<{t.upper() if upper else t}{''.join(attrs)}>",
                        tag, st.lists(_attribute(), max_size=3), st.booleans())
    closing = st.builds(lambda t: f"</{t}>", tag)
    return st.one_of(opening, closing, st.sampled_from(TEXT), st.sampled_from(list(PAYLOADS.values())))


def _mutate(text, data):
    """A known payload with a few characters inserted, deleted or changed."""
    for _ in range(data.draw(st.integers(0, 4))):
        i = data.draw(st.integers(0, len(text)))
        edit = data.draw(st.sampled_from(["insert", "delete", "case"]))
        if edit == "insert":
            text = text[:i] + data.draw(st.sampled_from(TEXT + ["<", "/", "\t", "\x0c"])) + text[i:]
        elif edit == "delete":
            text = text[:i] + text[i + 1:]
        else:
            text = text[:i] + text[i:i + 1].swapcase() + text[i + 1:]
    return text


@settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_piece(), min_size=1, max_size=12).map("".join))
@example("<a><a>x</a><table></table></a>")  # serialised nested <a>s parse back as siblings
def test_sanitised_html_built_from_mutation_pieces_is_harmless(markup):
    clean, _ = sanitise_html(markup)
    assert_harmless(clean)
    assert sanitise_html(clean)[0] == clean


@settings(max_examples=600, deadline=None)
@given(st.sampled_from(list(PAYLOADS.values())), st.data())
def test_mutated_payloads_are_harmless(payload, data):
    clean, _ = sanitise_html(_mutate(payload, data))
    assert_harmless(clean)
    assert sanitise_html(clean)[0] == clean


URL_CASES = [
    ("java\tscript:x", "javascript"), ("jav\nascript:x", "javascript"), ("\x01javascript:x", "javascript"),
    (" \x1f JAVASCRIPT:x", "javascript"), ("j\ra\nv\ta\rscript:x", "javascript"), ("vbscript:x", "vbscript"),
    ("data:text/html,x", "data"), ("localhost:8000/x", "localhost"), ("file:///etc/passwd", "file"),
]


@pytest.mark.parametrize("url, scheme", URL_CASES)
def test_refused_urls_name_the_scheme_the_browser_sees(url, scheme):
    assert url_problem(url) == f"{scheme}: URLs are not allowed (only http, https, mailto, tel or a relative URL)"


@pytest.mark.parametrize("url", ["/a", "a/b", "?q=1", "#x", "", "https://x.example/", "HTTP://X.example",
                                 "mailto:a@b.example", "tel:+331", "//cdn.example/a.png", "\u3000javascript:x",
                                 "javascript&colon;x"])
def test_allowed_urls(url):
    # The last two are relative paths to a browser too: only C0 controls and spaces are stripped,
    # and entities are not decoded outside HTML.
    assert url_problem(url) is None


def test_unparseable_url_is_refused():
    assert url_problem("http://[::1") == "not a valid URL"


@pytest.mark.parametrize("url, hosts, problem", [
    ("/x", [], None), ("x?y", [], None), ("https://shop.example/x", ["shop.example"], None),
    ("https://Shop.Example:8443/x", ["shop.example"], None), ("//shop.example/x", ["SHOP.example"], None),
    ("https://shop.example.evil.example/", ["shop.example"], "names the host shop.example.evil.example"),
    ("https://evil.example@shop.example/", ["shop.example"], None),
    ("https://shop.example@evil.example/", ["shop.example"], "names the host evil.example"),
    ("/\\evil.example", [], "names the host evil.example"), ("\\\\evil.example", [], "names the host evil.example"),
    ("http:evil.example", [], "names the host evil.example"), ("javascript:x", ["shop.example"], "not javascript:"),
    ("https:/evil.example", [], "names the host evil.example"),  # a path on an https page, a host on an http one
    ("tel:+1", [], "not tel:"),
])
def test_redirect_hosts(url, hosts, problem):
    got = redirect_problem(url, hosts)
    assert (got is None) if problem is None else (problem in got), got


@pytest.mark.parametrize("selector", ["script", "SCRIPT", "div>script", "div ~ script", "div + script:first-child",
                                      "body script#a.b[c]", "svg|script", "*|script", ":is(p, script)",
                                      ":where(:is(script))", "p,style", "iframe", "object", "embed", "base",
                                      "meta", "link", "scr\\69pt", "head  >  link[rel=preload]"])
def test_selectors_whose_subject_runs_or_loads_code_are_refused(selector):
    assert selector_problem(selector).startswith("actions never target <")


@pytest.mark.parametrize("selector", ["#later", ".a script.b ~ p", "script + p", "p:not(script)", "a[href^=script]",
                                      ":has(> script)", "div.script", "[data-script]", "#hero h1", "p::before"])
def test_selectors_whose_subject_is_something_else_are_accepted(selector):
    assert selector_problem(selector) is None


@pytest.mark.parametrize("name, value", [("href", "/x"), ("title", "javascript: the book"), ("data-x", "javascript:x"),
                                         ("href", None), ("src", "https://cdn.example/a.png")])
def test_attributes_that_are_fine(name, value):
    assert attr_problem(name, value) is None


@pytest.mark.parametrize("name", ["onclick", "OnError", "style", "srcdoc"])
def test_handlers_style_and_srcdoc_are_never_touched_even_to_remove_them(name):
    assert attr_problem(name, None) is not None


@pytest.mark.parametrize("css", ["a{color:red}", "@media (max-width:600px){.x{background:url(/a.png)}}",
                                 ":root{--x:url('https://cdn.example/a.woff2')}", "a::after{content:'</sty' 'le>'}"])
def test_css_that_is_fine(css):
    assert css_problems(css, stylesheet=True) == []
