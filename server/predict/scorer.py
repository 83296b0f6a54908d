"""Scoring a visitor with a published model: the twin of sdk_js/src/predict.js `score` and
`installPredictions` (spec/08-predict.json holds them together, to 1e-9)."""
import math

from server.decisions.conditions import Unavailable
from server.predict.features import features

NO_MODEL = "no published model for predict.{goal}: conditions on it are false"


def score(model, values):
    """The probability of converting: the logistic of intercept + the weighted features, summed in
    the model's order (a feature the vector lacks is 0)."""
    z = model["intercept"]
    for name, weight in model["weights"].items():
        z += weight * values.get(name, 0)
    return 1 / (1 + math.exp(-z)) if z >= 0 else math.exp(z) / (1 + math.exp(z))


def install_predictions(tree, models, goals):
    """Put `predict` in an attribute tree: {goal: probability} for each goal in `goals` (the ones the
    bundle's conditions read) with a model, and for one without, a value that makes any condition
    reading it false with NO_MODEL as the reason. Whatever `predict` the tree had goes: only models
    set it. Returns the tree."""
    models = models or {}
    values = features(tree) if any(goal in models for goal in goals) else {}
    tree["predict"] = {goal: score(models[goal], values) if goal in models else Unavailable(NO_MODEL.format(goal=goal))
                       for goal in goals}
    return tree
