"""Linear probes on one activation at one position: the capture, the labels, the seeded split,
the fit (scikit-learn), the control task and the intervals.

The activation at ``hook`` and one position is captured in the planned clean pass
(:class:`PositionSink`: ``[sample, features]``, float32). A probe is trained on a seeded 80%
of the samples and scored on the other 20% (see docs/definitions.md, "Linear probes"):

* classification: ``StandardScaler`` fitted on the training rows, then
  ``LogisticRegression(C=1.0, max_iter=1000)``; held-out accuracy with a Wilson interval;
* regression: the same scaler, then ``Ridge(alpha=1.0)``; held-out R² with a seeded
  percentile bootstrap over the held-out samples;
* the control task: the same probe on a seeded permutation of the labels (same marginal);
  selectivity = accuracy − control accuracy, with a bootstrap interval of the per-sample
  differences.
"""

from __future__ import annotations

import copy
import hashlib
from collections.abc import Hashable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from interp_assert.errors import QuantityError
from interp_assert.evaluate.forward import KeepingSink
from interp_assert.evaluate.stats import bootstrap_mean, wilson
from interp_assert.loading.data import DatasetSpec

TRAIN_FRACTION = 0.8
LOGISTIC_C = 1.0
MAX_ITER = 1000
RIDGE_ALPHA = 1.0
R2_RESAMPLES = 2000
MAX_CLASSES = 64


class PositionSink(KeepingSink):
    """Keeps a hook's output at one position, flattened to ``[sample, features]`` (float32)."""

    def __init__(self, hook: str, position: int) -> None:
        self.hook, self.position = hook, position
        self.parts = []

    def update(self, value: Any, batch: dict[str, Any]) -> None:
        tensor = value[0] if isinstance(value, tuple | list) else value
        if tensor.ndim < 3:
            raise QuantityError(f"'{self.hook}' has shape {tuple(tensor.shape)}; a probe needs "
                                "[batch, position, ...]",
                                hint="probe a hook with a position axis (e.g. hook_resid_post)")
        if not -tensor.shape[1] <= self.position < tensor.shape[1]:
            raise QuantityError(f"position {self.position} is outside '{self.hook}' "
                                f"({tensor.shape[1]} positions)")
        part = tensor[:, self.position].detach().float().cpu().numpy()
        self.parts.append(part.reshape(part.shape[0], -1))


def position_of(spec: DatasetSpec, label: str) -> int:
    """The index of a position label in a dataset spec (no loading): its ``positions:``, or an
    integer label when it has none."""
    if spec.positions is not None and label in spec.positions:
        return spec.positions.index(label)
    if label.lstrip("-").isdigit():
        return int(label)
    from interp_assert.loading.data import load_dataset

    return load_dataset(spec).position_index(label)  # raises the dataset's error


def sink_key(hook: str, position: int) -> Hashable:
    return ("position-activation", hook, position)


def activation_at(ctx: Any, spec: DatasetSpec, hook: str, label: str) -> np.ndarray:
    """``[sample, features]`` activation of ``hook`` at position ``label`` on ``spec`` (the
    planned clean pass of the context's interventions)."""
    from interp_assert.evaluate.forward import announce, request

    position = position_of(spec, label)
    key = sink_key(hook, position)
    interventions = tuple(getattr(ctx, "interventions", ()) or ())
    announce(ctx.plan, ctx.subject, spec, key, lambda: PositionSink(hook, position),
             interventions)
    return request(ctx.plan, ctx.subject, spec, key, lambda: PositionSink(hook, position),
                   interventions)


def field_labels(values: Any, name: str, column: int | None, position: int, n: int,
                 seq_len: int | None) -> np.ndarray:
    """Per-sample labels from a dataset field or quantity: a ``[n]`` array; a ``[n, k]`` one
    with ``column`` (``carry[5]``), or, without it, when k is the sequence length, the column
    at the probe's position."""
    array = np.asarray(values.detach().cpu().numpy() if hasattr(values, "detach") else values)
    if array.ndim == 0 or array.shape[0] != n:
        raise QuantityError(f"'{name}' has shape {array.shape}; a probe label needs one value "
                            f"per sample ({n})", hint="name a field with one value per sample")
    if column is not None:
        if array.ndim != 2 or not 0 <= column < array.shape[1]:
            raise QuantityError(f"'{name}[{column}]': '{name}' has shape {array.shape}",
                                hint=f"pick a column 0..{array.shape[1] - 1}" if array.ndim == 2
                                else f"write '{name}' without a column")
        return array[:, column]
    if array.ndim == 1:
        return array
    if array.ndim == 2 and seq_len is not None and array.shape[1] == seq_len:
        return array[:, position]
    raise QuantityError(f"'{name}' has shape {array.shape}: which column is the label?",
                        hint=f"write '{name}[i]' for column i" if array.ndim == 2
                        else "name a field with one value per sample")


def split(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.random.Generator]:
    """(train, held-out) sample indices: the first 80% of a seeded permutation, the rest; the
    generator goes on to draw the control labels."""
    rng = np.random.default_rng(seed)
    order = rng.permutation(n)
    cut = int(np.floor(TRAIN_FRACTION * n))
    if cut < 2 or n - cut < 1:
        raise QuantityError(f"a probe needs at least 3 samples (has {n})",
                            hint="raise the dataset's 'n'")
    return order[:cut], order[cut:], rng


@dataclass
class ProbeFit:
    """A fitted probe's scores on its training and held-out samples, and its control's."""

    task: str  # "classification" or "regression"
    train: float
    test: float
    interval: tuple[float, float]
    control_train: float
    control_test: float
    n_train: int
    n_test: int
    classes: list[Any] = field(default_factory=list)
    majority: float = float("nan")
    selectivity: float = float("nan")
    selectivity_interval: tuple[float, float] = (float("nan"), float("nan"))
    confusion: list[list[int]] = field(default_factory=list)
    direction: np.ndarray | None = None  # activation-space weight vector (binary probes)
    #: the per-unit data of the intervals at any level (and their p-values): each held-out
    #: sample right (1) or wrong (0), accuracy − control per held-out sample, finite R² draws
    correct: np.ndarray | None = None
    differences: np.ndarray | None = None
    r2_draws: np.ndarray | None = None


def _classes(labels: np.ndarray, name: str) -> np.ndarray:
    if labels.dtype.kind == "f":
        if not np.all(np.isfinite(labels)):
            raise QuantityError(f"'{name}' has NaN or infinite labels")
        if not np.all(labels == np.round(labels)):
            raise QuantityError(f"'{name}' has non-integer values: accuracy needs classes",
                                hint="claim 'R²' for a continuous label (a ridge regression)")
    classes = np.unique(labels)
    if classes.size < 2:
        raise QuantityError(f"'{name}' has one class ({classes[0]!r}) over the samples: "
                            "nothing to probe", hint="use a label that varies")
    if classes.size > MAX_CLASSES:
        raise QuantityError(f"'{name}' has {classes.size} classes, over {MAX_CLASSES}",
                            hint="claim 'R²' for a continuous label")
    return classes


def _sklearn() -> None:
    """scikit-learn fits the probes: a clear error when it is missing."""
    try:
        import sklearn  # noqa: F401
    except ImportError:
        raise QuantityError("linear probes need scikit-learn, which is not installed",
                            hint="pip install scikit-learn") from None


def _classifier(x: np.ndarray, y: np.ndarray) -> Any:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(), LogisticRegression(C=LOGISTIC_C, max_iter=MAX_ITER)
                         ).fit(x, y)


def _regressor(x: np.ndarray, y: np.ndarray) -> Any:
    from sklearn.linear_model import Ridge
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(), Ridge(alpha=RIDGE_ALPHA)).fit(x, y)


def _check_activations(x: np.ndarray, what: str) -> np.ndarray:
    if not np.all(np.isfinite(x)):
        raise QuantityError(f"{what} has NaN or infinite values: a probe cannot be fitted")
    return np.asarray(x, dtype=np.float64)


def _cached(task: str, x: np.ndarray, labels: np.ndarray, seed: int, name: str) -> ProbeFit:
    """A probe fit, shared by the claims that fit the same one (accuracy and selectivity); on
    one BLAS thread: these fits are small, and threads only contend (20x slower under load)."""
    _sklearn()
    from threadpoolctl import threadpool_limits

    digest = hashlib.blake2b(np.ascontiguousarray(x).tobytes(), digest_size=16)
    digest.update(np.ascontiguousarray(labels).tobytes())
    key = (task, digest.hexdigest(), str(labels.dtype), seed, name)
    if key not in _FITS:
        if len(_FITS) >= 32:
            _FITS.clear()
        with threadpool_limits(1):
            fit = _classify if task == "classification" else _regress
            _FITS[key] = fit(x, labels, seed, name)
    return copy.deepcopy(_FITS[key])


_FITS: dict[tuple[Any, ...], ProbeFit] = {}


def fit_classifier(x: np.ndarray, labels: np.ndarray, seed: int, name: str) -> ProbeFit:
    """A logistic probe and its control task (seeded label permutation)."""
    return _cached("classification", x, labels, seed, name)


def fit_regressor(x: np.ndarray, labels: np.ndarray, seed: int, name: str) -> ProbeFit:
    """A ridge probe of a continuous label and its control task."""
    return _cached("regression", x, labels, seed, name)


def _classify(x: np.ndarray, labels: np.ndarray, seed: int, name: str) -> ProbeFit:
    x = _check_activations(x, "the activation")
    classes = _classes(labels, name)
    train, test, rng = split(len(labels), seed)
    control = labels[rng.permutation(len(labels))]
    if np.unique(labels[train]).size < 2:
        raise QuantityError(f"the training split of '{name}' has one class",
                            hint="use more samples or another seed")
    model = _classifier(x[train], labels[train])
    right = model.predict(x[test]) == labels[test]
    probe_control = _classifier(x[train], control[train]) \
        if np.unique(control[train]).size > 1 else None
    control_right = (probe_control.predict(x[test]) == control[test]) if probe_control \
        else control[test] == control[train][0]
    control_train = float(np.mean(probe_control.predict(x[train]) == control[train])) \
        if probe_control else float("nan")
    accuracy = float(np.mean(right))
    diff = right.astype(np.float64) - control_right.astype(np.float64)
    counts = np.array([np.sum(labels[train] == c) for c in classes])
    predicted = model.predict(x[test])
    confusion = [[int(np.sum((labels[test] == a) & (predicted == b))) for b in classes]
                 for a in classes]
    direction = None
    if classes.size == 2:
        scaler, logistic = model[0], model[1]
        direction = logistic.coef_[0] / scaler.scale_
    return ProbeFit("classification", float(model.score(x[train], labels[train])), accuracy,
                    wilson(float(right.sum()), float(right.size)), control_train,
                    float(np.mean(control_right)), len(train), len(test),
                    classes=[c.item() for c in classes],
                    majority=float(np.mean(labels[test] == classes[np.argmax(counts)])),
                    selectivity=float(diff.mean()), selectivity_interval=bootstrap_mean(diff),
                    confusion=confusion, direction=direction,
                    correct=right.astype(np.float64), differences=diff)


def r2(y: np.ndarray, predicted: np.ndarray) -> float:
    """1 − Σ(y − ŷ)² / Σ(y − ȳ)² (NaN when y is constant)."""
    total = float(np.sum((y - y.mean()) ** 2))
    return 1.0 - float(np.sum((y - predicted) ** 2)) / total if total > 0 else float("nan")


def r2_draws(y: np.ndarray, predicted: np.ndarray, seed: int) -> np.ndarray:
    """The finite held-out R² of each seeded resample of the held-out samples."""
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(R2_RESAMPLES):
        pick = rng.integers(0, y.size, size=y.size)
        values.append(r2(y[pick], predicted[pick]))
    draws = np.asarray(values)
    return draws[np.isfinite(draws)]


def r2_interval(y: np.ndarray, predicted: np.ndarray, seed: int, level: float = 0.95,
                draws: np.ndarray | None = None) -> tuple[float, float]:
    """Percentile bootstrap of held-out R² over the held-out samples (seeded)."""
    if draws is None:
        draws = r2_draws(y, predicted, seed)
    if draws.size == 0:
        return (float("nan"), float("nan"))
    alpha = (1 - level) / 2
    return (float(np.quantile(draws, alpha)), float(np.quantile(draws, 1 - alpha)))


def _regress(x: np.ndarray, labels: np.ndarray, seed: int, name: str) -> ProbeFit:
    x = _check_activations(x, "the activation")
    y = np.asarray(labels, dtype=np.float64)
    if not np.all(np.isfinite(y)):
        raise QuantityError(f"'{name}' has NaN or infinite labels")
    train, test, rng = split(len(y), seed)
    control = y[rng.permutation(len(y))]
    model = _regressor(x[train], y[train])
    predicted = model.predict(x[test])
    control_model = _regressor(x[train], control[train])
    draws = r2_draws(y[test], predicted, seed)
    return ProbeFit("regression", r2(y[train], model.predict(x[train])), r2(y[test], predicted),
                    r2_interval(y[test], predicted, seed, draws=draws),
                    r2(control[train], control_model.predict(x[train])),
                    r2(control[test], control_model.predict(x[test])), len(train), len(test),
                    r2_draws=draws)


def mean_difference(x: np.ndarray, labels: np.ndarray, name: str) -> np.ndarray:
    """Mean activation where the label is non-zero minus where it is zero (float64)."""
    x = _check_activations(x, "the activation")
    on = np.asarray(labels) != 0
    if on.all() or not on.any():
        raise QuantityError(f"'{name}' is {'never' if not on.any() else 'always'} zero over the "
                            "samples: a mean difference needs both groups",
                            hint="use a label that is 0 for some samples and not for others")
    return x[on].mean(axis=0) - x[~on].mean(axis=0)
