"""Table quantities (CSV / JSONL / parquet with JSON-array cells) and training-log claims,
checked against pandas / numpy references."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.stats

import interp_assert as ia
from interp_assert import ClaimResult, QuantityError, SpecError
from interp_assert.claims import parse_claim

GROUPS = 4
PER_GROUP = 60


@pytest.fixture(scope="module")
def gates(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, pd.DataFrame]:
    """A gates table like notebook 000's: per-sample arrays per projector, a per-projector
    logit, in CSV, JSONL and parquet. One CSV cell is empty; one value is NaN in group 3."""
    folder = tmp_path_factory.mktemp("gates")
    rng = np.random.default_rng(0)
    rows = []
    for p in range(GROUPS):
        for s in range(PER_GROUP):
            length = int(rng.integers(3, 8))
            rows.append({"projector_index": p, "sample": s,
                         "key_scalar": rng.uniform(0.1 + 0.15 * p, 0.5 + 0.15 * p, length),
                         "key_gate_logit": [-1.5, 0.3, 2.0, 0.7][p]})
    frame = pd.DataFrame(rows)
    text = frame.assign(key_scalar=[json.dumps(np.round(a, 6).tolist())
                                    for a in frame.key_scalar])
    text.loc[5, "key_scalar"] = ""  # a missing cell (group 0)
    text.to_csv(folder / "gates.csv", index=False)
    with open(folder / "gates.jsonl", "w", encoding="utf-8") as handle:
        for i, row in text.iterrows():
            record = {k: (json.loads(v) if k == "key_scalar" and v else v)
                      for k, v in row.items() if not (k == "key_scalar" and i == 5)}
            handle.write(json.dumps(record) + "\n")
    text.assign(key_scalar=[json.loads(v) if v else None for v in text.key_scalar]).to_parquet(
        folder / "gates.parquet")
    reference = frame.assign(key_scalar=[np.round(a, 6) for a in frame.key_scalar]).drop(index=5)
    return folder, reference


def claims_file(folder: Path, quantities: str, claims: str, name: str = "t.claims.yaml") -> Path:
    path = folder / name
    path.write_text(f"quantities:\n{quantities}\nclaims:\n{claims}\n", encoding="utf-8")
    return path


def run_file(path: Path, plot_dir: Path | None = None) -> dict[str, ClaimResult]:
    results = ia.load(path).run(plot_dir=plot_dir)
    for result in results:
        assert result.error is None, result.error
    return {r.claim_id: r for r in results}


def quantity(folder: Path, definition: dict, name: str = "q") -> ia.Labelled:
    """Compute one table quantity through the engine."""
    from interp_assert.evaluate.evaluation import Evaluation
    from interp_assert.run.runner import load_claim_file

    path = folder / f"{name}.claims.yaml"
    path.write_text(json.dumps({"quantities": {name: definition}, "claims": []}),
                    encoding="utf-8")
    claim_file = load_claim_file(path)
    if name in claim_file.quantity_errors:
        raise claim_file.quantity_errors[name]
    return Evaluation(claim_file, None).quantity(name)


# ---- reading --------------------------------------------------------------------------------
@pytest.mark.parametrize("suffix", ["csv", "jsonl", "parquet"])
def test_group_means_of_per_row_means(gates: tuple[Path, pd.DataFrame], suffix: str) -> None:
    folder, reference = gates
    q = quantity(folder, {"table": f"gates.{suffix}", "column": "key_scalar",
                          "per_row": "mean", "group_by": "projector_index"})
    expected = reference.assign(m=reference.key_scalar.map(np.mean)).groupby(
        "projector_index").m.mean()
    assert q.axes[0].name == "projector_index"
    assert q.labels_of(0) == ["0", "1", "2", "3"]
    np.testing.assert_allclose(q.values, expected.to_numpy(), rtol=1e-12)
    assert q.meta["context"]["missing cells skipped"] == 1


@pytest.mark.parametrize("per_row, function", [
    ("max", np.max), ("min", np.min), ("len", len), ("sum", np.sum), ("first", lambda a: a[0]),
    ("last", lambda a: a[-1]), ("median", np.median), ("norm", np.linalg.norm)])
def test_per_row_reducers(gates: tuple[Path, pd.DataFrame], per_row: str, function) -> None:
    folder, reference = gates
    q = quantity(folder, {"table": "gates.csv", "column": "key_scalar", "per_row": per_row})
    assert q.axes[0].name == "row"
    np.testing.assert_allclose(q.values, reference.key_scalar.map(function).to_numpy(dtype=float))


@pytest.mark.parametrize("how", ["median", "max", "min", "sum", "std", "first", "last",
                                 "count"])
def test_group_reducers(gates: tuple[Path, pd.DataFrame], how: str) -> None:
    folder, reference = gates
    q = quantity(folder, {"table": "gates.csv", "column": "key_scalar", "per_row": "max",
                          "group_by": "projector_index", "reduce": how})
    grouped = reference.assign(m=reference.key_scalar.map(np.max)).groupby("projector_index").m
    expected = {"std": grouped.std(ddof=0), "count": grouped.size()}.get(how)
    if expected is None:
        expected = getattr(grouped, how)()
    np.testing.assert_allclose(q.values, expected.to_numpy(dtype=float), rtol=1e-12)


def test_unique_insists_on_one_value_per_group(gates: tuple[Path, pd.DataFrame]) -> None:
    folder, _ = gates
    q = quantity(folder, {"table": "gates.csv", "column": "key_gate_logit",
                          "group_by": "projector_index", "reduce": "unique"})
    assert q.to_dict() == {"0": -1.5, "1": 0.3, "2": 2.0, "3": 0.7}
    with pytest.raises(QuantityError, match="not one"):
        quantity(folder, {"table": "gates.csv", "column": "sample", "group_by":
                          "projector_index", "reduce": "unique"}, name="u")


def test_array_cells_need_per_row(gates: tuple[Path, pd.DataFrame]) -> None:
    with pytest.raises(QuantityError, match="holds arrays"):
        quantity(gates[0], {"table": "gates.csv", "column": "key_scalar"})


def test_unknown_column_and_bad_options(gates: tuple[Path, pd.DataFrame]) -> None:
    folder, _ = gates
    with pytest.raises(QuantityError, match="did you mean 'key_scalar'"):
        quantity(folder, {"table": "gates.csv", "column": "key_scaler", "per_row": "mean"})
    with pytest.raises(SpecError, match="per_row"):
        quantity(folder, {"table": "gates.csv", "column": "key_scalar", "per_row": "avg"},
                 name="b")
    with pytest.raises(SpecError, match="not found"):
        quantity(folder, {"table": "nope.csv", "column": "x"}, name="c")
    with pytest.raises(SpecError, match="per group"):
        quantity(folder, {"table": "gates.csv", "column": "x", "index": "sample",
                          "as": "distribution"}, name="d")


def test_paths_are_relative_to_the_claim_file(gates: tuple[Path, pd.DataFrame],
                                              tmp_path: Path) -> None:
    folder, _ = gates
    specs = tmp_path / "specs"
    specs.mkdir()
    path = claims_file(specs, f"""  k: {{table: {folder}/gates.csv, column: key_gate_logit,
      group_by: projector_index, reduce: first}}""", '  - {id: a, claim: "all of k > -2"}')
    assert run_file(path)["a"].passed
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "t.csv").write_text("a\n1\n2\n", encoding="utf-8")
    path = claims_file(specs, "  a: {table: ../data/t.csv, column: a}",
                       '  - {id: s, claim: "sum(a) == 3"}', name="rel.claims.yaml")
    assert run_file(path)["s"].passed


# ---- missing cells and NaN ------------------------------------------------------------------
def test_missing_is_skipped_but_nan_never_passes(tmp_path: Path) -> None:
    (tmp_path / "t.csv").write_text("g,x\na,1\na,\na,3\nb,nan\nb,2\n", encoding="utf-8")
    q = quantity(tmp_path, {"table": "t.csv", "column": "x", "group_by": "g"})
    assert q.values[0] == 2.0  # the empty cell is skipped
    assert np.isnan(q.values[1])  # a NaN value is kept
    path = claims_file(tmp_path, "  x: {table: t.csv, column: x, group_by: g}",
                       '  - {id: a, claim: "all of x > 0"}\n'
                       '  - {id: one, claim: "x[a] > 0"}')
    results = run_file(path)
    assert results["one"].passed and not results["a"].passed
    with pytest.raises(QuantityError, match="have no 'x'"):
        quantity(tmp_path, {"table": "t.csv", "column": "x", "missing": "error"}, name="e")


def test_missing_keys_in_json_lines(tmp_path: Path) -> None:
    lines = [{"step": 0, "loss": 2.0, "acc": 0.0}, {"step": 10, "loss": 1.0},
             {"step": 20, "loss": 0.5, "acc": None}, {"step": 30, "loss": 0.2, "acc": 0.9}]
    (tmp_path / "log.jsonl").write_text("\n".join(json.dumps(r) for r in lines) + "\n",
                                        encoding="utf-8")
    q = quantity(tmp_path, {"table": "log.jsonl", "column": "acc", "index": "step"})
    assert q.to_dict() == {"0": 0.0, "30": 0.9}


# ---- index and grids ------------------------------------------------------------------------
def test_index_sorts_by_step_and_later_rows_win(tmp_path: Path) -> None:
    frame = pd.DataFrame({"step": [200, 0, 100, 100, 300], "v": [0.3, 0.0, 0.1, 0.15, 0.4]})
    frame.to_csv(tmp_path / "log.csv", index=False)
    q = quantity(tmp_path, {"table": "log.csv", "column": "v", "index": "step"})
    assert q.axes[0].name == "step"
    assert q.to_dict() == {"0": 0.0, "100": 0.15, "200": 0.3, "300": 0.4}
    q = quantity(tmp_path, {"table": "log.csv", "column": "v", "index": "step",
                            "reduce": "mean"}, name="m")
    assert q.to_dict()["100"] == pytest.approx(0.125)


def test_group_by_and_index_make_a_grid(tmp_path: Path) -> None:
    frame = pd.DataFrame({"run": ["a", "a", "b", "b", "b"], "step": [0, 10, 0, 10, 20],
                          "v": [1.0, 2.0, 3.0, 4.0, 5.0]})
    frame.to_csv(tmp_path / "runs.csv", index=False)
    q = quantity(tmp_path, {"table": "runs.csv", "column": "v", "group_by": "run",
                            "index": "step"})
    expected = frame.pivot(index="run", columns="step", values="v")
    assert [a.name for a in q.axes] == ["run", "step"]
    np.testing.assert_array_equal(q.values, expected.to_numpy())


# ---- per-group distributions ------------------------------------------------------------------
def test_per_group_distributions(gates: tuple[Path, pd.DataFrame]) -> None:
    folder, reference = gates
    q = quantity(folder, {"table": "gates.jsonl", "column": "key_scalar", "per_row": "mean",
                          "group_by": "projector_index", "as": "distribution"})
    per_row = reference.assign(m=reference.key_scalar.map(np.mean))
    expected = per_row.groupby("projector_index").m
    np.testing.assert_allclose(q.values, expected.mean().to_numpy(), rtol=1e-9)
    stats = q.meta["stats"]
    kurtosis = expected.apply(lambda s: scipy.stats.kurtosis(s.to_numpy()))
    np.testing.assert_allclose(stats.kurtosis(), kurtosis.to_numpy(), rtol=1e-6)
    np.testing.assert_array_equal(stats.finite_n, expected.size().to_numpy())


def test_pooled_array_elements_and_exact_fractions(gates: tuple[Path, pd.DataFrame]) -> None:
    folder, reference = gates
    path = claims_file(folder, """  pool:
    table: gates.csv
    column: key_scalar
    group_by: projector_index
    as: distribution
    thresholds: [0.3]""", """
  - {id: frac, claim: "every projector of pool has fraction |x| < 0.3 >= 0"}
  - {id: uni, claim: "every group of pool is unimodal"}""", name="pool.claims.yaml")
    results = run_file(path)
    pooled = reference.groupby("projector_index").key_scalar.apply(
        lambda cells: np.concatenate(cells.to_list()))
    expected = pooled.map(lambda a: np.mean(np.abs(a) < 0.3)).to_numpy()
    by_group = {row["projector_index"]: row["value"] for row in results["frac"].outcome.rows}
    got = [by_group[str(p)] for p in range(GROUPS)]
    np.testing.assert_allclose(got, expected, rtol=1e-12)
    assert results["uni"].passed, results["uni"].outcome.measured  # uniforms are unimodal


def test_gate_claims_like_notebook_000(gates: tuple[Path, pd.DataFrame]) -> None:
    folder, reference = gates
    path = claims_file(folder, """
  key_scalar: {table: gates.csv, column: key_scalar, per_row: mean,
               group_by: projector_index}
  key_gate_logit: {table: gates.csv, column: key_gate_logit, group_by: projector_index,
                   reduce: unique}
  key_dist: {table: gates.csv, column: key_scalar, per_row: mean, group_by: projector_index,
             as: distribution}""", """  - {id: range, claim: "all of key_scalar in [0.2, 0.9]"}
  - {id: open, claim: "all of key_gate_logit sigmoid >= 0.5"}
  - {id: open2, claim: "all of 1, 2, 3 of key_gate_logit sigmoid >= 0.5"}
  - {id: mean, claim: "mean of key_scalar > 0.4"}
  - {id: dist, claim: "mostly projectors of key_dist have quantile 0.95 < 0.85"}
  - {id: one, claim: "key_dist[2] peaks near 0.6 within 1 std"}""", name="g.claims.yaml")
    results = run_file(path)
    means = reference.assign(m=reference.key_scalar.map(np.mean)).groupby(
        "projector_index").m.mean()
    assert results["range"].passed is bool(means.between(0.2, 0.9).all())
    assert not results["open"].passed  # projector 0's logit is -1.5
    assert results["open2"].passed
    assert results["mean"].passed is bool(means.mean() > 0.4)
    assert results["dist"].passed
    assert results["one"].passed


# ---- training-log claims ----------------------------------------------------------------------
@pytest.fixture(scope="module")
def log(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, pd.DataFrame]:
    """A training log: eval rows every 100 steps (val_exact), train rows in between."""
    folder = tmp_path_factory.mktemp("log")
    rng = np.random.default_rng(1)
    records = []
    for step in range(0, 10_001, 50):
        record = {"step": step, "train_loss": float(2.3 * np.exp(-step / 1500))}
        if step % 100 == 0:
            exact = 1 / (1 + np.exp(-(step - 4000) / 500)) + rng.normal(0, 0.003)
            record["val_exact"] = float(np.clip(exact, 0, 1))
        records.append(record)
    with open(folder / "log.jsonl", "w", encoding="utf-8") as handle:
        for record in records:
            handle.write(json.dumps(record) + "\n")
    frame = pd.DataFrame(records)
    (folder / "log.claims.yaml").write_text("""quantities:
  val_exact: {table: log.jsonl, column: val_exact, index: step}
  train_loss: {table: log.jsonl, column: train_loss, index: step}
claims: []
""", encoding="utf-8")
    return folder, frame


def check(folder: Path, sentence: str, plot_dir: Path | None = None) -> ClaimResult:
    subject = ia.load(folder / "log.claims.yaml")
    try:
        return subject.check(sentence, plot_dir=plot_dir)
    except ia.ClaimFailed as failed:
        return failed.result


def test_reaches_reports_the_first_step(log: tuple[Path, pd.DataFrame]) -> None:
    folder, frame = log
    evals = frame.dropna(subset=["val_exact"])
    first = int(evals.step[evals.val_exact >= 0.99].iloc[0])
    result = check(folder, "val_exact reaches 0.99 by step 8000")
    assert result.passed
    assert result.outcome.value == first
    assert f"step {first}" in result.outcome.measured
    assert not check(folder, f"val_exact reaches 0.99 by step {first - 100}").passed
    assert check(folder, f"val_exact reaches 0.99 by {first}").passed
    assert not check(folder, "val_exact reaches 1.5").passed
    below = int(frame.step[frame.train_loss < 0.05].iloc[0])
    falls = check(folder, "train_loss falls below 0.05 by step 7000")
    assert falls.passed and falls.outcome.value == below
    assert check(folder, "train_loss reaches <= 0.05").outcome.value == below


def test_final_and_stays(log: tuple[Path, pd.DataFrame]) -> None:
    folder, frame = log
    last = frame.dropna(subset=["val_exact"]).val_exact.iloc[-1]
    final = check(folder, "final val_exact ≥ 0.99")
    assert final.passed and final.outcome.value == pytest.approx(last)
    assert "step 10000" in final.outcome.measured
    assert not check(folder, f"final val_exact > {last}").passed
    assert check(folder, "val_exact stays >= 0.98 from step 7000").passed
    stays = check(folder, "val_exact stays >= 0.98 after step 5000")
    assert not stays.passed and "first at step" in stays.outcome.measured
    assert check(folder, "train_loss stays in [0, 2.31]").passed


def test_monotone_with_tolerance_on_a_log(log: tuple[Path, pd.DataFrame]) -> None:
    folder, frame = log
    steps = np.diff(frame.dropna(subset=["val_exact"]).val_exact.to_numpy())
    assert steps.min() < 0  # the noise makes it non-monotone ...
    assert not check(folder, "val_exact monotone increasing over steps").passed
    tolerance = float(-steps.min()) + 1e-6  # ... but within a tolerance it is
    assert check(folder, f"val_exact monotone increasing over steps with tolerance "
                         f"{tolerance}").passed
    assert check(folder, "train_loss monotone decreasing over steps").passed


def test_nan_in_a_log_never_reaches(tmp_path: Path) -> None:
    (tmp_path / "log.csv").write_text("step,acc\n0,0.1\n10,nan\n20,0.5\n", encoding="utf-8")
    (tmp_path / "log.claims.yaml").write_text(
        "quantities:\n  acc: {table: log.csv, column: acc, index: step}\nclaims: []\n",
        encoding="utf-8")
    result = check(tmp_path, "acc reaches 0.4")
    assert result.passed and result.outcome.value == 20
    assert any("NaN" in note for note in result.outcome.notes)
    assert not check(tmp_path, "acc stays > 0").passed


def test_trajectory_forms_round_trip() -> None:
    for text in ("val_exact reaches 0.99 by step 8000", "val_exact reaches 0.99",
                 "loss falls below 0.1 by step 500", "acc rises above 0.5",
                 "loss reaches <= 0.1 by 300", "final val_exact >= 0.99",
                 "acc stays >= 0.99 from step 8000", "acc stays in [0, 1]",
                 "acc stays > 0.5 after 10"):
        first = parse_claim(text)
        assert str(first) == text
        assert parse_claim(str(first)).claim == first.claim


def test_failing_log_claims_draw_pngs(log: tuple[Path, pd.DataFrame], tmp_path: Path) -> None:
    folder, _ = log
    for i, sentence in enumerate(("val_exact reaches 0.99 by step 3000",
                                  "final val_exact > 1", "val_exact stays >= 0.999")):
        result = check(folder, sentence, plot_dir=tmp_path / str(i))
        assert not result.passed
        assert result.plot is not None
        assert result.plot.read_bytes()[:4] == b"\x89PNG"


# ---- the gates example ------------------------------------------------------------------------
def test_export_gates_writes_the_documented_columns(tmp_path: Path) -> None:
    from examples.gates.export_gates import COLUMNS, main

    main(["--n", "6", "--out-dir", str(tmp_path), "--checkpoint", str(tmp_path / "none.pt")])
    frame = pd.read_csv(tmp_path / "gates.csv")
    assert tuple(frame.columns) == COLUMNS
    assert len(frame) == 8 * 6
    lines = pd.read_json(tmp_path / "gates.jsonl", lines=True)
    arrays = np.stack(frame.aligned_attn.map(json.loads))
    assert np.allclose(np.stack(lines.aligned_attn), arrays)
    path = claims_file(tmp_path, """
  aligned: {table: gates.csv, column: aligned_attn, per_row: mean, group_by: head}
  ov_logit: {table: gates.jsonl, column: ov_logit, group_by: head, reduce: unique}""",
                       """  - {id: range, claim: "all of aligned in [0, 1]"}
  - {id: zero, claim: "sum(ov_logit) ≈ 0 ± 0.001"}""")
    results = run_file(path)
    assert results["range"].passed and results["zero"].passed
