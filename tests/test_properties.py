"""Property-based tests (hypothesis): metrics on random probability matrices, config parsing on
random input. Both must hold for every input, not just the hand-picked ones."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from swagbench.bench.answer.metrics import calibration, detection_scores
from swagbench.bench.config import load_config, parse_backends
from swagbench.bench.errors import ConfigError


@st.composite
def prob_matrix_and_labels(draw):
    n = draw(st.integers(1, 60))
    c = draw(st.integers(2, 8))
    logits = draw(arrays(np.float64, (n, c), elements=st.floats(-30, 30, allow_nan=False)))
    probs = np.exp(logits - logits.max(axis=1, keepdims=True))
    probs /= probs.sum(axis=1, keepdims=True)
    labels = draw(arrays(np.int64, n, elements=st.integers(0, c - 1)))
    return probs, labels


@settings(max_examples=200, deadline=None)
@given(prob_matrix_and_labels(), st.randoms(use_true_random=False))
def test_calibration_bounds_and_row_order_invariance(data, rnd):
    probs, labels = data
    m = calibration(probs, labels)
    assert 0.0 <= m["ece"] <= m["mce"] + 1e-12 <= 1.0 + 1e-12
    assert m["nll"] >= 0.0 and 0.0 <= m["brier"] <= 2.0 + 1e-9 and 0.0 <= m["accuracy"] <= 1.0
    order = list(range(len(labels)))
    rnd.shuffle(order)
    shuffled = calibration(probs[order], labels[order])
    for key, value in m.items():
        assert shuffled[key] == pytest.approx(value, abs=1e-9), key


@settings(max_examples=100, deadline=None)
@given(prob_matrix_and_labels())
def test_perfect_one_hot_predictions_are_perfectly_calibrated(data):
    probs, labels = data
    onehot = np.eye(probs.shape[1])[labels]
    m = calibration(onehot, labels)
    assert m["ece"] == 0.0 and m["brier"] == 0.0 and m["accuracy"] == 1.0 and m["nll"] == pytest.approx(0.0)


@settings(max_examples=200, deadline=None)
@given(arrays(bool, st.integers(1, 50)), st.data())
def test_detection_scores_bounds(found, data):
    truth = data.draw(arrays(bool, found.shape))
    s = detection_scores(found, truth)
    assert all(0.0 <= s[k] <= 1.0 for k in ("precision", "recall", "f1"))
    assert s["n_found"] == found.sum() and s["n_true"] == truth.sum()


SECTIONS = {"ensemble": ("folds", "samples", "scale", "bn_batch_size"), "train": ("epochs", "lr", "batch_size"), "": ()}
VALUES = st.one_of(
    st.integers(-5, 50),
    st.floats(-2, 2, allow_nan=False),
    st.booleans(),
    st.text(max_size=6),
    st.none(),
    st.lists(st.integers(0, 3), max_size=3),
)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(
                [
                    "ensemble.folds",
                    "ensemble.samples",
                    "ensemble.scale",
                    "train.epochs",
                    "train.lr",
                    "threads",
                    "batch_size",
                    "timeout_s",
                    "memory_limit_gb",
                    "data.noise_rate",
                    "data.max_examples",
                    "ensemble.nope",
                    "nope",
                    "cleanlab.filter_by",
                ]
            ),
            VALUES,
        ),
        max_size=4,
    )
)
def test_config_parsing_accepts_or_raises_config_error_only(assignments):
    """Random overrides either build a valid config or raise ConfigError (one line), never anything else."""
    import yaml

    overrides = [
        f"{k}={yaml.safe_dump(v, default_flow_style=True).strip().removesuffix('...').strip()}" for k, v in assignments
    ]
    try:
        cfg = load_config(None, overrides)
    except ConfigError as exc:
        assert "\n" not in str(exc) and str(exc)
        return
    assert cfg.ensemble.folds >= 2 and cfg.ensemble.samples >= 1 and cfg.threads >= 0
    assert cfg == load_config(None, overrides)  # deterministic


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet="eagrbf1632int:cl,xz", max_size=30))
def test_backend_list_parsing_never_crashes(spec):
    try:
        trials = parse_backends(spec)
    except ConfigError:
        return
    items = [i for i in spec.split(",") if i.strip()]
    assert len(trials) == len(items)
    for trial, item in zip(trials, items, strict=True):
        parts = item.strip().split(":")
        assert trial["backend"] in (parts[0], ":".join(parts[:2]))  # a registered name, or module:Class
        assert trial.get("precision", "fp32") in ("fp32", "bf16", "int8")
        rest = parts[len(trial["backend"].split(":")) :]  # what follows the backend (or module:Class)
        assert trial.get("channels_last", False) == ("cl" in rest)
