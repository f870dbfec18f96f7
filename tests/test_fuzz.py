"""Fuzzing the claim language, in bounded time (the larger offline run is
``bench/fuzz_campaign.py``). Of every sentence, from the mutation corpus of the bundled claim
files and README and from a hypothesis strategy of the claim language (``tests/fuzzing.py``):

* it parses or gives ``ClaimSyntaxError``;
* evaluated on a small state-dict subject, it gives a verdict or a project error (an
  ``InterpAssertError``, never "unexpected ..., may be a bug");
* it takes at most ``fuzzing.TIME_LIMIT`` seconds.
"""

from __future__ import annotations

import functools
import operator
import os
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import fuzzing
import pytest
from hypothesis import HealthCheck, given, settings

#: sentences per test (raise for a longer local run: INTERP_ASSERT_FUZZ=2000)
COUNT = int(os.environ.get("INTERP_ASSERT_FUZZ", "500"))


@pytest.fixture(scope="module")
def subject(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield fuzzing.tiny_subject(tmp_path_factory.mktemp("fuzz"))


def test_the_corpus_holds_the_bundled_claims_and_readme_sentences() -> None:
    seeds = fuzzing.corpus()
    assert len(seeds) >= 60
    assert "A·V monotone over digits" in seeds  # README and specs/adder.claims.yaml
    assert any(s.startswith("ablate L0H0") for s in seeds)


def test_the_seed_sentences_parse_or_give_a_syntax_error(subject: Any) -> None:
    findings = [f for s in fuzzing.corpus()
                if (f := fuzzing.examine(s, subject)) is not None and f.kind != "known elsewhere"]
    assert findings == [], "\n".join(map(str, findings))


@pytest.mark.parametrize("seed", [1, 2])
def test_mutated_sentences(subject: Any, seed: int) -> None:
    findings = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for sentence in fuzzing.mutations(COUNT, seed):
            found = fuzzing.examine(sentence, subject)
            if found is not None and found.kind != "known elsewhere":
                findings.append(found)
    assert findings == [], "\n".join(map(str, findings))


def test_generated_sentences(subject: Any) -> None:
    findings: list[fuzzing.Finding] = []

    @settings(max_examples=COUNT, deadline=None, database=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    @given(fuzzing.sentences())
    def run(sentence: str) -> None:
        found = fuzzing.examine(sentence, subject)
        if found is not None and found.kind != "known elsewhere":
            findings.append(found)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        run()
    assert findings == [], "\n".join(map(str, findings))


@pytest.mark.parametrize("sentence", [
    "norm(N0) > " + "-" * 500 + "1", "norm(neurons" + "[N0]" * 500 + ") > 0",
    " + ".join(["1"] * 800) + " > 0", "norm(N{i}) > 0 for i in 0.." + "9" * 4400,
    "norm(N0) > " + "9" * 4500 + "%", "norm(N{i}) > 0 for i in 9..0", "norm(-1) > 0",
    "norm(neurons[:, 0:-1e309]) > 0", "norm(N0) > 0 for i in 0..99999999",
    "N0..N999999999 cluster with cos > 0.5", "0, 5 of neurons cluster with cos > 0.5",
])
def test_the_issues_sentences(subject: Any, sentence: str) -> None:
    assert fuzzing.examine(sentence, subject) is None


def test_a_crash_and_a_hang_are_found(subject: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """The harness itself: an internal error and a slow sentence are findings."""
    from interp_assert.claims import measure

    # a library frame raising (a function of the test itself would count as user code)
    monkeypatch.setattr(measure, "evaluate_parsed", functools.partial(operator.getitem, [], 5))
    found = fuzzing.examine("norm(N0) > 0", subject)
    assert found is not None and found.kind == "evaluation crash", found
    assert "unexpected TypeError" in found.detail
    monkeypatch.undo()
    found = fuzzing.examine("norm(N0) > 0", subject, limit=0.0)
    assert found is not None and found.kind == "hang"


def test_the_campaign_script_runs(tmp_path: Path) -> None:
    import subprocess
    import sys

    script = Path(__file__).resolve().parents[1] / "bench" / "fuzz_campaign.py"
    done = subprocess.run([sys.executable, str(script), "--sentences", "40", "--seed", "3",
                           "--out", str(tmp_path / "findings.txt")], capture_output=True,
                          text=True, timeout=300)
    assert "sentences 40 " in done.stdout and "crashes 0 " in done.stdout, done.stdout
    assert done.returncode == 0, done.stdout + done.stderr
