"""A site's model reports as the store keeps them, the models that ship, and what saving a config
that reads predict.<goal> is warned of."""
import json

from server.configs.compiler import condition_paths
from server.store import get_store

PREDICT_PREFIX = "predict."


def reports(site):
    """{goal: the newest training report} (server/predict/training.py `train`, plus `model_from`:
    when the shipped model was trained, which may be an earlier training's when the newest fell
    below the floor)."""
    store = get_store()
    return {goal: json.loads(text) for goal, text in store.outage.call(store.model_reports, site).items()}


def published_models(site, goals):
    """{goal: model} of the goals in `goals` that have a published model: what the revision ships."""
    found = reports(site) if goals else {}
    return {goal: found[goal]["model"] for goal in goals if goal in found and found[goal].get("model")}


def kept_report(new, old):
    """The report to store after a training: `new`, keeping `old`'s model when `new` has none
    (a retraining below the floor does not take a working model away)."""
    if new.get("model") or not (old and old.get("model")):
        return {**new, "model_from": new["trained_at"] if new.get("model") else None}
    return {**new, "model": old["model"], "model_from": old.get("model_from") or old["trained_at"]}


def predicted_goals(condition):
    """The goals a condition reads as predict.<goal> (through $and, $or, $nor, $not)."""
    return [path[len(PREDICT_PREFIX):].split(".")[0] for path in condition_paths(condition)
            if path.startswith(PREDICT_PREFIX)]


def _conditions(config):
    """(JSON pointer, condition) of every condition of a config: segments, campaigns' conditions and
    pages, page-view goals."""
    for name, condition in (config.get("segments") or {}).items():
        yield f"/segments/{name}", condition
    for i, campaign in enumerate(config.get("campaigns") or []):
        for field in ("conditions", "pages"):
            if isinstance(campaign, dict) and campaign.get(field) is not None:
                yield f"/campaigns/{i}/{field}", campaign[field]
    for name, goal in (config.get("goals") or {}).items():
        if isinstance(goal, dict) and "pageview" in goal:
            yield f"/goals/{name}/pageview", goal["pageview"]


def predict_warnings(site, config):
    """Warnings for conditions on predict.<goal> that are false for everyone as things stand: the
    goal is not one of the config's, or it has no published model yet."""
    goals = set(config.get("goals") or {})
    modelled = None
    warnings = []
    for pointer, condition in _conditions(config):
        for goal in dict.fromkeys(predicted_goals(condition)):
            if goal not in goals:
                warnings.append({"path": pointer, "message": f"predict.{goal} names no goal of this config: "
                                 "no model can be trained for it, so conditions on it are always false"})
                continue
            if modelled is None:
                modelled = {g for g, r in reports(site).items() if r.get("model")}
            if goal not in modelled:
                warnings.append({"path": pointer, "message": f"predict.{goal} has no published model yet: conditions "
                                 f"on it are false until one is trained (vitrina models train {site})"})
    return warnings
