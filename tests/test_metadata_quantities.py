"""``metadata:`` quantities read what a checkpoint stores beside its weights, compared with the
values torch.load gives directly."""

from __future__ import annotations

from pathlib import Path

import pytest

import interp_assert as ia

torch = pytest.importorskip("torch")
ROOT = Path(__file__).resolve().parents[1]
INDUCTION = ROOT / "examples" / "induction" / "checkpoints" / "step_0200.pt"


def run(tmp_path: Path, checkpoint: Path, quantities: str, claims: str) -> list[ia.ClaimResult]:
    path = tmp_path / "meta.claims.yaml"
    path.write_text(f"subject: {{checkpoint: {checkpoint}}}\nquantities:\n{quantities}"
                    f"claims:\n{claims}")
    return ia.load(path).run()


def test_step_and_config_values_of_a_bundled_checkpoint(tmp_path):
    stored = torch.load(INDUCTION, weights_only=True)
    config = stored["config"]
    key = next(k for k, v in config.items() if isinstance(v, int) and not isinstance(v, bool))
    results = run(tmp_path, INDUCTION,
                  "  step: {metadata: step}\n"
                  f"  value: {{metadata: config.{key}}}\n",
                  f"  - {{id: step, claim: 'step == {stored['step']}'}}\n"
                  f"  - {{id: config, claim: 'value == {config[key]}'}}\n")
    assert [r.status for r in results] == ["holds", "holds"]
    assert results[0].outcome.value == stored["step"]
    assert results[1].outcome.value == config[key]


def test_nested_metrics_lists_and_dicts(tmp_path):
    checkpoint = tmp_path / "model.pt"
    curve = [0.9, 0.5, 0.2, 0.1]
    torch.save({"state_dict": {"w": torch.ones(2)}, "step": 4000,
                "metrics": {"val_exact": 0.993, "loss_curve": curve,
                            "per_digit": {"0": 0.99, "1": 0.97}}, "task": "addition"},
               checkpoint)
    results = run(tmp_path, checkpoint,
                  "  val: {metadata: metrics.val_exact}\n"
                  "  curve: {metadata: metrics.loss_curve}\n"
                  "  digits: {metadata: metrics.per_digit}\n"
                  "  last: {metadata: metrics.loss_curve.-1}\n"
                  "  task: {metadata: task}\n"
                  "  missing: {metadata: metrics.val_exakt}\n",
                  "  - {id: val, claim: 'val >= 99%'}\n"
                  "  - {id: curve, claim: 'curve monotone decreasing over elements'}\n"
                  "  - {id: digit, claim: 'digits[\"1\"] == 0.97'}\n"
                  "  - {id: last, claim: 'last == 0.1'}\n"
                  "  - {id: text, claim: 'task == 1'}\n"
                  "  - {id: missing, claim: 'missing > 0'}\n")
    assert [r.status for r in results] == ["holds", "holds", "holds", "holds", "error",
                                           "error"]
    assert results[0].outcome.value == pytest.approx(0.993)
    assert results[3].outcome.value == curve[-1]
    assert "'addition', not a number" in str(results[4].error)
    assert "did you mean 'val_exact'" in str(results[5].error)
