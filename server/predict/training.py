"""Training a site's models of "converts within this session", one per goal (docs/DESIGN.md
"Predictive targeting").

Examples are the feature vectors recorded with exposures, one per page view of a session (a
session is a visitor and their visit.count); an example is positive when the same session has a
conversion of the goal at or after it. scikit-learn fits a logistic regression on standardised
features with balanced class weights, the intercept corrected for the balancing (so the output
is the real rate), and the regularisation chosen by 5-fold cross-validation (folds by visitor)
on the log loss of those corrected probabilities; the scaling is folded into the weights, and the weights rounded to 6 significant digits:
what ships is what the held-out AUC, the calibration and the report are computed with."""
import math
from datetime import datetime, timezone

from server.predict.features import FEATURES_VERSION
from server.predict.scorer import score

AUC_FLOOR = 0.6  # a model is published only when its held-out AUC is above this
MIN_EXAMPLES = 200
MIN_CLASS = 20  # positives and negatives each
MAX_FEATURES = 40  # of a model, the largest weights (standardised) kept
TOP_FEATURES = 10  # in the report
HELD_OUT = 0.25  # of the visitors
CALIBRATION_BINS = 10
REGULARISATION = (0.001, 0.01, 0.1, 1.0, 10.0, 100.0)  # C values cross-validation chooses from


def _session(row):
    return row["visitor"], row["features"].get("visit.count", 0)


def examples(rows, goal):
    """(feature dicts, labels, visitors): one example per exposed page view (the earliest vector
    of a session with that visit.pageviews), labelled 1 when the session converts on `goal` at or
    after it."""
    conversions = {}
    for row in rows:
        if row["kind"] == "conversion" and row["goal"] == goal:
            key = _session(row)
            conversions[key] = max(conversions.get(key, row["ts"]), row["ts"])
    first = {}
    for row in rows:
        if row["kind"] != "exposure":
            continue
        key = _session(row) + (row["features"].get("visit.pageviews", 0),)
        if key not in first or row["ts"] < first[key]["ts"]:
            first[key] = row
    chosen = sorted(first.values(), key=lambda r: (r["ts"], r["visitor"]))
    labels = [1 if conversions.get(_session(r), -1) >= r["ts"] else 0 for r in chosen]
    return [r["features"] for r in chosen], labels, [r["visitor"] for r in chosen]


def _round(x):
    return float(f"{x:.6g}")


def train(rows, goal, progress=None, now=None):
    """train_model on one BLAS thread: small fits run 50 times faster than with threads fighting
    over a busy machine's cores (measured: 24 s against 0.5 s for 4,000 examples on 2 loaded cores)."""
    import sklearn.linear_model  # noqa: F401  loaded first: a limit applies to the libraries loaded when it is set
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):
        return train_model(rows, goal, progress, now)


def train_model(rows, goal, progress=None, now=None):
    """A model report for `goal` from feature rows: {"goal", "status", "auc", "examples",
    "positives", "held_out", "trained_at", "calibration", "top", "model"}; status is "published"
    (AUC above the floor: `model` ships), "below_floor", or "not_enough_data" (no fit, no model)."""
    import numpy as np
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import GroupKFold, GroupShuffleSplit

    step = progress or (lambda stage: None)
    trained_at = (now or datetime.now(timezone.utc)).strftime("%Y-%m-%dT%H:%M:%SZ")
    vectors, labels, visitors = examples(rows, goal)
    report = {"goal": goal, "features": FEATURES_VERSION, "trained_at": trained_at, "examples": len(labels),
              "positives": sum(labels), "auc": None, "held_out": 0, "calibration": [], "top": [], "model": None,
              "floor": AUC_FLOOR}
    step("examples")
    positives = sum(labels)
    if len(labels) < MIN_EXAMPLES or positives < MIN_CLASS or len(labels) - positives < MIN_CLASS:
        return {**report, "status": "not_enough_data"}
    names = sorted({name for vector in vectors for name in vector})
    x = np.array([[vector.get(name, 0.0) for name in names] for vector in vectors])
    y, groups = np.array(labels), np.array(visitors)
    train_at, test_at = next(GroupShuffleSplit(n_splits=1, test_size=HELD_OUT, random_state=0).split(x, y, groups))
    if len(set(y[train_at])) < 2 or len(set(y[test_at])) < 2:
        return {**report, "status": "not_enough_data"}
    mean, spread = x[train_at].mean(axis=0), x[train_at].std(axis=0)
    spread[spread == 0] = 1.0
    standard = (x - mean) / spread
    step("split")
    xs, ys = standard[train_at], y[train_at]
    folds = list(GroupKFold(n_splits=5).split(xs, ys, groups[train_at]))
    losses = {c: np.mean([_held_out_loss(xs, ys, fold, c) for fold in folds]) for c in REGULARISATION}
    chosen = min(REGULARISATION, key=lambda c: (losses[c], c))  # a tie goes to the stronger penalty
    step("cross-validate")
    fit = _fit(xs, ys, chosen)
    step("fit")
    weights = fit.coef_[0]
    kept = sorted(np.argsort(-np.abs(weights))[:MAX_FEATURES])
    raw = {names[i]: weights[i] / spread[i] for i in kept if weights[i] != 0}
    intercept = _corrected_intercept(fit, ys) - sum(weights[i] * mean[i] / spread[i] for i in kept)
    model = {"features": FEATURES_VERSION, "intercept": _round(intercept),
             "weights": {name: _round(w) for name, w in raw.items()}}
    predicted = np.array([score(model, vectors[i]) for i in test_at])
    auc = float(roc_auc_score(y[test_at], predicted))
    step("evaluate")
    top = sorted(({"feature": n, "weight": w, "standardised": _round(weights[names.index(n)])}
                  for n, w in model["weights"].items()), key=lambda t: -abs(t["standardised"]))[:TOP_FEATURES]
    published = auc > AUC_FLOOR
    return {**report, "status": "published" if published else "below_floor", "auc": round(auc, 4),
            "held_out": len(test_at), "regularisation": chosen,
            "calibration": calibration(y[test_at], predicted), "top": top, "model": model if published else None}


def _fit(x, y, c):
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(C=c, class_weight="balanced", max_iter=2000).fit(x, y)


def _corrected_intercept(fit, y):
    """Balanced class weights multiply the fitted odds by negatives/positives: take it back out,
    so the model gives the real rate (King and Zeng's prior correction)."""
    positives = int(y.sum())
    return fit.intercept_[0] - math.log((len(y) - positives) / positives)


def _held_out_loss(x, y, fold, c):
    """The log loss, on a fold's held-out part, of the corrected probabilities a fit with penalty
    `c` on the rest gives: what the regularisation is chosen by (AUC, flat over heavy shrinkage,
    would not see that shrunk weights pull every probability toward the base rate)."""
    import numpy as np
    from sklearn.metrics import log_loss

    fitting, held = fold
    fit = _fit(x[fitting], y[fitting], c)
    z = x[held] @ fit.coef_[0] + _corrected_intercept(fit, y[fitting])
    return log_loss(y[held], 1 / (1 + np.exp(-z)), labels=[0, 1])


def calibration(labels, predicted):
    """The reliability curve: held-out examples in CALIBRATION_BINS bins of equal size by predicted
    probability, each with its mean prediction and observed rate."""
    import numpy as np

    order = np.argsort(predicted, kind="stable")
    bins = [b for b in np.array_split(order, min(CALIBRATION_BINS, len(order))) if len(b)]
    return [{"predicted": round(float(predicted[b].mean()), 4), "observed": round(float(labels[b].mean()), 4),
             "n": int(len(b))} for b in bins]
