"""URLs in merchant content, read as the browser reads them: the WHATWG URL standard, through
ada (the parser Node.js uses), so `java\\tscript:`, `jav\\nascript:` and `\\x01javascript:` are
`javascript:` here too. Allowed: http, https, mailto, tel and relative URLs; a redirect also
takes a path on the page's own host, or an http(s) URL whose host settings.redirect_hosts names
(the server does not know the page's host, so a redirect that names any host needs it listed)."""
import re

from ada_url import URL

ALLOWED_SCHEMES = ("http", "https", "mailto", "tel")
# A relative URL that resolves to the same host on pages of two different hosts names its own
# host ("//evil.example/", "/\\evil.example/" in a browser). Pages of both schemes: "https:/x" is
# a path on an https page but the host x on an http page.
_PAGES = (("http://a.vitrina.invalid/", "http://b.vitrina.invalid/"),
          ("https://a.vitrina.invalid/", "https://b.vitrina.invalid/"))
_SRCSET_SEPARATORS = re.compile(r"[\t\n\f\r ,]+")


class Parsed:
    """scheme (lower case, no colon) and host: the host the URL names on a page of either
    scheme, or None when it stays on the page's own host."""

    def __init__(self, scheme, host):
        self.scheme, self.host = scheme, host


def parse(url):
    """How a page resolves `url`; None when the browser cannot parse it at all."""
    try:
        resolved = [(URL(url, first), URL(url, second)) for first, second in _PAGES]
    except ValueError:
        return None
    hosts = [a.hostname for a, b in resolved if a.hostname and a.hostname == b.hostname]
    return Parsed(resolved[-1][0].protocol[:-1], hosts[0] if hosts else None)


def url_problem(url):
    """Why `url` may not appear in merchant content (href, src, action, CSS url()...), or None."""
    parsed = parse(url)
    if parsed is None:
        return "not a valid URL"
    if parsed.scheme not in ALLOWED_SCHEMES:
        return f"{parsed.scheme}: URLs are not allowed (only http, https, mailto, tel or a relative URL)"
    return None


def srcset_problem(srcset):
    """The first refused URL of a srcset. Every token between whitespace and commas is checked,
    descriptors included: a browser's candidate URL always starts at such a boundary."""
    for token in _SRCSET_SEPARATORS.split(srcset):
        problem = token and url_problem(token)
        if problem:
            return problem
    return None


def normal_host(host):
    """A host as the URL parser writes it (lower case, punycode), or None if it is not one."""
    try:
        return URL(f"https://{host}/").hostname or None
    except ValueError:
        return None


def redirect_problem(url, redirect_hosts=()):
    """Why a redirect action may not send visitors to `url`, or None."""
    parsed = parse(url)
    if parsed is None:
        return "not a valid URL"
    if parsed.scheme not in ("http", "https"):
        return f"a redirect goes to a web page: a path or an http(s) URL, not {parsed.scheme}:"
    allowed = {normal_host(h) for h in redirect_hosts}
    if parsed.host is not None and parsed.host not in allowed:
        return (f"a redirect names the host {parsed.host}: use a path on this site, "
                f"or list {parsed.host} in settings.redirect_hosts")
    return None
