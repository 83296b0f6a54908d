"""The background worker (`vitrina worker`, started once by `vitrina serve`): the one process for
every periodic job. It rebuilds each site's recommendations when they are due, and runs each of
PERIODIC_JOBS (adaptive allocation, model training) for each site where it is due, one node at a time per
site and job through a store lock (`<job>:<site>`); and it runs the alerts job
(server/results/watch.py: guardrails and auto_pause).

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
from dataclasses import dataclass
from typing import Callable

from flask import current_app

from server.allocation.recompute import allocate
from server.allocation.recompute import is_due as allocation_due
from server.predict.jobs import is_due as models_are_due
from server.predict.jobs import run_due as models_due
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


@dataclass(frozen=True)
class PeriodicJob:
    """A job the worker runs per site when due: `is_due(app, site)` (cheap: a few reads),
    `run(site)` (in an app context, under the store lock `<name>:<site>`) -> a summary dict or
    None, `line(summary)` what the worker prints."""
    name: str
    is_due: Callable
    run: Callable
    line: Callable


def _train_models(site):
    return models_due(get_store(), site, current_app.config["VITRINA_MODELS_EVERY_S"])


def _trained_line(summary):
    goals = ", ".join(f"{goal} {r['status']} (AUC {r['auc']})" for goal, r in summary["goals"].items())
    return f"models of {summary['site']}: {goals or 'shipped again'}; revision {summary['revision'] or 'unchanged'}"


PERIODIC_JOBS = [
    PeriodicJob("allocate", lambda app, site: allocation_due(site, app.config["VITRINA_ALLOCATE_EVERY_S"]), allocate,
                lambda s: f"allocated {s['site']} version {s['version']}: revision {s['revision'] or 'unchanged'} in {s['seconds']} s"),
    # predict.<goal>: retrain every VITRINA_MODELS_EVERY_S, ship again after a publish (server/predict/jobs.py)
    PeriodicJob("models", lambda app, site: models_are_due(site, time.time(), app.config["VITRINA_MODELS_EVERY_S"]),
                _train_models, _trained_line),
]


class LockHeld(Exception):
    """Another process holds the job's lock for this site."""


def run_job_with_lock(app, store, job, site, owner):
    """Run `job` for `site` under its lock if it is still due then (None when it is not);
    LockHeld when another process holds the lock."""
    name = f"{job.name}:{site}"
    if not store.acquire_lock(name, owner, LOCK_TTL_S):
        raise LockHeld(name)
    try:
        return job.run(site) if job.is_due(app, site) else None
    finally:
        store.release_lock(name, owner)


def run_pass(app, owner):
    """One look at every site; returns the summaries of the builds and jobs this process ran."""
    every_s = app.config["VITRINA_RECS_EVERY_S"]
    done = []
    with app.app_context():
        store = get_store()
        for site in store.list_sites():
            if is_due(store.recs_status(site), time.time(), every_s):
                summary = build_with_lock(store, site, owner, every_s)
                if summary:
                    log.info("recommendations built: %s", summary)
                    done.append({**summary, "line": _built_line(summary)})
            for job in PERIODIC_JOBS:
                if job.is_due(app, site):
                    try:
                        summary = run_job_with_lock(app, store, job, site, owner)
                    except LockHeld:
                        continue  # another node runs it
                    if summary:
                        log.info("%s: %s", job.name, summary)
                        done.append({**summary, "line": job.line(summary)})
    return done


def _built_line(summary):
    return (f"built {summary['site']}: {summary['rankings']} rankings from {summary['products']} products and "
            f"{summary['interactions']} interactions in {summary['seconds']} s")


def run(app, once=False, parent_pid=None):
    """Loop until stopped (or after one pass); exits when the parent process is gone."""
    owner = owner_name()
    poll_s = app.config["VITRINA_RECS_POLL_S"]
    while True:
        try:
            for summary in run_pass(app, owner):
                print(f"vitrina worker: {summary['line']}", flush=True)
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
