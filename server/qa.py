"""Playwright helpers for QA teams testing pages that carry the Vitrina tag (sync API).

    from server.qa import decisions, exposures, force_url, reasons, wait_for_ready

    page.goto(force_url("https://shop.example/product", {"cta-wording": "urgent"}, debug=True))
    wait_for_ready(page)
    assert decisions(page)["cta-wording"] == "urgent"
    assert reasons(page)["cta-wording"] == "forced urgent"
    assert exposures(page)[0]["forced"] is True

Or as a pytest plugin: with `pytest_plugins = ["server.qa"]` in a test module (or the
root conftest.py), the `vitrina_qa` fixture binds the same helpers to pytest-playwright's
`page`:

    def test_urgent_wording(vitrina_qa):
        vitrina_qa.goto("https://shop.example/product", force={"cta-wording": "urgent"})
        assert vitrina_qa.decisions()["cta-wording"] == "urgent"

A forced variation (`?vitrina_force=<campaign>:<variation>`) is shown but never counted in
results, nor are the conversions of a visitor previewing one; it holds for the page view
it is on. `?vitrina_debug=1` logs one console line per campaign and decision:
`[vitrina] <campaign> <variation or null> <reason>`, which `reasons()` reads back (the tag fetches
the log's module from the Vitrina server, which prints the lines and fires `vitrina.on('debug')`:
`wait_for_debug()` waits for it).

PYTEST_DONT_REWRITE: the helpers raise their own messages, so a test module may import them
before pytest loads this module as a plugin.
"""
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

FORCE, DEBUG = "vitrina_force", "vitrina_debug"
READY_TIMEOUT_MS = 5000

# 'ready' carries the first decision of the page; getVariation answers for now (after
# vitrina.set(), a trigger or an SPA navigation). A late handler hears past events.
_READY = "() => new Promise((resolve) => vitrina.on('ready', resolve))"
_DECISIONS = """() => new Promise((resolve) => vitrina.on('ready', (d) => resolve(Object.fromEntries(
    Object.keys(d.reasons || {}).map((k) => [k, vitrina.getVariation(k)]).filter(([, v]) => v != null)))))"""
_EXPOSURES = """() => {
    if (!window.__vitrinaQaExposures) {
        const seen = (window.__vitrinaQaExposures = []);
        vitrina.on('exposure', (e) => seen.push(e));
    }
    return window.__vitrinaQaExposures;
}"""
_STARTED = "() => !!(window.vitrina && window.vitrina.getVisitorId && window.vitrina.getVisitorId())"
_DEBUG = """(ms) => new Promise((resolve) => {
    vitrina.on('debug', () => resolve(true));
    setTimeout(() => resolve(false), ms);
})"""


def _force_pair(campaign, variation):
    for name in (campaign, variation):
        if not isinstance(name, str) or not name or set(name) & set(":,&#="):
            raise ValueError(f"not a campaign or variation key: {name!r}")
    return f"{campaign}:{variation}"


def force_url(url, variations=None, debug=False):
    """`url` with `vitrina_force` previewing {campaign: variation} (merged with any force
    already in the URL; these win) and, with debug=True, `vitrina_debug=1`."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    forced = {}
    for name, value in query:
        if name == FORCE:
            forced.update(p.split(":", 1) for p in value.split(",") if ":" in p)
    forced.update(variations or {})
    query = [(n, v) for n, v in query if n != FORCE and not (debug and n == DEBUG)]
    if forced:
        query.append((FORCE, ",".join(_force_pair(c, v) for c, v in forced.items())))
    if debug:
        query.append((DEBUG, "1"))
    return urlunsplit(parts._replace(query=urlencode(query, safe=":,")))


def visitor_cookie(url, visitor_id):
    """The first-party cookie that makes the browser visitor `visitor_id` on url's site, for
    `context.add_cookies([...])` before the first page: bucketing is deterministic, so a
    known id lands in a known variation (ask the `decide` API which)."""
    parts = urlsplit(url)
    return {"name": "vtr_id", "value": visitor_id, "url": f"{parts.scheme}://{parts.netloc}"}


def wait_for_ready(page, timeout=READY_TIMEOUT_MS):
    """Wait until the tag has run on the page; returns its first decision
    {holdout, variations, reasons, holdout_campaigns} ({} when the site has no bundle)."""
    try:
        page.wait_for_function(_STARTED, timeout=timeout)
    except Exception as e:  # Playwright's TimeoutError, without importing Playwright here
        raise AssertionError(f"the Vitrina tag did not start on {page.url} within {timeout} ms") from e
    return page.evaluate(_READY)


def wait_for_debug(page, timeout=READY_TIMEOUT_MS):
    """Wait until the debug log is on the page (`vitrina_debug=1` in its URL, and the log's module
    loaded): every line so far is printed, and later ones print as they come."""
    wait_for_ready(page, timeout)
    if not page.evaluate(_DEBUG, timeout):
        raise AssertionError(f"no Vitrina debug log on {page.url} within {timeout} ms: is vitrina_debug=1 in "
                             "the URL, and /sdk/modules/debug.min.js reachable from the page?")


def decisions(page):
    """{campaign: variation} applying on the page now (holdout visitors: {})."""
    wait_for_ready(page)
    return page.evaluate(_DECISIONS)


def holdout(page):
    """Whether this visitor is in the site-wide holdout (sees no campaign)."""
    return bool(wait_for_ready(page).get("holdout"))


def exposures(page):
    """Every exposure the tag reported on this document, in order: {campaign, variation,
    holdout, forced?, id, version, ts}. SPA navigations add to the list; a new document starts
    a new one."""
    wait_for_ready(page)
    return page.evaluate(_EXPOSURES)


def parse_debug_line(text):
    """(campaign, variation or None, reason) from a `?vitrina_debug=1` console line, else None."""
    parts = text.split(" ", 3)
    if len(parts) < 4 or parts[0] != "[vitrina]":
        return None
    return parts[1], None if parts[2] == "null" else parts[2], parts[3]


def reasons(page):
    """{campaign: reason} of the latest decision logged on this document (needs
    `vitrina_debug=1` in the URL, see force_url(debug=True))."""
    wait_for_debug(page)
    out = {}
    for message in page.console_messages(filter="since-navigation"):
        line = parse_debug_line(message.text)
        if line:
            out[line[0]] = line[2]
    return out


class VitrinaQA:
    """The helpers above bound to one Playwright page."""

    def __init__(self, page):
        self.page = page

    def goto(self, url, force=None, debug=True, **kwargs):
        """Open url (with variations forced, and the debug log on by default); returns decisions()."""
        self.page.goto(force_url(url, force, debug), **kwargs)
        return self.decisions()

    def ready(self):
        return wait_for_ready(self.page)

    def decisions(self):
        return decisions(self.page)

    def holdout(self):
        return holdout(self.page)

    def exposures(self):
        return exposures(self.page)

    def reasons(self):
        return reasons(self.page)

    def wait_for_debug(self):
        return wait_for_debug(self.page)


try:
    import pytest
except ImportError:  # the helpers work without pytest; only the fixture needs it
    pytest = None

if pytest is not None:
    @pytest.fixture
    def vitrina_qa(page):
        """VitrinaQA on pytest-playwright's `page`."""
        return VitrinaQA(page)
