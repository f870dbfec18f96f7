"""Plain mirror of ``specs/adder_probes.claims.yaml``: linear probes (scikit-learn) on the
adder's residual stream at A4, and steering along a mean difference, a probe's weights and an
unembedding column.

The work a researcher does by hand: one clean pass keeping three residual streams at A4, five
probe fits (each with its control task on permuted labels), the intervals the claims report
(Wilson for accuracy, the seeded bootstrap for selectivity, R² and the steering effect), and
one steered pass per distinct (hook, scale, direction): four.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from bench.plain.common import checkpoint, passes, wilson

A4, A5 = 26, 27  # positions of X0..X9, +, Y0..Y9, =, A0..A10
HOOKS = ("blocks.0.hook_resid_pre", "blocks.0.hook_resid_post", "blocks.1.hook_resid_post")

#: (claim id, label or None) -> key of :func:`numbers`
SAME = {
    ("carry-probe", None): "carry probe accuracy",
    ("carry-probe-selective", None): "carry probe selectivity",
    ("carry-not-in-embedding", None): "carry probe before layer 0 accuracy",
    ("answer-digit-probe", None): "A5 digit probe accuracy",
    ("answer-digit-value", None): "A5 digit ridge R²",
    ("carry-steer", None): "steer +1 mean-diff: digit-error[A5] rise",
    ("carry-steer-surely", None): "steer +1 mean-diff: a5-accuracy drop",
    ("carry-steer-back", None): "steer -1 mean-diff: digit-error[A5] rise",
    ("carry-probe-steer", None): "steer +10 probe: digit-error[A5] rise",
    ("unembed-steer", None): "steer +40 W_U[:, 7]: digit-error[A5] rise",
}


def at_position(store: dict[str, torch.Tensor], name: str) -> Callable[..., None]:
    """A forward hook keeping the output at A4 of every batch."""
    def hook(_m: Any, _i: Any, out: torch.Tensor) -> None:
        part = out[:, A4].detach().clone()
        store[name] = part if name not in store else torch.cat([store[name], part])
    return hook


def add_at_a4(delta: np.ndarray) -> Callable[..., torch.Tensor]:
    """A forward hook adding ``delta`` (float64, cast to the activation's float32) at A4."""
    def hook(_m: Any, _i: Any, out: torch.Tensor) -> torch.Tensor:
        out = out.clone()
        out[:, A4] += torch.as_tensor(delta, dtype=out.dtype)
        return out
    return hook


def bootstrap(values: np.ndarray) -> tuple[float, float]:
    """95% percentile bootstrap of the mean: 2000 resamples drawn from ``default_rng(0)`` in
    blocks of 250 (the paired effect is the bootstrap of the per-sample differences)."""
    rng = np.random.default_rng(0)
    means = np.concatenate([values[rng.integers(0, values.size, size=(250, values.size))]
                            .mean(axis=1) for _ in range(8)])
    return float(np.quantile(means, 0.025)), float(np.quantile(means, 0.975))


def split(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Seed 0: a permutation's first 80% train, the rest held out; then the control labels
    (the labels permuted by the same generator)."""
    rng = np.random.default_rng(0)
    order = rng.permutation(labels.size)
    cut = int(0.8 * labels.size)
    return order[:cut], order[cut:], labels[rng.permutation(labels.size)]


def classify(x: np.ndarray, labels: np.ndarray) -> dict[str, Any]:
    """StandardScaler → LogisticRegression(C=1, max_iter=1000) on the training rows, and the
    same on the control labels; held-out correctness of each."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    train, test, control = split(labels)
    fits = [make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=1000))
            .fit(x[train], y[train]) for y in (labels, control)]
    right = fits[0].predict(x[test]) == labels[test]
    control_right = fits[1].predict(x[test]) == control[test]
    scaler, logistic = fits[0][0], fits[0][1]
    return {"right": right.astype(np.float64), "control": control_right.astype(np.float64),
            "direction": logistic.coef_[0] / scaler.scale_}


def r2(y: np.ndarray, predicted: np.ndarray) -> np.ndarray:
    """1 − Σ(y − ŷ)² / Σ(y − ȳ)² along the last axis."""
    total = ((y - y.mean(axis=-1, keepdims=True)) ** 2).sum(axis=-1)
    return 1 - ((y - predicted) ** 2).sum(axis=-1) / total


def regress(x: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """StandardScaler → Ridge(alpha=1) on the training rows (and on the control labels);
    held-out R² and its 95% bootstrap over 2000 resamples of the held-out rows drawn from
    ``default_rng(0)``."""
    from sklearn.linear_model import Ridge
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    train, test, control = split(labels)
    fits = [make_pipeline(StandardScaler(), Ridge(alpha=1.0)).fit(x[train], y[train])
            for y in (labels, control)]
    y, predicted = labels[test], fits[0].predict(x[test])
    pick = np.random.default_rng(0).integers(0, y.size, size=(2000, y.size))
    draws = r2(y[pick], predicted[pick])
    draws = draws[np.isfinite(draws)]
    return {"R²": float(r2(y, predicted)), "low": float(np.quantile(draws, 0.025)),
            "high": float(np.quantile(draws, 0.975)),
            "control": float(r2(control[test], fits[1].predict(x[test])))}


def numbers() -> dict[str, float]:
    from threadpoolctl import threadpool_limits

    from examples.adder.data import generate

    model = checkpoint("examples/adder/checkpoints/adder.pt")
    data = generate(1000, 1234)
    tokens, carry = data["tokens"], data["carry"][:, 5].numpy()
    store: dict[str, torch.Tensor] = {}
    logits = passes(model, tokens, 500, {name: at_position(store, name) for name in HOOKS})
    pre0, post0, post1 = (store[name].double().numpy() for name in HOOKS)

    def wrong_a5(logits: torch.Tensor) -> np.ndarray:
        return (logits[:, A4].argmax(-1) != tokens[:, A5]).double().numpy()

    out: dict[str, float] = {}
    with threadpool_limits(1):  # small fits: one BLAS thread, as the library fits them
        carry_probe = classify(post0, carry)
        probes = {"carry probe": carry_probe,
                  "carry probe before layer 0": classify(pre0, carry),
                  "A5 digit probe": classify(post1, tokens[:, A5].numpy())}
        ridge = regress(post1, tokens[:, A5].numpy().astype(np.float64))
    for name, probe in probes.items():
        out[f"{name} accuracy"] = float(probe["right"].mean())
        right = probe["right"]
        out[f"{name} accuracy [low]"], out[f"{name} accuracy [high]"] = wilson(
            int(right.sum()), right.size)
        out[f"{name} control accuracy"] = float(probe["control"].mean())
    difference = carry_probe["right"] - carry_probe["control"]
    out["carry probe selectivity"] = float(difference.mean())
    out["carry probe selectivity [low]"], out["carry probe selectivity [high]"] = \
        bootstrap(difference)
    out["A5 digit ridge R²"] = ridge["R²"]
    out["A5 digit ridge R² [low]"], out["A5 digit ridge R² [high]"] = ridge["low"], ridge["high"]
    out["A5 digit ridge control R²"] = ridge["control"]

    mean_diff = post0[carry != 0].mean(axis=0) - post0[carry == 0].mean(axis=0)
    probe = carry_probe["direction"] / np.linalg.norm(carry_probe["direction"])
    unembed = model.state_dict()["unembed.W_U"][:, 7].double().numpy()
    before = wrong_a5(logits)
    for name, hook, delta in (("+1 mean-diff", HOOKS[1], mean_diff),
                              ("-1 mean-diff", HOOKS[1], -mean_diff),
                              ("+10 probe", HOOKS[1], 10 * probe),
                              ("+40 W_U[:, 7]", HOOKS[2], 40 * unembed)):
        after = wrong_a5(passes(model, tokens, 500, {hook: add_at_a4(delta)}))
        out[f"steer {name}: digit-error[A5] rise"] = float(after.mean() - before.mean())
        if name == "+1 mean-diff":  # a5-accuracy = 1 − error, per sum
            drop = (1 - before) - (1 - after)
            out[f"steer {name}: a5-accuracy drop"] = float((1 - before).mean()
                                                           - (1 - after).mean())
            low, high = bootstrap(drop)
            out[f"steer {name}: a5-accuracy drop [low]"] = low
            out[f"steer {name}: a5-accuracy drop [high]"] = high
    out["mean-diff norm"] = float(np.linalg.norm(mean_diff))
    return out
