"""``auto``: a backend option whose best value depends on the job's size, chosen from rates measured in the trial.

A graph runtime's ``binding`` is such a choice: ``inputs`` binds every sample's weights for free but runs a graph the
runtime cannot prepack; ``constants`` runs faster per image but rebuilds for every sample. Which is cheaper depends on
how many images one sample's BatchNorm pass and predict see, i.e. on the target job, not on the proxy. A trial with
``binding: auto`` builds every candidate on its first sample, times each one's rebind (what a further sample costs it
before any image) and full batches of both phases (:func:`swagbench.bench.measure.steady.time_calls`), and runs the
ensemble with the candidate that costs least per (fold, sample) pair at the target (:func:`choose`); the row's ``auto``
says what it measured and chose. The measuring is part of the trial's first sample (a one-off cost, like an export).
"""

from __future__ import annotations

from typing import Any

from swagbench.bench.answer.projection import bn_images


def pair_images(images: int, folds: int, bn_examples: int | None) -> dict[str, float]:
    """Images one (fold, sample) pair of a job of ``images`` x ``folds`` sees: its BatchNorm pass (the fold's
    training images, or the subset) and its predict (the fold's held-out images)."""
    return {"bn_update": bn_images(images, folds, bn_examples), "predict": images / folds}


def choose(candidates: dict[str, dict[str, float]], per_pair: dict[str, float]) -> tuple[str, dict[str, float]]:
    """The candidate cheapest per (fold, sample) pair and every candidate's cost, in seconds.

    ``candidates``: name -> ``rebind_s`` (seconds a further sample pays before its first image) and
    ``<phase>_s_per_image`` for the phases it runs (``bn_update``, ``predict``; a phase it does not run, e.g. a
    hybrid's BatchNorm pass in another engine, is absent and costs the same for all); ``per_pair``: the images
    each phase sees per pair at the target (:func:`pair_images`). Ties go to the first candidate."""
    cost = {
        name: c["rebind_s"] + sum(c.get(f"{phase}_s_per_image", 0.0) * n for phase, n in per_pair.items())
        for name, c in candidates.items()
    }
    best = min(cost, key=lambda name: (cost[name], list(cost).index(name)))
    return best, cost


def record(
    option: str, chosen: str, values: dict[str, Any], candidates: dict[str, dict[str, float]], cost, target
) -> dict[str, Any]:
    """The row's ``auto``: which option(s) (``bn_precision/binding`` where a candidate sets two), the candidate chosen
    and the option values it sets, for what target, from which measurements."""
    return {
        "option": option,
        "chosen": chosen,
        "values": values,
        "target": target,
        "candidates": {name: {**c, "pair_s_at_target": cost[name]} for name, c in candidates.items()},
    }


def resolved_options(options: dict[str, Any], auto: dict[str, Any] | None) -> dict[str, Any]:
    """A trial's ``options`` with the values its ``auto`` chose in place of ``auto`` (what a strategy file pins)."""
    return {**options, **auto["values"]} if auto else dict(options)


def strategy_text(strategy: str | None, auto: dict[str, Any] | None) -> str | None:
    """The row's strategy, with what ``auto`` chose: ``swap_weights (binding auto: constants)``."""
    return f"{strategy} ({auto['option']} auto: {auto['chosen']})" if auto and strategy else strategy
