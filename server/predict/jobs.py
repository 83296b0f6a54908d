"""Training a site's models and shipping them, in the background worker (server/recs/worker.py)
or from `vitrina models train`: the `models` part of the site's revision
(server/configs/publishing.py publish_revision) holds the published model of every goal the
latest version reads as predict.<goal>."""
import calendar
import json
import time

from server.configs import publishing
from server.predict.models import kept_report, published_models, reports
from server.predict.training import train

LOCK_TTL_S = 600  # a training holds the lock models:<site> this long at most (one node trains a site)
STAGES = ("examples", "split", "cross-validate", "fit", "evaluate")  # what `progress` hears, per goal


def lock_name(site):
    return f"models:{site}"


def train_with_lock(store, site, owner, goals=None, progress=None):
    """train_site under the site's lock; None when another process holds it."""
    if not store.acquire_lock(lock_name(site), owner, LOCK_TTL_S):
        return None
    try:
        return train_site(store, site, goals, progress)
    finally:
        store.release_lock(lock_name(site), owner)


def bundle_goals(site):
    """The goals the latest published version reads as predict.<goal> (its `predict` list)."""
    latest = publishing.load_latest(site)
    return list((latest[0].get("predict") or []) if latest else [])


def goals_to_train(site):
    """The goals the latest version reads, and any trained before (their reports stay fresh)."""
    return sorted(set(bundle_goals(site)) | set(reports(site)))


def train_site(store, site, goals=None, progress=None):
    """Train each goal's model from the site's feature rows, store the reports, and ship the
    published models. Returns {"site", "goals": {goal: report}, "revision"}."""
    goals = goals_to_train(site) if goals is None else goals
    rows = store.feature_rows(site) if goals else []
    before = reports(site)
    done = {}
    for goal in goals:
        report = kept_report(train(rows, goal, progress=progress), before.get(goal))
        store.save_model(site, goal, json.dumps(report, separators=(",", ":")))
        done[goal] = report
    return {"site": site, "goals": done, "revision": ship(site)}


def served_models(site):
    """The `models` part of the revision served now with the latest version ({} when none)."""
    return (publishing.current_revision(site) or {}).get("models") or {}


def ship(site):
    """Publish a revision whose `models` part is the published models of the goals the latest
    version reads, when that differs from what is served. Returns the new revision number or None."""
    wanted = published_models(site, bundle_goals(site))
    if wanted == served_models(site):
        return None
    return publishing.publish_revision(site, {"models": wanted or None})


def training_due(site, now, every_s):
    """The latest version reads a goal whose last training is older than `every_s`, or missing."""
    found = reports(site)
    return any(goal not in found or now - _epoch(found[goal]["trained_at"]) >= every_s for goal in bundle_goals(site))


def is_due(site, now, every_s):
    """Training is due (training_due), or shipping: the served models are not the published ones
    (a new version was published since: revisions do not carry parts over to a new version)."""
    goals = bundle_goals(site)
    return bool(goals) and (training_due(site, now, every_s) or published_models(site, goals) != served_models(site))


def run_due(store, site, every_s, progress=None):
    """What the worker runs for a due site: a training when one is due, else the shipping alone."""
    if training_due(site, time.time(), every_s):
        return train_site(store, site, progress=progress)
    return {"site": site, "goals": {}, "revision": ship(site)}


def _epoch(stamp):
    return calendar.timegm(time.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ"))
