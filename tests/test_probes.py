"""Linear probes and steering on the bundled adder, against an independent reference: the
activations captured here with plain torch hooks, scikit-learn's own pipeline fitted on the
same split, scipy's Wilson interval, and a hand-written steered forward pass."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from conftest import import_examples

import interp_assert as ia
from interp_assert.claims import parse_claim

pytestmark = pytest.mark.usefixtures("heavy_modules_loaded")

ROOT = Path(__file__).parents[1]
CHECKPOINT = ROOT / "examples" / "adder" / "checkpoints" / "adder.pt"
N, SEED = 300, 77
A4 = 26  # position index of A4 (X0..X9 + Y0..Y9 = A0..)


@pytest.fixture(scope="module", autouse=True)
def _one_thread(one_torch_thread: None) -> None:
    """Every test here runs torch on one thread."""


@pytest.fixture(scope="module")
def world() -> dict[str, Any]:
    import sys

    tiny, _ = import_examples()
    sys.path.insert(0, str(ROOT))
    try:
        from examples.adder.data import generate
    finally:
        sys.path.remove(str(ROOT))
    model = tiny.load(CHECKPOINT)
    model.eval()
    return {"model": model, "data": generate(N, SEED)}


def write(folder: Path, claims: list[dict[str, Any]],
          quantities: dict[str, Any] | None = None) -> Path:
    text = yaml.safe_dump({
        "subject": {"checkpoint": str(CHECKPOINT), "loader": "examples.tiny_transformer:load",
                    "python_path": str(ROOT)},
        "data": {"sums": {"generate": "examples.adder.data:generate", "n": N, "seed": SEED,
                          "positions": "X0..X9, +, Y0..Y9, =, A0..A10"}},
        "quantities": {"digit-error": {"metric": "position_error", "answer": "A0..A10"},
                       "loss-A5": {"metric": "loss", "answer": "A5"},
                       "digit_unembed": {"weight": "unembed.W_U", "axes": ["d_model", "token"],
                                         "labels": {"token": "0..9, +, ="}},
                       **(quantities or {})},
        "claims": claims}, allow_unicode=True, sort_keys=False)
    path = folder / "probes.claims.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def run(folder: Path, claims: dict[str, str], quantities: dict[str, Any] | None = None
        ) -> dict[str, Any]:
    path = write(folder, [{"id": k, "claim": v} for k, v in claims.items()], quantities)
    return {r.claim_id: r for r in ia.load(path).run(plot_dir=folder / "plots")}


# ---- the reference -------------------------------------------------------------------------
def forward(world: dict[str, Any], hook: str, add: np.ndarray | None = None,
            positions: tuple[int, ...] = (A4,)) -> tuple[np.ndarray, np.ndarray]:
    """(logits, the hook's output) with ``add`` added to that output at ``positions``."""
    import torch

    seen: list[np.ndarray] = []

    def change(_m: Any, _i: Any, out: Any) -> Any:
        seen.append(out.detach().double().numpy().copy())
        if add is None:
            return None
        new = out.clone()
        for p in positions:
            new[:, p] += torch.as_tensor(add, dtype=out.dtype)
        return new

    handle = world["model"].get_submodule(hook).register_forward_hook(change)
    try:
        with torch.no_grad():
            logits = world["model"](world["data"]["tokens"]).double().numpy()
    finally:
        handle.remove()
    return logits, seen[0]


def reference_fit(x: np.ndarray, y: np.ndarray, seed: int, regression: bool = False
                  ) -> dict[str, Any]:
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.metrics import r2_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    rng = np.random.default_rng(seed)
    order = rng.permutation(len(y))
    cut = int(0.8 * len(y))
    train, test = order[:cut], order[cut:]
    control = y[rng.permutation(len(y))]

    def make() -> Any:
        return make_pipeline(StandardScaler(), Ridge(alpha=1.0) if regression else
                             LogisticRegression(C=1.0, max_iter=1000))

    model, control_model = make().fit(x[train], y[train]), make().fit(x[train], control[train])
    if regression:
        return {"test": r2_score(y[test], model.predict(x[test])),
                "control": r2_score(control[test], control_model.predict(x[test])),
                "model": model}
    right = model.predict(x[test]) == y[test]
    control_right = control_model.predict(x[test]) == control[test]
    return {"test": float(right.mean()), "control": float(control_right.mean()),
            "right": int(right.sum()), "n": len(test), "model": model}


def digit_error(logits: np.ndarray, tokens: np.ndarray, answer: int = 5) -> float:
    """Error rate of answer digit A_answer (predicted at the position before it)."""
    position = 22 + answer
    return float(np.mean(logits[:, position - 1].argmax(-1) != tokens[:, position]))


# ---- probes ----------------------------------------------------------------------------------
def test_sentences_round_trip() -> None:
    for text in ("probe blocks.0.hook_resid_post at A4 for carry[5]: accuracy >= 95%",
                 'probe blocks.0.hook_resid_post at "=" for sum (seed 3): R² >= 0.5',
                 "steer blocks.1.hook_resid_pre at A4 by +4 · carry-direction: logit-diff "
                 "rises by >= 2",
                 "steer blocks.0.hook_resid_post by -2.5 · mean-diff of blocks.0.hook_resid_post"
                 " at A4 by carry[5] unit: digit-error at A5 rises by >= 40 points"):
        parsed = parse_claim(text).claim
        assert str(parse_claim(str(parsed)).claim) == str(parsed)
    ascii_form = parse_claim("steer blocks.0.hook_resid_post at A4 by 2 * v: x rises by >= 1")
    assert str(ascii_form.claim) == "steer blocks.0.hook_resid_post at A4 by 2 · v: x rises " \
                                    "by >= 1"


def test_probe_accuracy_and_selectivity_match_scikit_learn(world: dict[str, Any],
                                                            tmp_path: Path) -> None:
    from scipy.stats import binomtest

    _, x = forward(world, "blocks.0.hook_resid_post")
    carry = world["data"]["carry"][:, 5].numpy()
    digits = world["data"]["tokens"][:, 27].numpy()  # A5: ten classes
    binary = reference_fit(x[:, A4], carry, SEED)
    multi = reference_fit(forward(world, "blocks.1.hook_resid_post")[1][:, A4], digits, 0)
    results = run(tmp_path, {
        "acc": f"probe blocks.0.hook_resid_post at A4 for carry[5] (seed {SEED}): "
               "accuracy ≥ 90% with 95% confidence",
        "sel": f"probe blocks.0.hook_resid_post at A4 for carry[5] (seed {SEED}): "
               "selectivity ≥ 30 points",
        "digit": "probe blocks.1.hook_resid_post at A4 for tokens[27]: accuracy ≥ 95%",
        "acc-fail": f"probe blocks.0.hook_resid_post at A4 for carry[5] (seed {SEED}): "
                    "accuracy > 100%",
        "template": "probe blocks.0.hook_resid_post at A{i} for carry[{i+1}]: accuracy ≥ 90% "
                    "for i in 3..4"})
    acc = results["acc"]
    assert acc.status == "holds", acc.outcome.measured
    assert acc.outcome.value == binary["test"]  # exactly: the same fit on the same arrays
    wilson = binomtest(binary["right"], binary["n"]).proportion_ci(0.95, method="wilson")
    assert acc.outcome.interval == pytest.approx((wilson.low, wilson.high), abs=1e-12)
    selectivity = results["sel"].outcome.value
    assert selectivity == pytest.approx(binary["test"] - binary["control"], abs=1e-12)
    assert binary["test"] - binary["control"] > 0.3
    assert results["digit"].status == "holds"
    assert results["digit"].outcome.value == multi["test"]
    assert results["digit"].outcome.plot_data["classes"] == list(range(10))
    template = results["template"]
    assert template.status == "holds" and template.outcome.measured == "2/2 instances hold"
    failed = results["acc-fail"]
    assert failed.status == "fails" and failed.plot is not None and failed.plot.exists()
    assert f"control task {binary['control']:.4g}" in failed.outcome.measured


def test_ridge_probe_r2_matches_scikit_learn(world: dict[str, Any], tmp_path: Path) -> None:
    _, x = forward(world, "blocks.0.hook_resid_post")
    operand = world["data"]["tokens"][:, 4].numpy().astype(float)  # X4, read at A4 (carry head)
    reference = reference_fit(x[:, A4], operand, 0, regression=True)
    results = run(tmp_path, {
        "r2": "probe blocks.0.hook_resid_post at A4 for tokens[4]: R² ≥ 0.1",
        "nan-fail": "probe blocks.0.hook_resid_post at A4 for carry[0]: R² ≥ -10"})
    r2 = results["r2"].outcome
    assert r2.value == pytest.approx(reference["test"], abs=1e-12)
    assert r2.interval[0] < r2.value < r2.interval[1]
    nan = results["nan-fail"]  # carry into A0 is always 0: R² is 0/0, and NaN never passes
    assert nan.status == "fails" and np.isnan(nan.outcome.value)


def test_a_quantity_with_one_value_per_sample_is_a_label(world: dict[str, Any],
                                                        tmp_path: Path) -> None:
    (tmp_path / "labels.py").write_text(
        "from examples.adder.data import generate\n\n\n"
        "def place_sum(model, n, seed, place):\n"
        "    tokens = generate(n, seed)['tokens']\n"
        "    return (tokens[:, place] + tokens[:, 11 + place]).double().numpy()\n",
        encoding="utf-8")
    _, x = forward(world, "blocks.0.hook_resid_post")
    tokens = world["data"]["tokens"].numpy()
    place_sum = (tokens[:, 4] + tokens[:, 15]).astype(float)
    reference = reference_fit(x[:, A4], place_sum, 0, regression=True)
    results = run(tmp_path, {"sum": "probe blocks.0.hook_resid_post at A4 for place-sum: R² ≥ 0"},
                  {"place-sum": {"call": "labels.py:place_sum",
                                 "args": {"n": N, "seed": SEED, "place": 4}}})
    assert results["sum"].outcome.value == pytest.approx(reference["test"], abs=1e-12)


def test_the_probe_activation_respects_the_memory_limit(tmp_path: Path) -> None:
    from interp_assert.resources import set_memory_limit

    set_memory_limit("1KB")
    try:
        results = run(tmp_path, {
            "big": "probe blocks.0.hook_resid_post at A4 for carry[5]: accuracy ≥ 90%"})
    finally:
        set_memory_limit(None)
    assert results["big"].status == "error"
    assert "memory limit" in results["big"].error.message
    assert "blocks.0.hook_resid_post" in results["big"].error.message


def test_probe_label_errors_name_the_fix(tmp_path: Path) -> None:
    results = run(tmp_path, {
        "no-field": "probe blocks.0.hook_resid_post at A4 for cary: accuracy ≥ 90%",
        "which-column": "probe blocks.0.hook_resid_post at A4 for carry: accuracy ≥ 90%",
        "one-class": "probe blocks.0.hook_resid_post at A4 for carry[0]: accuracy ≥ 90%",
        "no-hook": "probe blocks.9.hook_resid_post at A4 for carry[5]: accuracy ≥ 90%",
        "column": "probe blocks.0.hook_resid_post at A4 for carry[five]: accuracy ≥ 90%"})
    assert all(r.status == "error" for r in results.values())
    assert "did you mean 'carry'" in results["no-field"].error.message
    assert "write 'carry[i]'" in results["which-column"].error.hint
    assert "one class" in results["one-class"].error.message
    assert "blocks.9.hook_resid_post" in results["no-hook"].error.message
    assert "must be a whole number" in results["column"].error.message


# ---- steering --------------------------------------------------------------------------------
def test_steering_matches_a_hand_written_forward(world: dict[str, Any], tmp_path: Path) -> None:
    hook = "blocks.0.hook_resid_post"
    tokens = world["data"]["tokens"].numpy()
    logits, x = forward(world, hook)
    carry = world["data"]["carry"][:, 5].numpy() != 0
    mean_diff = x[carry, A4].mean(0) - x[~carry, A4].mean(0)
    before = digit_error(logits, tokens)
    w_u = world["model"].get_submodule("unembed").W_U.detach().double().numpy()
    probe = reference_fit(x[:, A4], carry.astype(np.int64), 0)["model"]
    probe_dir = probe[1].coef_[0] / probe[0].scale_
    probe_dir /= np.linalg.norm(probe_dir)
    expected = {
        "mean": digit_error(forward(world, hook, 1.0 * mean_diff)[0], tokens) - before,
        "neg-unit": digit_error(forward(world, hook, -3.0 * mean_diff / np.linalg.norm(
            mean_diff))[0], tokens) - before,
        "probe": digit_error(forward(world, hook, 10.0 * probe_dir)[0], tokens) - before,
        "row": digit_error(forward(world, "blocks.1.hook_resid_post", 40.0 * w_u[:, 7])[0],
                           tokens) - before}
    results = run(tmp_path, {
        "mean": f"steer {hook} at A4 by +1 · mean-diff of {hook} at A4 by carry[5]: "
                "digit-error at A5 rises by ≥ 10 points",
        "neg-unit": f"steer {hook} at A4 by -3 * mean-diff of {hook} at A4 by carry[5] unit: "
                    "digit-error at A5 changes by ≥ 0 points",
        "probe": f"steer {hook} at A4 by 10 * probe of {hook} at A4 for carry[5]: "
                 "digit-error at A5 rises by ≥ 0 points",
        "row": "steer blocks.1.hook_resid_post at A4 by 40 × digit_unembed[:, 7]: "
               "digit-error at A5 rises by ≥ 0 points",
        "row-fail": "steer blocks.1.hook_resid_post at A4 by 40 × digit_unembed[:, 7]: "
                    "digit-error at A5 rises by ≥ 101 points"})
    for name, value in expected.items():
        outcome = results[name].outcome
        assert outcome is not None, results[name].error
        assert outcome.value == pytest.approx(abs(value) if name == "neg-unit" else value,
                                              abs=1e-6), name
        assert outcome.plot_data["before"] == pytest.approx(before, abs=1e-12)
    assert expected["mean"] > 0.3  # adding the carry direction breaks the no-carry sums
    assert results["mean"].status == "holds"
    failed = results["row-fail"]
    assert failed.status == "fails" and failed.plot is not None and failed.plot.exists()
    sweep = failed.outcome.plot_data["sweep"]
    assert sweep["scales"] == [f * 40 for f in (-1.0, -0.5, 0.0, 0.5, 1.0, 1.5, 2.0)]
    assert sweep["metric"][4] == pytest.approx(failed.outcome.plot_data["after"], abs=1e-12)


def test_steering_a_continuous_metric_matches_within_1e_6(world: dict[str, Any],
                                                         tmp_path: Path) -> None:
    hook = "blocks.0.hook_resid_post"
    tokens = world["data"]["tokens"].numpy()
    logits, x = forward(world, hook)
    carry = world["data"]["carry"][:, 5].numpy() != 0
    mean_diff = x[carry, A4].mean(0) - x[~carry, A4].mean(0)

    def loss(values: np.ndarray) -> float:
        """Mean cross-entropy of the A5 token from the logits at A4 (float64)."""
        z = values[:, A4] - values[:, A4].max(-1, keepdims=True)
        log_probs = z - np.log(np.exp(z).sum(-1, keepdims=True))
        return float(-log_probs[np.arange(len(z)), tokens[:, 27]].mean())

    expected = loss(forward(world, hook, 0.3 * mean_diff)[0]) - loss(logits)
    results = run(tmp_path, {
        "loss": f"steer {hook} at A4 by 0.3 · mean-diff of {hook} at A4 by carry[5]: loss-A5 "
                "rises by ≥ 0.005 nats"})
    assert results["loss"].status == "holds"
    assert results["loss"].outcome.value == pytest.approx(expected, abs=1e-6)
    assert expected > 0.005


def test_steering_errors_name_the_fix(tmp_path: Path) -> None:
    results = run(tmp_path, {
        "width": "steer blocks.0.hook_resid_post at A4 by 1 · digit_unembed[0, :]: "
                 "digit-error at A5 rises by ≥ 0 points",
        "multi": "steer blocks.0.hook_resid_post at A4 by 1 · probe of "
                 "blocks.1.hook_resid_post at A4 for tokens[27]: digit-error at A5 rises by "
                 "≥ 0 points",
        "never": "steer blocks.0.hook_resid_post at A4 by 1 · mean-diff of "
                 "blocks.0.hook_resid_post at A4 by carry[0]: digit-error at A5 rises by "
                 "≥ 0 points"})
    assert all(r.status == "error" for r in results.values())
    assert "the direction has 12 entries" in results["width"].error.message
    assert "needs a binary label" in results["multi"].error.message
    assert "both groups" in results["never"].error.message
    with pytest.raises(ia.ClaimSyntaxError, match="belongs to patching"):
        parse_claim("steer blocks.0.hook_resid_post by 1 · v: x recovers ≥ 80%")


def test_probe_activations_join_the_clean_pass(tmp_path: Path) -> None:
    from interp_assert.evaluate.forward import FORWARD_PASSES

    before = len(FORWARD_PASSES)
    results = run(tmp_path, {
        "metric": "digit-error at A5 ≤ 1%",
        "layer0": "probe blocks.0.hook_resid_post at A4 for carry[5]: accuracy ≥ 90%",
        "layer1": "probe blocks.1.hook_resid_post at A3 for carry[4]: selectivity ≥ 30 points",
        "direction": "steer blocks.0.hook_resid_post at A4 by 1 · mean-diff of "
                     "blocks.0.hook_resid_post at A2 by carry[3]: digit-error at A5 changes by "
                     "≥ 0 points"})
    assert all(r.status == "holds" for r in results.values()), results
    passes = FORWARD_PASSES[before:]
    clean = [key for key in passes if key[2] == ()]
    assert len(clean) == 1  # every probe activation and the metric: one clean pass
    assert len(passes) == 2  # and the steered pass


def test_a_missing_scikit_learn_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    from interp_assert.errors import QuantityError
    from interp_assert.evaluate.probing import fit_classifier

    monkeypatch.setitem(sys.modules, "sklearn", None)  # import sklearn raises ImportError
    x = np.random.default_rng(0).normal(size=(20, 3))
    with pytest.raises(QuantityError, match="need scikit-learn") as caught:
        fit_classifier(x, np.arange(20) % 2, 0, "parity")
    assert caught.value.hint == "pip install scikit-learn"
