"""Serving through a store outage, in Chromium: `vitrina serve` on a real redis-server that is
killed (SIGKILL, then restarted) and stopped (SIGSTOP, then SIGCONT) while browsers load shop
pages and a client keeps asking for tag.js, the SDK file, /healthz and collect. tag.js answers
200 from memory and the pages apply their campaign, no request hangs, collect answers at once
(spooled while the store is away), and once it is back the results count exactly what the
browsers were shown. The latency figures are in bench/store_outage.py; HANG is a hang detector."""
import signal
import threading
import time
from http.client import HTTPConnection
from pathlib import Path

import pytest
from playwright.sync_api import expect

from tests.conftest import EXPERIMENT_CONFIG
from tests.servers import durable_redis, wait_for
from tests.test_fault_tolerance import _batch

from .conftest import Vitrina, _require_sdk

HANG = 1.0  # seconds: no request may take this long, outage or not
NOTE = {"control": "Free delivery from €50.", "today": "Order before 2 pm, delivered tomorrow."}


@pytest.fixture
def outage_server(tmp_path):
    """`vitrina serve` (2 workers) on a restartable redis-server; attributes `redis_process()`
    and `start_redis()`."""
    _require_sdk()
    with durable_redis() as (url, start, _, process):
        server = Vitrina(tmp_path, {"VITRINA_REDIS_URL": url, "VITRINA_RATE_CLIENT": "0"})
        with server.running():
            server.redis_process, server.start_redis = process, start
            yield server


class Prober(threading.Thread):
    """Asks for tag.js, the SDK file, /healthz and collect (a batch of its own site) over and over,
    on fresh connections, noting (phase, what, status, seconds) of each answer: the phase it
    began and ended in, or "between"."""

    def __init__(self, server_url, site, probe_site):
        super().__init__(daemon=True)
        self.host, self.site, self.probe_site = server_url[len("http://"):], site, probe_site
        self.phase, self.answers, self.batches = "up", [], 0
        self._done = threading.Event()

    def _ask(self, what, method, path, body=None):
        connection = HTTPConnection(*self.host.split(":"), timeout=5)
        phase, started = self.phase, time.monotonic()  # the phase the request began in
        try:
            connection.request(method, path, body=body, headers={"Content-Type": "text/plain"})
            response = connection.getresponse()
            response.read()
            status = response.status
        except OSError as e:
            status = type(e).__name__
        finally:
            connection.close()
        if self.phase == phase:  # begun and answered within one phase (else it says nothing of either)
            self.answers.append((phase, what, status, time.monotonic() - started))
        else:
            self.answers.append(("between", what, status, time.monotonic() - started))
        return status

    def run(self):
        while not self._done.is_set():
            self._ask("tag.js", "GET", f"/v1/sites/{self.site}/tag.js")
            self._ask("sdk", "GET", "/sdk/vitrina.min.js")
            self._ask("healthz", "GET", "/healthz")
            if self._ask("collect", "POST", f"/v1/sites/{self.probe_site}/collect", _batch(self.batches)) in (202, 204):
                self.batches += 1
            time.sleep(0.05)

    def stop(self):
        self._done.set()
        self.join(10)


def _stop(process):
    """SIGSTOP, returning once the process is stopped (signals are delivered asynchronously)."""
    process.send_signal(signal.SIGSTOP)
    wait_for(lambda: Path(f"/proc/{process.pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "T",
             timeout=5, what="redis-server stopped")


def _visit(new_context, site, tag_statuses):
    """A new visitor loads the home page; returns the home-note variation the page shows."""
    page = new_context().new_page()
    page.on("response", lambda r: tag_statuses.append(r.status) if r.url.endswith("/tag.js") else None)
    page.goto(site.url("/"))
    variation = page.evaluate("vitrina.getVariation('home-note')")
    expect(page.locator("#note")).to_have_text(NOTE[variation])
    page.goto("about:blank")  # pagehide: the exposure leaves now
    return variation


def test_tag_and_collect_keep_answering_while_redis_is_killed_and_stopped(outage_server, new_context):
    site = outage_server.new_site()
    probe_site = outage_server.site("probe", outage_server.create_site_fast("probe"), EXPERIMENT_CONFIG)
    shown, tag_statuses = [], []
    prober = Prober(outage_server.server_url, site.name, probe_site.name)
    prober.start()
    try:
        shown += [_visit(new_context, site, tag_statuses) for _ in range(2)]

        outage_server.redis_process().kill()
        outage_server.redis_process().wait()
        prober.phase = "killed"  # (set once it is: a request begun before may still have found it up)
        killed_until = time.monotonic() + 2.5  # past the version token's tick: the workers find it away
        while time.monotonic() < killed_until:
            shown.append(_visit(new_context, site, tag_statuses))
        prober.phase = "restarted"
        outage_server.start_redis()

        _stop(outage_server.redis_process())
        prober.phase = "stopped"
        try:
            stopped_until = time.monotonic() + 3
            while time.monotonic() < stopped_until:
                shown.append(_visit(new_context, site, tag_statuses))
        finally:
            outage_server.redis_process().send_signal(signal.SIGCONT)

        prober.phase = "back"
        shown += [_visit(new_context, site, tag_statuses) for _ in range(2)]
        time.sleep(1)
    finally:
        prober.stop()

    assert tag_statuses and set(tag_statuses) == {200}, tag_statuses
    slow = [a for a in prober.answers if not isinstance(a[2], int) or a[3] >= HANG]
    assert not slow, f"requests that hung or failed: {slow}"
    for phase in ("killed", "stopped"):
        answers = [a for a in prober.answers if a[0] == phase]
        assert {status for _, what, status, _ in answers if what in ("tag.js", "sdk")} == {200}, answers
        assert {status for _, what, status, _ in answers if what == "collect"} == {202}, answers  # spooled
        assert {status for _, what, status, _ in answers if what == "healthz"} == {503}, answers  # degraded

    # Counting is exact once the store is back: the spool replays, by event id, exactly once.
    expected = {variation: shown.count(variation) for variation in NOTE}
    results = site.wait_for_results(lambda r: r.total_visitors("home-note") >= len(shown), timeout=20)
    time.sleep(0.5)  # a double count would land now
    results = site.results()
    assert {v: results.visitors("home-note", v) for v in NOTE} == expected
    assert results.total_visitors("home-note") == len(shown) and results.rejected() == {}
    sent = prober.batches
    probe_results = probe_site.wait_for_results(lambda r: r.total_visitors("hero") >= sent, timeout=20)
    assert probe_results.total_visitors("hero") == sent
    assert sum(probe_results.goal("hero", v, "purchase")["conversions"] for v in ("control", "b")) == sent
