"""The claim kinds of the modern toolkit (logit lens, direct logit attribution, probes,
steering, sparse dictionary features, sequential comparisons, path and attribution patching,
circuit hypothesis tests over heads and over edges, composition against random pairs), each
made to fail on the bundled model its example claim file uses: the report names the file, the
line, the measured and the expected values, and the plot file exists. The failing sentences
reuse each bundled file's subject, data and definitions (on fewer samples)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

import interp_assert
from interp_assert.output.text import format_result

ROOT = Path(__file__).resolve().parent.parent

#: bundled claim file -> failing claims (id -> sentence); each measured value in the comment
FAILING = {
    "lens": {
        "lens-share": "logit lens at blocks.0: rank of the answer at A3 ≤ 1 on 99% of samples",
        "lens-mean": "logit lens at blocks.0: mean probability of the answer at A3 ≥ 0.99",
        "dla-share": "L0H0 contributes ≥ 50% of logit-diff at A3",  # about 1%
        "dla-top": "L0H0 in top 1 contributors to logit-diff at A3",  # MLP1 is first
    },
    "adder_probes": {
        "probe": "probe blocks.0.hook_resid_pre at A4 for carry[5]: accuracy ≥ 95%",  # 0.74
        "steer": "steer blocks.0.hook_resid_post at A4 by +1 · mean-diff of "
                 "blocks.0.hook_resid_post at A4 by carry[5]: digit-error at A5 rises by "
                 "≥ 99 points",  # about 49 points
    },
    "adder_features": {
        "frequency": "feature F174 of sae: frequency ≥ 50%",  # 13.5%
        "top-tokens": "feature F248 of sae at A0..A9: top 50 tokens all have carry_in",
        "ablate-feature": "ablate feature F174 of sae: exact-match drops by ≥ 50 points",
        "steer-feature": "steer feature F174 of sae by 20 at A4: digit-error at A5 rises by "
                         "≥ 99 points",  # about 36 points
    },
    "adder_sequential": {
        "sequential": "exact-match ≤ 50% with 95% confidence, sequentially",  # 1.0
    },
    "induction": {
        "path": "patch path L1H0, L1H1, L1H2, L1H3 → logits from clean into corrupted: "
                "loss-repeated recovers ≤ 50%",  # 1.001
        "attribution": "attribution of L1H3 from clean into corrupted: loss-repeated drops by "
                       "≥ 5 nats",  # about 0.96
        "agreement": "attribution from clean into corrupted on loss-repeated agrees with "
                     "patching over heads with spearman ≥ 0.999",  # about 0.93
        "composition-random": "K-composition of L0H0 into L1H0 beats 9 random pairs with 90% "
                              "confidence",  # not the top pair: rank above 1
    },
    "induction_edges": {
        "edges-faithful": "circuit induction-edges is faithful: keeps ≥ 99% of advantage",  # 0.84
    },
    "induction_circuits": {
        "faithful": "circuit induction is faithful: keeps ≥ 95% of advantage",  # 0.79
        "minimal": "circuit induction is minimal: each member matters by ≥ 50% of advantage",
    },
}
SAMPLES = 200


@pytest.fixture(scope="module")
def failing(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, object]]:
    folder = tmp_path_factory.mktemp("toolkit")
    (folder / "examples").symlink_to(ROOT / "examples")  # the files' ../examples/... paths
    (folder / "specs").mkdir()
    found: dict[str, tuple[Path, object]] = {}
    for stem, claims in FAILING.items():
        data = yaml.safe_load((ROOT / "specs" / f"{stem}.claims.yaml").read_text("utf-8"))
        for dataset in data.get("data", {}).values():
            dataset["n"] = min(int(dataset.get("n", SAMPLES)), SAMPLES)
        data["claims"] = [{"id": key, "claim": text} for key, text in claims.items()]
        path = folder / "specs" / f"{stem}.claims.yaml"
        path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), "utf-8")
        for result in interp_assert.load(path).run(plot_dir=folder / "plots" / stem):
            found[result.claim_id] = (path, result)
    return found


@pytest.mark.parametrize("claim_id", [key for claims in FAILING.values() for key in claims])
def test_failure_report_and_plot(failing: dict[str, tuple[Path, object]], claim_id: str) -> None:
    path, result = failing[claim_id]
    report = format_result(result)
    assert result.status == "fails", report
    line = next(i for i, text in enumerate(path.read_text("utf-8").splitlines(), 1)
                if text.strip() == f"- id: {claim_id}") + 1
    assert f"{path.name}:{line}:" in report
    assert "measured" in report and "expected" in report
    assert result.outcome is not None and result.outcome.measured in report
    assert result.plot is not None and result.plot.exists()
    assert result.plot.read_bytes()[:4] == b"\x89PNG"
