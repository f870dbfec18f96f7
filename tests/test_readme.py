"""README.md cannot drift from the code: every sentence of its table of claim kinds parses,
prints back to itself and runs on a bundled model, and every claim-file YAML block loads."""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

import interp_assert as ia
from interp_assert.claims.builtin import parse_claim
from interp_assert.errors import InterpAssertError
from interp_assert.loading.subject import clear_subjects

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")
#: the claim files a README sentence may run on, tried in this order
SPECS = ("examples/readme/readme.claims.yaml", "specs/adder.claims.yaml",
         "specs/induction.claims.yaml", "specs/minilm.claims.yaml")


def table_sentences() -> list[str]:
    """The first code span of each ' · '-separated example in the table of claim kinds."""
    start = README.index("| kind | examples |")
    table = README[start:README.index("\n\n", start)]
    found = []
    for row in table.splitlines()[2:]:
        for segment in row.split(" | ")[1].split(" · "):
            code = re.search(r"`([^`]+)`", segment)
            if code:
                found.append(code.group(1).replace("\\|", "|"))
    return found


SENTENCES = table_sentences()


def test_the_table_is_read():
    assert len(SENTENCES) >= 50


@pytest.mark.parametrize("sentence", SENTENCES)
def test_sentence_parses_and_prints_back(sentence):
    parsed = parse_claim(sentence)
    assert str(parse_claim(str(parsed.claim)).claim) == str(parsed.claim)


@pytest.fixture(scope="module", autouse=True)
def _fresh_subjects() -> Iterator[None]:
    """The sentences share loaded models and forward passes, as the claims of one ``pytest``
    run do: the process-wide subject pool is emptied before and after this module, not
    between its tests (each sentence still evaluates its own claim)."""
    clear_subjects()
    yield
    clear_subjects()


@pytest.fixture(scope="module")
def subjects():
    if not all((ROOT / spec).exists() for spec in SPECS):
        pytest.skip("a bundled claim file is missing")
    return {spec: ia.load(ROOT / spec) for spec in SPECS}


def run_somewhere(sentence: str, subjects: dict) -> tuple[str, str]:
    """(claim file, verdict) of the first bundled claim file on which the sentence holds or
    fails (rather than erring: a name it lacks, a dataset field, a missing extra)."""
    reasons = []
    for spec, subject in subjects.items():
        try:
            subject.check(sentence)
            return spec, "holds"
        except ia.ClaimFailed as failure:
            return spec, failure.result.verdict.value
        except InterpAssertError as exc:
            reasons.append(f"{spec}: {exc.message}")
    pytest.fail(f"no bundled claim file runs {sentence!r}:\n" + "\n".join(reasons))


@pytest.mark.slow
@pytest.mark.parametrize("sentence", [s for s in SENTENCES if "baseline" not in s])
def test_sentence_runs_on_a_bundled_model(sentence, subjects):
    _, verdict = run_somewhere(sentence, subjects)
    assert verdict in ("holds", "fails")


@pytest.mark.slow
@pytest.mark.parametrize("sentence", [s for s in SENTENCES if "baseline" in s])
def test_baseline_sentence_runs_against_a_recorded_baseline(sentence, tmp_path):
    from interp_assert.drivers.cli import main

    source = ROOT / "examples" / "readme" / "readme.claims.yaml"
    data = yaml.safe_load(source.read_text(encoding="utf-8"))
    data["subject"]["checkpoint"] = str(ROOT / "examples" / "adder" / "checkpoints" / "adder.pt")
    for quantity in data["quantities"].values():
        if isinstance(quantity, dict) and "table" in quantity:
            quantity["table"] = str(ROOT / "examples" / "adder" / "train_log.csv")
    data["claims"] = [{"id": "readme", "claim": sentence}]
    claim_file = tmp_path / "baseline.claims.yaml"
    claim_file.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    shutil.copytree(ROOT / "examples" / "adder", tmp_path / "adder", dirs_exist_ok=True)
    baseline = tmp_path / "baseline.json"
    common = ["check", str(claim_file), "--baseline", str(baseline), "--plots", "never"]
    assert main([*common, "--baseline-update"]) == 0
    assert main(common) == 0  # the same checkpoint holds against its own recorded value


def yaml_blocks() -> list[str]:
    return re.findall(r"```yaml\n(.*?)```", README, re.DOTALL)


def test_claim_file_blocks_are_valid_yaml_with_known_sections():
    blocks = [b for b in yaml_blocks() if re.search(r"^(subject|claims|quantities):", b, re.M)]
    assert len(blocks) >= 3
    for block in blocks:
        data = yaml.safe_load(block)
        assert set(data) <= {"title", "description", "subject", "data", "quantities", "claims",
                             "layout", "circuits"}
        for entry in data.get("claims", []):
            parse_claim(str(entry["claim"]))
