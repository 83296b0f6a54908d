"""The background worker (`vitrina worker`, started once by `vitrina serve`): rebuilds each site's
recommendations when they are due, one node at a time per site through a store lock, and runs
the alerts job (server/results/watch.py: guardrails and auto_pause).

A site is due when its catalogue or orders changed since its last build (within
VITRINA_RECS_POLL_S), or when browsers sent signals since and the last build is older than
VITRINA_RECS_EVERY_S. The lock `recs:<site>` is taken for LOCK_TTL_S and extended while the build
runs, so a node that dies mid-build frees it; the status is read again under the lock, so a
build another node just finished is not repeated."""
import logging
import os
import secrets
import socket
import time

from server.recs.build import build_site
from server.results import watch
from server.store import UNAVAILABLE, get_store

log = logging.getLogger(__name__)
LOCK_TTL_S = 300
EXTEND_EVERY_S = 30


def owner_name():
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"


def is_due(status, now, every_s):
    built, imports, signals = status["built_at"], status["imports_at"], status["signals_at"]
    if imports is not None and (built is None or imports > built):
        return True
    if signals is not None and (built is None or signals > built):
        return built is None or (every_s > 0 and now - built >= every_s)
    return False


def build_with_lock(store, site, owner, every_s=None, progress=None):
    """Build the site's rankings under its lock; None when another holder has it or (when
    every_s is given) when the site is no longer due once the lock is held."""
    name = f"recs:{site}"
    if not store.acquire_lock(name, owner, LOCK_TTL_S):
        return None
    extended = [time.monotonic()]

    def keep_lock(stage):
        if time.monotonic() - extended[0] > EXTEND_EVERY_S:
            store.acquire_lock(name, owner, LOCK_TTL_S)
            extended[0] = time.monotonic()
        if progress:
            progress(stage)

    try:
        if every_s is not None and not is_due(store.recs_status(site), time.time(), every_s):
            return None
        return build_site(store, site, progress=keep_lock)
    finally:
        store.release_lock(name, owner)


def run_pass(app, owner):
    """One look at every site; returns the summaries of the builds this process ran."""
    every_s = app.config["VITRINA_RECS_EVERY_S"]
    done = []
    with app.app_context():
        store = get_store()
        for site in store.list_sites():
            if not is_due(store.recs_status(site), time.time(), every_s):
                continue
            summary = build_with_lock(store, site, owner, every_s)
            if summary:
                log.info("recommendations built: %s", summary)
                done.append(summary)
    return done


def run(app, once=False, parent_pid=None):
    """Loop until stopped (or after one pass); exits when the parent process is gone."""
    owner = owner_name()
    poll_s = app.config["VITRINA_RECS_POLL_S"]
    while True:
        try:
            for summary in run_pass(app, owner):
                print(f"vitrina worker: built {summary['site']}: {summary['rankings']} rankings from "
                      f"{summary['products']} products and {summary['interactions']} interactions in "
                      f"{summary['seconds']} s", flush=True)
            for site, campaign, version, note in watch.run_pass(app, owner):
                print(f"vitrina worker: paused {site} campaign {campaign} (version {version}): {note}", flush=True)
        except UNAVAILABLE as e:
            log.warning("store unavailable, next pass in %s s: %s", poll_s, e)
        if once:
            return
        deadline = time.monotonic() + poll_s
        while time.monotonic() < deadline:
            if parent_pid is not None and os.getppid() != parent_pid:
                return  # `vitrina serve` is gone: so are we
            time.sleep(min(0.5, poll_s))
