"""Each (checkpoint, dataset, interventions) forward pass runs once per run, with every sink any
claim reads on it: the bundled claim files' passes counted against the minimal counts derived
by hand, and their values against the plain mirrors (bench/plain/), which compute the same
numbers with torch and numpy alone."""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

import interp_assert as ia
from interp_assert.evaluate import forward, gradients

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def counted_run(name: str) -> tuple[list[Any], list[tuple[Any, ...]], list[Any]]:
    """Every claim of ``specs/NAME.claims.yaml``, with the forward and gradient passes run."""
    forward.FORWARD_PASSES.clear()
    gradients.GRADIENT_PASSES.clear()
    results = ia.load(ROOT / "specs" / f"{name}.claims.yaml").run(plots="none")
    return results, list(forward.FORWARD_PASSES), list(gradients.GRADIENT_PASSES)


@pytest.fixture(scope="module")
def induction() -> tuple[list[Any], list[tuple[Any, ...]], list[Any]]:
    return counted_run("induction")


@pytest.fixture(scope="module")
def adder_probes() -> tuple[list[Any], list[tuple[Any, ...]], list[Any]]:
    return counted_run("adder_probes")


def described(pass_key: tuple[Any, ...]) -> tuple[str, tuple[str, ...]]:
    """A pass as (dataset, its interventions in words): ``ablate mean L1H0``, ``patch L0H1
    from clean``, ``freeze blocks.1.attn.hook_z``, ``path L0H0,L0H1 -> L1H2 keys``,
    ``steer blocks.0.hook_resid_post by 1.0``."""
    words = []
    for intervention in pass_key[2]:
        key = intervention.key
        if key[0] == "ablate":
            words.append(f"ablate {key[1]} {key[2]}")
        elif key[0] == "patch":
            words.append(f"patch {key[1]} from {key[3].name}")
        elif key[0] == "freeze":
            words.append(f"freeze {key[1]}")
        elif key[0] == "path":
            words.append(f"path {','.join(key[1])} -> {key[2]}")
        else:
            words.append(f"{key[0]} {key[1]} by {key[3]}")
    return pass_key[1].name, tuple(sorted(words))


def heads(layer: int) -> list[str]:
    return [f"L{layer}H{h}" for h in range(4)]


def test_induction_runs_sixteen_passes_and_one_gradient_pass(induction: Any) -> None:
    results, passes, gradient = induction
    assert all(r.error is None for r in results)
    assert max(Counter(passes).values()) == 1  # no (subject, dataset, interventions) twice
    expected = Counter({
        ("repeats", ()): 1,  # patterns and both losses
        ("repeats", tuple(f"ablate mean {h}" for h in heads(1))): 1,  # three ablation claims
        ("clean", ()): 1,  # the losses, patching's sources and the gradient's activations
        ("corrupted", ()): 1,  # the losses and the frozen layer 1 of the path to the logits
        # patching the induction heads (and the direct path from them: nothing to freeze)
        ("corrupted", tuple(f"patch {h} from clean" for h in heads(1))): 1,
        # patching layer 0, which is also path patching's pass 2 for layer 1's keys
        ("corrupted", tuple(f"patch {h} from clean" for h in heads(0))): 1,
        ("corrupted", tuple(f"path {','.join(heads(0))} -> {h} keys" for h in heads(1))): 1,
        ("corrupted", tuple(sorted([*(f"patch {h} from clean" for h in heads(0)),
                                    "freeze blocks.1.attn.hook_z"]))): 1,  # layer 0 -> logits
    })
    for head in heads(0) + heads(1):  # attribution-agrees patches each head alone
        expected[("corrupted", (f"patch {head} from clean",))] = 1
    assert Counter(described(key) for key in passes) == expected
    assert sum(expected.values()) == len(passes) == 16
    assert len(gradient) == 1


def test_adder_probes_run_one_pass_per_steering(adder_probes: Any) -> None:
    results, passes, gradient = adder_probes
    assert all(r.error is None for r in results)
    assert max(Counter(passes).values()) == 1
    hook0, hook1 = "blocks.0.hook_resid_post", "blocks.1.hook_resid_post"
    assert Counter(described(key) for key in passes) == Counter({
        ("sums", ()): 1,  # the probes' activations and the unsteered metrics
        ("sums", (f"steer {hook0} by 1.0",)): 1,  # carry-steer and carry-steer-surely
        ("sums", (f"steer {hook0} by -1.0",)): 1,
        ("sums", (f"steer {hook0} by 10.0",)): 1,
        ("sums", (f"steer {hook1} by 40.0",)): 1,
    })
    assert len(passes) == 5 and gradient == []


@pytest.mark.parametrize("name", ["induction", "adder_probes"])
def test_shared_passes_give_the_plain_mirrors_values(name: str, request: Any) -> None:
    from importlib import import_module

    mirror = import_module(f"bench.plain.{name}")
    results = request.getfixturevalue(name)[0]
    plain = mirror.numbers()
    assert {r.claim_id for r in results} == {claim for claim, _ in mirror.SAME}
    for result in results:  # float32 passes on either side: equal to about 1e-8
        assert result.outcome.value == pytest.approx(plain[mirror.SAME[(result.claim_id, None)]],
                                                     rel=1e-6, abs=1e-7), result.claim_id


ADDER_AT_A4 = """
subject:
  checkpoint: {root}/examples/adder/checkpoints/adder.pt
  loader: examples.tiny_transformer:load
data:
  sums:
    generate: examples.adder.data:generate
    n: 400
    seed: 99
    batch_size: 200
    positions: X0..X9, +, Y0..Y9, =, A0..A10
quantities:
  exact-match: {{metric: exact_match, answer: A0..A10}}
  digit-error: {{metric: position_error, answer: A0..A10}}
claims:
  - id: a5-breaks
    claim: "ablate L0H0, L0H1 at A4 (mean): digit-error at A5 rises by ≥ 50 points"
  - id: sums-break
    claim: "ablate L0H0, L0H1 at A4 (mean): exact-match drops by ≥ 50 points"
"""


def test_claims_ablating_alike_at_positions_share_one_pass(tmp_path: Path) -> None:
    """Positions are known only from the data, so the plan names the ablation by its words;
    both claims read the one ablated pass, and their values are a plain torch computation's."""
    import torch

    from bench.plain.common import checkpoint, keep, passes, replace
    from examples.adder.data import generate

    path = tmp_path / "a4.claims.yaml"
    path.write_text(ADDER_AT_A4.format(root=ROOT))
    forward.FORWARD_PASSES.clear()
    results = {r.claim_id: r for r in ia.load(path).run(plots="none")}
    assert all(r.error is None for r in results.values())
    assert Counter(described(key) for key in forward.FORWARD_PASSES) == Counter({
        ("sums", ()): 1, ("sums", ("ablate mean L0H0", "ablate mean L0H1")): 1})

    model, tokens = checkpoint("examples/adder/checkpoints/adder.pt"), generate(400, 99)["tokens"]
    answer = list(range(22, 33))  # A0..A10 are predicted at the positions before them
    store: dict[str, list[torch.Tensor]] = {"z0": []}
    clean = passes(model, tokens, 200, {"blocks.0.attn.hook_z": keep(store, "z0")})
    mean_z = torch.cat(store["z0"]).double().mean(0).float()
    ablated = passes(model, tokens, 200, {"blocks.0.attn.hook_z": replace(mean_z, [0, 1], [26])})
    wrong = [(logits[:, [a - 1 for a in answer]].argmax(-1) != tokens[:, answer]).double()
             for logits in (clean, ablated)]
    rise = float(wrong[1][:, 5].mean() - wrong[0][:, 5].mean())
    drop = float((wrong[0].sum(1) == 0).double().mean() - (wrong[1].sum(1) == 0).double().mean())
    assert results["a5-breaks"].outcome.value == pytest.approx(rise, abs=1e-12)
    assert results["sums-break"].outcome.value == pytest.approx(drop, abs=1e-12)
