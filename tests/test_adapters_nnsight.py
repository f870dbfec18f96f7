"""The nnsight adapter: one claim file run on the bundled induction model as a plain torch
module and through ``interp_assert.adapters.nnsight.wrap`` gives the same numbers, ablation
included; without nnsight installed the loader says which extra to install."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import import_examples, run_entries

from interp_assert.run.runner import load_claim_file

pytest.importorskip("nnsight")

ROOT = Path(__file__).parents[1]
CHECKPOINT = ROOT / "examples" / "induction" / "checkpoints" / "induction.pt"
LOADER = '''
from examples import tiny_transformer
from interp_assert.adapters.nnsight import wrap


def load(checkpoint):
    return wrap(tiny_transformer.load(checkpoint))
'''
CLAIMS = [
    {"id": "loss", "claim": "loss ≥ 0"},
    {"id": "z", "claim": "mean(z) ≥ -100"},
    {"id": "pattern", "claim": "L1H2 attends to the token after the previous occurrence ≥ 0"},
    {"id": "ablate", "claim": "ablate L1H0, L1H2 (mean): loss rises by ≥ 0.5 nats"},
    {"id": "ablate-zero", "claim": "ablate L0H1 (zero): loss changes by ≥ 0"},
    {"id": "patch", "claim": "patch L1H2 from rep into other: loss recovers ≥ -100"},
    {"id": "circuit", "claim": "circuit ind is faithful: keeps ≥ 0% of loss"},
]


@pytest.fixture(scope="module", autouse=True)
def _one_thread(one_torch_thread: None) -> None:
    """Every test here runs torch on one thread."""


def write(folder: Path, loader: str) -> Path:
    (folder / "nnsight_loader.py").write_text(LOADER, encoding="utf-8")
    raw = {"subject": {"checkpoint": str(CHECKPOINT), "loader": loader,
                       "python_path": [str(ROOT), str(folder)]},
           "data": {"rep": {"generate": "examples.induction.data:generate", "n": 16, "seed": 3,
                            "batch_size": 8},
                    "other": {"generate": "examples.induction.data:generate", "n": 16,
                              "seed": 4}},
           "quantities": {"loss": {"metric": "loss", "mask": "repeated"},
                          "z": {"activation": "blocks.1.attn.hook_z"},
                          "pattern": {"activation": "blocks.1.attn.hook_pattern"}},
           "circuits": {"ind": {"heads": ["L0H1", "L1H2"]}},
           "claims": CLAIMS}
    path = folder / f"{loader.split(':')[0].replace('.', '_')}.claims.yaml"
    path.write_text(yaml.safe_dump(raw, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path


def values(path: Path) -> dict[str, Any]:
    results = run_entries(load_claim_file(path))
    for key, result in results.items():
        assert result.error is None, (key, result.error)
    return {key: result.outcome for key, result in results.items()}


def test_same_numbers_through_nnsight(tmp_path: Path) -> None:
    from interp_assert.evaluate.forward import FORWARD_PASSES

    plain = values(write(tmp_path, "examples.tiny_transformer:load"))
    before = len(FORWARD_PASSES)
    traced = values(write(tmp_path, "nnsight_loader:load"))
    assert len(FORWARD_PASSES) > before  # the nnsight subject ran its own passes
    for key in plain:
        assert traced[key].value == pytest.approx(plain[key].value, abs=1e-6, rel=0), key
        for mine, theirs in zip(traced[key].rows, plain[key].rows):
            for column, value in theirs.items():
                if isinstance(value, float):
                    assert mine[column] == pytest.approx(value, abs=1e-6, rel=0), (key, column)
    assert plain["ablate"].rows[0]["after"] - plain["ablate"].rows[0]["before"] >= 0.5


def test_trace_reads_and_writes_module_outputs() -> None:
    """Direct use: an ablation set through ``.output`` matches a PyTorch hook doing the same."""
    import torch

    from interp_assert.adapters.nnsight import wrap
    from interp_assert.evaluate.forward import Intervention
    tiny, data = import_examples()
    model = tiny.load(CHECKPOINT)
    batch = data.generate(n=4, seed=9)

    def zero_head(out: Any, _batch: Any) -> Any:
        new = out.clone()
        new[:, :, 1] = 0
        return new

    ablate = Intervention("blocks.0.attn.hook_z", ("zero", 1), zero_head)
    with torch.inference_mode():
        out = wrap(model).interp_forward(batch, frozenset({"blocks.1.attn.hook_z",
                                                           "blocks.0.attn.hook_z", "nope"}),
                                         (ablate,))
    assert "nope" not in out
    assert float(out["blocks.0.attn.hook_z"][:, :, 1].abs().max()) == 0.0
    seen: dict[str, Any] = {}
    handles = [model.blocks[0].attn.hook_z.register_forward_hook(
        lambda _m, _i, o: zero_head(o, None)),
        model.blocks[1].attn.hook_z.register_forward_hook(
        lambda _m, _i, o: seen.setdefault("z1", o.clone()))]
    with torch.no_grad():
        logits = model(batch["tokens"])
    for handle in handles:
        handle.remove()
    assert float((out["logits"] - logits).abs().max()) <= 1e-6
    assert float((out["blocks.1.attn.hook_z"] - seen["z1"]).abs().max()) <= 1e-6


def test_missing_nnsight_names_the_extra(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                         ) -> None:
    monkeypatch.setitem(sys.modules, "nnsight", None)  # import nnsight raises ImportError
    results = run_entries(load_claim_file(write(tmp_path, "nnsight_loader:load")))
    error = str(results["loss"].error)
    assert "nnsight" in error and "interp-assert[nnsight]" in error, error
