"""Circuit hypothesis tests (``circuits:`` and ``circuit NAME is faithful|complete|minimal``)
against a hand-written mean-ablation forward on the bundled induction model: plain torch hooks
on ``blocks.{l}.attn.hook_z`` write per-position means computed here, and the masked
cross-entropy is computed here too."""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from conftest import import_examples, run_plotting_pass_fail

from interp_assert import ClaimSyntaxError, InterpAssertError
from interp_assert.claims import parse_claim
from interp_assert.evaluate.circuit_ablation import beaten, random_circuits
from interp_assert.evaluate.forward import FORWARD_PASSES
from interp_assert.run.runner import load_claim_file

ROOT = Path(__file__).parents[1]
CHECKPOINT = ROOT / "examples" / "induction" / "checkpoints" / "induction.pt"
N = 24
DATA = {"rep": {"generate": "examples.induction.data:generate", "n": N, "seed": 5,
                "batch_size": 12},
        "other": {"generate": "examples.induction.data:generate", "n": N, "seed": 6}}
HEADS = [f"L{layer}H{head}" for layer in range(2) for head in range(4)]
CIRCUIT = ["L0H1", "L1H1", "L1H2"]


@pytest.fixture(scope="module", autouse=True)
def _one_thread(one_torch_thread: None) -> None:
    """Every test here runs torch on one thread."""


@pytest.fixture(scope="module")
def world() -> dict[str, Any]:
    tiny, data = import_examples()
    model = tiny.load(CHECKPOINT)
    batches = {name: data.generate(n=spec["n"], seed=spec["seed"]) for name, spec in DATA.items()}
    return {"model": model, "data": batches}


def write(folder: Path, claims: list[dict[str, Any]], circuits: Any = None) -> Path:
    raw: dict[str, Any] = {
        "subject": {"checkpoint": str(CHECKPOINT), "loader": "examples.tiny_transformer:load",
                    "python_path": str(ROOT)},
        "data": DATA, "quantities": {"loss": {"metric": "loss", "mask": "repeated"}},
        "circuits": circuits if circuits is not None else {"ind": {"heads": CIRCUIT}},
        "claims": claims}
    path = folder / "circuits.claims.yaml"
    path.write_text(yaml.safe_dump(raw, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path


# ---- the reference ---------------------------------------------------------------------------
def forward(world: dict[str, Any], dataset: str, hooks: dict[str, Any]) -> np.ndarray:
    import torch

    model = world["model"]
    handles = [model.get_submodule(path).register_forward_hook(
        lambda _m, _i, out, f=f: f(out)) for path, f in hooks.items()]
    try:
        with torch.no_grad():
            return model(world["data"][dataset]["tokens"]).double().numpy()
    finally:
        for handle in handles:
            handle.remove()


def head_means(world: dict[str, Any], dataset: str) -> dict[int, np.ndarray]:
    """Per layer, hook_z averaged over samples: [pos, head, d_head] in float64."""
    seen: dict[int, np.ndarray] = {}
    forward(world, dataset, {f"blocks.{layer}.attn.hook_z":
                             lambda out, layer=layer: seen.__setitem__(
                                 layer, out.double().numpy().mean(axis=0))
                             for layer in range(2)})
    return seen


def masked_loss(world: dict[str, Any], dataset: str, logits: np.ndarray) -> float:
    """Mean over samples of the mean cross-entropy at repeated tokens (predicted from p-1)."""
    tokens = world["data"][dataset]["tokens"].numpy()
    mask = world["data"][dataset]["repeated"].numpy().copy()
    mask[:, 0] = False
    shifted = logits[:, :-1]
    top = shifted.max(-1, keepdims=True)
    log_probs = shifted - top - np.log(np.exp(shifted - top).sum(-1, keepdims=True))
    per_sample = [np.mean([-log_probs[b, p - 1, tokens[b, p]] for p in range(1, tokens.shape[1])
                           if mask[b, p]]) for b in range(tokens.shape[0]) if mask[b, 1:].any()]
    return float(np.mean(per_sample))


def loss_keeping(world: dict[str, Any], kept: set[str], means: dict[int, np.ndarray]) -> float:
    """The loss on 'rep' with every head outside ``kept`` set to its mean."""
    import torch

    def hook(layer: int) -> Any:
        def replace(out: Any) -> Any:
            new = out.clone()
            for head in range(4):
                if f"L{layer}H{head}" not in kept:
                    new[:, :, head] = torch.as_tensor(means[layer][:, head], dtype=new.dtype)
            return new
        return replace

    logits = forward(world, "rep", {f"blocks.{layer}.attn.hook_z": hook(layer)
                                    for layer in range(2)})
    return masked_loss(world, "rep", logits)


def run(path: Path, plots: Path | None = None) -> dict[str, Any]:
    return run_plotting_pass_fail(load_claim_file(path), plots)


# ---- claims against the reference -------------------------------------------------------------
def test_scores_match_hand_written_mean_ablation(world: dict[str, Any], tmp_path: Path) -> None:
    claims = [
        {"id": "faithful", "claim": "circuit ind is faithful: keeps ≥ 0% of loss"},
        {"id": "complete", "claim": "circuit ind is complete: removing it loses ≥ 0% of loss"},
        {"id": "minimal", "claim": "circuit ind is minimal: each member matters by ≥ -100% of "
                                   "loss"},
        {"id": "ratio", "claim": "circuit ind is faithful (ratio): keeps ≥ 0% of loss"},
        {"id": "over", "claim": "circuit ind is faithful (over other): keeps ≥ 0% of loss"},
    ]
    results = run(write(tmp_path, claims))
    means = head_means(world, "rep")
    full = loss_keeping(world, set(HEADS), means)
    base = loss_keeping(world, set(), means)
    alone = loss_keeping(world, set(CIRCUIT), means)
    without = loss_keeping(world, set(HEADS) - set(CIRCUIT), means)
    assert not math.isclose(full, base, rel_tol=0.05)  # the heads matter on this data
    expected = {
        "faithful": (alone - base) / (full - base),
        "complete": (full - without) / (full - base),
        "minimal": min((alone - loss_keeping(world, set(CIRCUIT) - {m}, means)) / (full - base)
                       for m in CIRCUIT),
        "ratio": alone / full,
    }
    for name, value in expected.items():
        assert results[name].error is None, results[name].error
        assert abs(results[name].outcome.value - value) <= 1e-6, (name, value)
    other = head_means(world, "other")
    over = ((loss_keeping(world, set(CIRCUIT), other) - loss_keeping(world, set(), other))
            / (full - loss_keeping(world, set(), other)))
    assert abs(results["over"].outcome.value - over) <= 1e-6
    rows = {r["run"]: r["metric"] for r in results["faithful"].outcome.rows}
    assert abs(rows["full model"] - full) <= 1e-6
    assert abs(rows["everything ablated"] - base) <= 1e-6


def test_random_circuits_and_pass_count(world: dict[str, Any], tmp_path: Path) -> None:
    claims = [{"id": "circuit-pass", "claim": "circuit ind is faithful: keeps ≥ 0% of loss and "
                                              "beats 0% of 6 random circuits"},
              {"id": "circuit-fail", "claim": "circuit ind is complete: removing it loses ≥ "
                                              "99% of loss and beats 100% of 6 random circuits"},
              {"id": "minimal-fail", "claim": "circuit ind is minimal: each member matters by ≥ "
                                              "99% of loss"},
              {"id": "faithful-fail", "claim": "circuit ind is faithful: keeps ≥ 99% of loss"}]
    before = len(FORWARD_PASSES)
    results = run(write(tmp_path, claims, {"ind": {"heads": CIRCUIT}}), tmp_path / "plots")
    # faithful: clean (+ the means), all ablated, the circuit, 6 random; complete reuses the
    # clean and all-ablated passes: the circuit removed, 6 random; minimal: one per member;
    # the last faithful claim reuses every pass it needs
    assert len(FORWARD_PASSES) - before == 3 + 6 + 1 + 6 + 3
    means = head_means(world, "rep")
    full, base = loss_keeping(world, set(HEADS), means), loss_keeping(world, set(), means)
    sets = random_circuits({"head": HEADS, "neuron": []}, {"head": 3, "neuron": 0},
                           frozenset(CIRCUIT), 6, 0)
    outcome = results["circuit-fail"].outcome
    scores = [(full - loss_keeping(world, set(HEADS) - set(s), means)) / (full - base)
              for s in sets]
    random_rows = [r for r in outcome.rows if r["run"].startswith("random")]
    assert [r["run"] for r in random_rows] == ["random: " + ", ".join(s) for s in sets]
    assert np.allclose([r["score"] for r in random_rows], scores, atol=1e-6, rtol=0)
    main = outcome.rows[-len(sets) - 1]["score"]
    k = sum(s >= main for s in scores)
    assert f"beats {6 - k} of 6 random circuits" in outcome.measured
    assert f"p = (k+1)/(N+1) = {(k + 1) / 7:.4g}" in outcome.measured
    assert f"sd {np.std(scores):.4g}" in outcome.measured
    assert not results["circuit-fail"].passed
    assert results["circuit-pass"].passed
    assert not results["minimal-fail"].passed and not results["faithful-fail"].passed
    assert (tmp_path / "plots").is_dir() and len(list((tmp_path / "plots").rglob("*.png"))) == 4


def test_random_circuits_and_p_values() -> None:
    pool = [f"L0H{i}" for i in range(10)]
    first = random_circuits({"head": pool}, {"head": 3}, frozenset(pool[:3]), 15, 4)
    assert first == random_circuits({"head": pool}, {"head": 3}, frozenset(pool[:3]), 15, 4)
    assert len(first) == 15 and len({frozenset(s) for s in first}) == 15
    assert frozenset(pool[:3]) not in {frozenset(s) for s in first}
    every = random_circuits({"head": pool[:4]}, {"head": 2}, frozenset(pool[:2]), 20, 0)
    assert len(every) == 5  # C(4, 2) − the circuit itself
    assert beaten(0.5, [0.1, 0.5, 0.9, math.nan]) == (3, 0.25, 0.8)
    assert beaten(math.nan, [0.1, 0.2])[1] == 0.0


def test_syntax_round_trip() -> None:
    for text in ["circuit ind is faithful: keeps ≥ 80% of loss",
                 "circuit ind is faithful (ratio, over other, seed 3): keeps ≥ 0.8 of loss and "
                 "beats 95% of 20 random circuits",
                 "circuit ind is complete: removing it loses ≥ 90% of loss on repeated tokens",
                 "circuit ind is minimal: each member matters by ≥ 5% of loss"]:
        claim = parse_claim(text).claim
        assert parse_claim(str(claim)).claim == claim
    with pytest.raises(InterpAssertError, match="'faithful' is stated with 'keeps'"):
        parse_claim("circuit ind is faithful: removing it loses ≥ 80% of loss")
    with pytest.raises(InterpAssertError, match="not minimality"):
        parse_claim("circuit ind is minimal: each member matters by ≥ 5% of loss and beats "
                    "95% of 20 random circuits")
    with pytest.raises(InterpAssertError, match="compare with 1 to 1000"):
        parse_claim("circuit ind is faithful: keeps ≥ 5% of loss and beats 95% of 5000 random "
                    "circuits")
    with pytest.raises(ClaimSyntaxError):
        parse_claim("circuit ind is sound: keeps ≥ 80% of loss")


@pytest.mark.parametrize(("circuits", "message"), [
    ({"ind": {"heads": ["l0h1"]}}, "did you mean 'L0H1'"),
    ({"ind": {"heads": ["L0N1"]}}, "is one of the neurons, listed under 'heads'"),
    ({"ind": {"heads": ["L0H1", "L0H1"]}}, "duplicate labels"),
    ({"ind": {"head": ["L0H1"]}}, "unknown key 'head'.*did you mean 'heads'"),
    ({"ind": {"heads": ["L2H0"]}}, "the model has no head L2H0"),
    ({"ind": {"heads": ["L1H7"]}}, "did you mean"),
    ({"indx": {"heads": ["L0H1"]}}, "no circuit 'ind'.*did you mean 'indx'"),
])
def test_bad_circuits_name_the_fix(circuits: Any, message: str, tmp_path: Path) -> None:
    path = write(tmp_path, [{"id": "c", "claim": "circuit ind is faithful: keeps ≥ 0% of loss"}],
                 circuits)
    result = run(path)["c"]
    assert result.error is not None
    assert re.search(message, str(result.error)), str(result.error)


def test_circuits_section_must_be_a_mapping(tmp_path: Path) -> None:
    path = write(tmp_path, [], ["L0H1"])
    with pytest.raises(InterpAssertError, match="'circuits' must be a mapping"):
        load_claim_file(path)


def test_heads_and_neurons_together(tmp_path: Path) -> None:
    """A circuit of heads and neurons on a random model with MLPs: every other head and
    neuron is mean-ablated, as a hand-written forward with hooks on hook_z and hook_post."""
    import torch

    tiny, data = import_examples()
    torch.manual_seed(1)
    model = tiny.TinyTransformer(tiny.TinyConfig(
        n_layers=2, d_model=16, n_heads=2, d_head=4, d_mlp=8, d_vocab=64, n_ctx=48))
    tiny.save_checkpoint(tmp_path / "mlp.pt", model)
    model.eval()
    tokens = data.generate(n=N, seed=5)
    members = {"L1H0", "L0N1", "L1N3"}
    path = write(tmp_path, [{"id": "c", "claim": "circuit mixed is faithful: keeps ≥ 0% of loss"},
                            {"id": "m", "claim": "circuit mixed is minimal: each member matters "
                                                 "by ≥ -100% of loss"}],
                 {"mixed": {"heads": ["L1H0"], "neurons": ["L0N1", "L1N3"]}})
    raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    raw["subject"]["checkpoint"] = str(tmp_path / "mlp.pt")
    path.write_text(yaml.safe_dump(raw, allow_unicode=True, sort_keys=False), encoding="utf-8")
    results = run(path)
    world = {"model": model, "data": {"rep": tokens}}
    hooks = [f"blocks.{layer}.{name}" for layer in range(2)
             for name in ("attn.hook_z", "mlp.hook_post")]
    means: dict[str, np.ndarray] = {}
    forward(world, "rep", {hook: lambda out, hook=hook: means.__setitem__(
        hook, out.double().numpy().mean(axis=0)) for hook in hooks})

    def metric(kept: set[str]) -> float:
        def replace(hook: str) -> Any:
            layer, head = int(hook.split(".")[1]), "hook_z" in hook

            def apply(out: Any) -> Any:
                new = out.clone()
                for i in range(out.shape[2] if head else out.shape[-1]):
                    if f"L{layer}{'H' if head else 'N'}{i}" in kept:
                        continue
                    value = torch.as_tensor(means[hook][:, i] if head else means[hook][..., i],
                                            dtype=new.dtype)
                    if head:
                        new[:, :, i] = value
                    else:
                        new[..., i] = value
                return new
            return apply

        logits = forward(world, "rep", {hook: replace(hook) for hook in hooks})
        return masked_loss(world, "rep", logits)

    every = {f"L{layer}H{h}" for layer in range(2) for h in range(2)} | {
        f"L{layer}N{i}" for layer in range(2) for i in range(8)}
    full, base, alone = metric(every), metric(set()), metric(members)
    assert results["c"].error is None, results["c"].error
    assert abs(results["c"].outcome.value - (alone - base) / (full - base)) <= 1e-6
    minimal = min((alone - metric(members - {m})) / (full - base) for m in members)
    assert abs(results["m"].outcome.value - minimal) <= 1e-6
