"""The Python API: check(), subject(), load().run() and validate()."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import claim_file_text, save_checkpoint, tiny_state_dict, write_claims

import interp_assert as ia
from interp_assert.labels import Axis, Labelled

CLAIMS = """
- id: aligned
  claim: N0, N1, N3 cluster with cos > 0.9
- id: mixed
  claim: N0, N1, N4 cluster with cos > 0.9
- id: mono
  claim: A·V monotone increasing over digits
"""


@pytest.fixture
def claim_path(tmp_path):
    save_checkpoint(tmp_path / "model.pt")
    return write_claims(tmp_path / "model.claims.yaml", claim_file_text(CLAIMS))


@pytest.fixture
def neurons_subject(tmp_path):
    save_checkpoint(tmp_path / "model.pt")
    return ia.subject("model.pt", base_dir=tmp_path, quantities={
        "neurons": {"weight": "blocks.0.mlp.W_out", "axes": ["neuron", "d_model"],
                    "labels": {"neuron": "N0..N15"}}})


# ---- check ------------------------------------------------------------------------------------
class TestCheck:
    def test_pass_returns_the_result(self, neurons_subject):
        result = ia.check("N0, N1, N3 cluster with cos > 0.9", neurons_subject)
        assert isinstance(result, ia.ClaimResult)
        assert result.passed and result.status == "holds"
        assert result.error is None
        assert result.outcome.passed
        assert result.quantities == ["neurons"]
        assert result.sha256 is not None
        assert neurons_subject.check("all of N0, N1 norm > 0").passed

    def test_failure_raises_claim_failed_with_the_report(self, neurons_subject):
        with pytest.raises(ia.ClaimFailed) as info:
            ia.check("N0, N1, N4 cluster with cos > 0.9", neurons_subject)
        failure = info.value
        assert isinstance(failure, AssertionError)
        assert str(failure) == ia.format_result(failure.result)
        report = str(failure).splitlines()
        assert report[0] == ("claim 'n0-n1-n4-cluster-with-cos-0-9' at <check>:1:1: N0, N1, N4 "
                             "cluster with cos > 0.9")
        assert report[1].startswith("  subject: model.pt (sha256 ")
        assert report[2].startswith("  does not hold: measured min pairwise cos ")
        assert "expected every pair cos > 0.9" in report[2]
        assert report[4].split() == ["a", "b", "cos", "holds"]
        assert failure.result.status == "fails"

    def test_plain_assert_semantics(self, neurons_subject):
        with pytest.raises(AssertionError, match="does not hold"):
            ia.check("all of N0, N1 norm > 1000", neurons_subject)

    def test_same_report_as_a_claim_file(self, claim_path):
        [_, from_file, _] = ia.load(claim_path).run()
        with pytest.raises(ia.ClaimFailed) as info:
            ia.check("N0, N1, N4 cluster with cos > 0.9", ia.load(claim_path), plots="never")
        # everything but the header line (claim id and place) is the same
        assert str(info.value).splitlines()[1:] == ia.format_result(from_file).splitlines()[1:]
        header = ia.format_result(from_file).splitlines()[0]
        lines = claim_path.read_text().splitlines()
        line = next(i for i, text in enumerate(lines, 1) if "N0, N1, N4" in text)
        column = lines[line - 1].index("N0, N1, N4") + 1
        assert header == (f"claim 'mixed' at {claim_path}:{line}:{column}: "
                          "N0, N1, N4 cluster with cos > 0.9")

    @pytest.mark.usefixtures("heavy_modules_loaded")
    def test_same_report_as_the_plugin(self, pytester, claim_path):
        save_checkpoint(pytester.path / "model.pt")
        (pytester.path / "model.claims.yaml").write_text(claim_path.read_text())
        result = pytester.runpytest("-k", "mixed", "--interp-plots=never")
        result.assert_outcomes(failed=1, deselected=2)
        with pytest.raises(ia.ClaimFailed) as info:
            ia.check("N0, N1, N4 cluster with cos > 0.9", ia.load(claim_path), plots="never")
        body = [line for line in str(info.value).splitlines()[2:] if line.strip()]
        result.stdout.fnmatch_lines(body)

    def test_errors_are_not_failures(self, neurons_subject):
        with pytest.raises(ia.UnknownNameError, match="unknown label 'N1320'") as info:
            ia.check("N1320, N1 cluster with cos > 0.5", neurons_subject)
        assert not isinstance(info.value, AssertionError)
        assert str(info.value).startswith("<check>:1:1: ")
        with pytest.raises(ia.ClaimSyntaxError) as syntax:
            ia.check("N0, N1 cluster with cos >", neurons_subject)
        assert syntax.value.column == 26
        assert str(syntax.value).splitlines()[2].endswith("^")
        with pytest.raises(ia.QuantityError, match="at least two"):
            ia.check("N0 cluster with cos > 0.5", neurons_subject)

    def test_on_must_be_a_subject(self):
        with pytest.raises(TypeError, match=r"must come from interp_assert\.subject"):
            ia.check("x > 1", {"x": 2})

    def test_plot_dir(self, neurons_subject, tmp_path):
        with pytest.raises(ia.ClaimFailed) as info:
            ia.check("N0, N1, N4 cluster with cos > 0.9", neurons_subject,
                     plot_dir=tmp_path / "plots")
        plot = info.value.result.plot
        assert plot == tmp_path / "plots" / "n0-n1-n4-cluster-with-cos-0-9.png"
        assert plot.read_bytes()[:4] == b"\x89PNG"
        assert f"plot: {plot}" in str(info.value)
        result = ia.check("N0, N1 cluster with cos > 0.9", neurons_subject,
                          plot_dir=tmp_path / "passing")
        assert result.plot is None  # only failed claims are plotted

    def test_values_of_every_kind(self):
        series = Labelled(np.array([0.1, 0.4, 0.2]), (Axis("layer", ("L0", "L1", "L2")),))
        s = ia.subject(quantities={
            "scores": series,
            "acc": torch.tensor(0.97),
            "W": np.eye(3),
            "twice": "2 * acc",
        })
        assert ia.check("argmax of scores over layers is L1", s).passed
        assert ia.check("L1 ranks above L2 in scores", s).passed
        assert ia.check("acc >= 95%", s).passed
        assert ia.check("twice ≈ 1.94 ± 1e-6", s).passed
        assert ia.check("effective_rank(W, 0.99) == 3", s).passed

    def test_new_subject_sees_updated_values(self):
        weights = torch.zeros(3)
        assert ia.check("max(w) == 0", ia.subject(quantities={"w": weights})).passed
        weights += 5.0  # e.g. a training step between two checks
        assert ia.check("max(w) == 5", ia.subject(quantities={"w": weights})).passed

    def test_pandas_series(self):
        import pandas as pd

        series = pd.Series([0.3, 0.9, 0.1], index=pd.Index(["x", "y", "z"], name="token"))
        s = ia.subject(quantities={"logit": series})
        assert ia.check("argmax of logit over tokens is y", s).passed


# ---- load / run --------------------------------------------------------------------------------
class TestLoadRun:
    def test_run_every_claim(self, claim_path):
        subject = ia.load(claim_path)
        assert isinstance(subject, ia.Subject)
        assert [c.id for c in subject.claim_file.claims] == ["aligned", "mixed", "mono"]
        results = subject.run()
        assert [r.status for r in results] == ["holds", "fails", "holds"]
        assert [r.claim_id for r in results] == ["aligned", "mixed", "mono"]
        assert all(r.plot is None for r in results)  # no plot_dir, no plots
        w = tiny_state_dict()["blocks.0.mlp.W_out"].double()
        cos = torch.nn.functional.cosine_similarity(w[0], w[4], dim=0).item()
        assert min(row["cos"] for row in results[1].outcome.rows) <= cos + 1e-9

    def test_run_with_plots(self, claim_path, tmp_path):
        results = ia.load(claim_path).run(plot_dir=tmp_path / "p", plots="failed")
        assert [r.plot is not None for r in results] == [False, True, False]
        assert results[1].plot.exists()

    def test_broken_claims_do_not_hide_the_others(self, tmp_path):
        save_checkpoint(tmp_path / "model.pt")
        path = write_claims(tmp_path / "m.claims.yaml", claim_file_text("""
            - id: bad
              claim: N0 N1 cluster with cos > 0.5
            - id: typo
              claim: N0, N1320 cluster with cos > 0.5
            - id: good
              claim: N0, N1 cluster with cos > 0.5
        """))
        bad, typo, good = ia.load(path).run()
        assert isinstance(bad.error, ia.ClaimSyntaxError)
        assert isinstance(typo.error, ia.UnknownNameError)
        assert good.passed

    def test_check_more_claims_on_a_loaded_file(self, claim_path):
        subject = ia.load(claim_path)
        assert subject.check("argmax of A·V over digits is 9").passed
        assert subject.check("argmax of AV over digits is 9").passed
        with pytest.raises(ia.ClaimFailed):
            subject.check("argmin of A.V over digits is 9")

    def test_missing_file(self, tmp_path):
        with pytest.raises(ia.SpecError, match="cannot read claim file"):
            ia.load(tmp_path / "absent.claims.yaml")


# ---- validate ----------------------------------------------------------------------------------
class TestValidate:
    def test_valid_file(self, claim_path, monkeypatch):
        calls = []
        monkeypatch.setattr(torch, "load", lambda *a, **k: calls.append(a))
        assert ia.validate(claim_path) == []
        assert calls == []  # validating never loads the checkpoint

    def test_problems_are_listed(self, tmp_path):
        path = write_claims(tmp_path / "m.claims.yaml", """
            subject: model.pt
            quantities:
              neurons: {weight: blocks.0.mlp.W_out, labels: N0..N15}
              broken: {expr: "norm("}
            claims:
              - id: bad
                claim: N0 N1 cluster with cos > 0.5
              - id: typo
                claim: N0, N1320 cluster with cos > 0.5
              - id: fine
                claim: N0, N1 cluster with cos > 0.5
              - id: unknown-key
                claim: N0, N1 cluster with cos > 0.5
                wyh: typo in a key
        """)
        problems = ia.validate(path)
        assert len(problems) == 4, problems
        joined = "\n".join(problems)
        assert "quantity 'broken'" in joined
        assert "claim 'bad': unexpected 'N1'" in joined
        assert "unknown label 'N1320'" in joined
        assert "unknown key 'wyh' in claim 'unknown-key'; did you mean 'why'" in joined
        assert all("m.claims.yaml:" in problem for problem in problems)

    def test_broken_yaml(self, tmp_path):
        path = write_claims(tmp_path / "m.claims.yaml", "claims:\n  - id: a\n   claim: x\n")
        [problem] = ia.validate(path)
        assert "m.claims.yaml:3:" in problem
        assert "invalid YAML" in problem

    def test_duplicate_ids(self, tmp_path):
        path = write_claims(tmp_path / "m.claims.yaml", """
            claims:
              - {id: a, claim: x > 1}
              - {id: a, claim: x > 2}
        """)
        [problem] = ia.validate(path)
        assert "duplicate claim id 'a'" in problem
