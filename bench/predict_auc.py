"""predict_auc: how well the shipped model of predict.<goal> ranks visitors, against the best any
model could do, and what it costs in the bundle.

A generated site whose conversions depend on known attributes (server/predict/synthetic.py: a
logistic model of page views, a cart, an email visit, a return, a phone, items added) gives
20,000 training sessions; the real training (server/predict/training.py: the encoding, class
balancing, the cross-validated penalty, the rounding) makes the model that would ship. On 20,000
fresh sessions of the same site, the model's AUC is set against the generator's true AUC (its own
probabilities ranking the same sessions: no model can do better in expectation). The model's
bytes are the `models` part of the revision as tag.js carries it (canonical JSON, raw and gzip),
against the compiled bundle of the demo config; the predict module's own gzipped size is beside
it. Deterministic (seeded)."""
import gzip
import json
import time
from pathlib import Path

from server.configs.compiler import compile_bundle
from server.configs.signing import canonical_json
from server.predict.features import features
from server.predict.scorer import score
from server.predict.synthetic import generate, true_probability, visitor_tree
from server.predict.training import train

from .common import Row, log

TRAIN_SESSIONS, TEST_SESSIONS, SEED = 20_000, 20_000, 20261130
REPO = Path(__file__).resolve().parents[1]


def _auc(labels, scores):
    from sklearn.metrics import roc_auc_score
    return float(roc_auc_score(labels, scores))


def run():
    import random

    started = time.monotonic()
    rows, _ = generate(TRAIN_SESSIONS, seed=SEED)
    t0 = time.monotonic()
    report = train(rows, "purchase")
    trained_s = time.monotonic() - t0
    model = report["model"]
    log(f"trained on {report['examples']} examples ({report['positives']} converted) in {trained_s:.1f} s: "
        f"{report['status']}, held-out AUC {report['auc']}, C={report.get('regularisation')}")
    rng = random.Random(SEED + 1)
    trees = [visitor_tree(rng) for _ in range(TEST_SESSIONS)]
    truth = [true_probability(t) for t in trees]
    labels = [1 if rng.random() < p else 0 for p in truth]
    shipped = [score(model, features(t)) for t in trees] if model else [0.0] * len(trees)
    model_auc, true_auc = _auc(labels, shipped), _auc(labels, truth)
    mean_predicted, rate = sum(shipped) / len(shipped), sum(labels) / len(labels)

    part = canonical_json({"models": {"purchase": model}}).encode()
    demo = compile_bundle("demo", 1, json.loads((REPO / "server" / "demo" / "config.json").read_text()))
    demo_gzip = len(gzip.compress(canonical_json(demo).encode(), 9))
    manifest = json.loads((REPO / "sdk_js" / "dist" / "manifest.json").read_text())
    module = (REPO / "sdk_js" / "dist" / manifest["modules"]["predict"]).read_bytes()
    seconds = time.monotonic() - started
    return [
        Row("predict_auc", "AUC of the shipped model on fresh sessions", model_auc, "", true_auc,
            "the generator's true AUC", ">= 0.95x true", model_auc >= 0.95 * true_auc,
            note=f"model {model_auc:.4f}, true {true_auc:.4f}"),
        Row("predict_auc", "held-out AUC the training reports", report["auc"] or 0.0, "", 0.6, "the publishing floor",
            "> floor", report["status"] == "published"),
        Row("predict_auc", "mean predicted probability (calibration in the large)", mean_predicted * 100, "%",
            rate * 100, "observed conversion rate", "within 1 point", abs(mean_predicted - rate) <= 0.01),
        Row("predict_auc", "model in the bundle, gzip", len(gzip.compress(part, 9)), "B", demo_gzip,
            "demo config's compiled bundle, gzip", "<= 1,000 B", len(gzip.compress(part, 9)) <= 1000,
            note=f"{len(part)} B raw, {len(model['weights']) if model else 0} weights"),
        Row("predict_auc", "predict module, gzip", len(gzip.compress(module, 9)), "B", target="<= 1,400 B (size-limit)",
            ok=len(gzip.compress(module, 9)) <= 1400),
        Row("predict_auc", "training time, 20,000 sessions", trained_s, "s", target="< 60 s", ok=trained_s < 60),
        Row("predict_auc", "run time", seconds, "s", target="< 120 s", ok=seconds < 120),
    ]
