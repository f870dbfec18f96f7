"""Bounded work and lost-nothing behaviour (issue 14) that the bad-input table cannot show:
label expansion time, lazy templates, limits on claims and checkpoint globs, user code that
raises KeyboardInterrupt or runs past its time limit, and files that cannot be written."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import claim_file_text, save_checkpoint, write_claims

import interp_assert as ia
from interp_assert.drivers import cli
from interp_assert.errors import QuantityError, SpecError, TimeLimitError
from interp_assert.labels import expand_labels

posix_only = pytest.mark.skipif(os.name != "posix", reason="needs POSIX signals")
GOOD = "N0, N1, N3 cluster with cos > 0.9"

USER = '''
import time


def interrupt(state_dict):
    raise KeyboardInterrupt


def sleepy(state_dict):
    time.sleep(60)
    return 1.0
'''


def best_of(runs: int, work: Any) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        work()
        times.append(time.perf_counter() - started)
    return min(times)


# ---- bounded work -----------------------------------------------------------------------------
def test_label_expansion_is_linear() -> None:
    """100,000 labels under 0.5 s; the 36,864 neurons of 12 layers x 3,072 under 0.1 s (the
    duplicate check was quadratic: 19.6 s)."""
    many = [f"X{i}" for i in range(100_000)]
    assert best_of(3, lambda: expand_labels(many)) < 0.5
    assert best_of(3, lambda: expand_labels("N0..N99999")) < 0.5
    assert best_of(3, lambda: expand_labels("L{0..11}N{0..3071}")) < 0.1
    assert len(expand_labels("L{0..11}N{0..3071}")) == 36_864
    with pytest.raises(SpecError, match=r"duplicate labels \['X5'\]"):
        expand_labels([*many, "X5"])


def test_label_lookups_are_constant_time() -> None:
    axis = ia.Labelled(range(100_000), (ia.Axis("n", tuple(expand_labels("N0..N99999"))),))
    assert best_of(3, lambda: axis.select([f"N{i}" for i in range(0, 100_000, 7)])) < 0.5


def test_templates_are_lazy_and_an_unused_variable_is_checked_once(tmp_path: Path) -> None:
    from interp_assert.claims.measure import instances
    from interp_assert.language.parser import parse_claim
    from interp_assert.run.runner import builtin_kinds

    parsed = parse_claim("norm(N{i}) > 0 for i in 0..9999", builtin_kinds().claims)
    made = instances(parsed)
    assert next(made)[0] == "i=0" and next(made)[0] == "i=1"  # one at a time
    save_checkpoint(tmp_path / "model.pt")
    path = write_claims(tmp_path / "t.claims.yaml", claim_file_text(
        "- id: unused\n  claim: norm(N0) > 0 for i in 0..9999\n"))
    started = time.perf_counter()
    result = ia.load(path).run()[0]
    assert time.perf_counter() - started < 5
    assert result.passed and "is not used in the claim (no {i}): checked once" in " ".join(
        result.outcome.notes)


def test_claim_count_limit(tmp_path: Path) -> None:
    save_checkpoint(tmp_path / "model.pt")
    path = tmp_path / "many.claims.yaml"
    path.write_text("subject: model.pt\nclaims:\n" + "- 1 > 0\n" * 10_001, encoding="utf-8")
    with pytest.raises(SpecError, match="has 10,001 claims, over the limit of 10,000"):
        ia.load(path)


def test_checkpoint_globs_visit_a_bounded_number_of_files(tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    from interp_assert.loading import targets

    for i in range(30):
        (tmp_path / "ckpts" / f"d{i}").mkdir(parents=True)
        (tmp_path / "ckpts" / f"d{i}" / f"step_{i}.pt").write_bytes(b"x")
    os.symlink(tmp_path / "ckpts", tmp_path / "ckpts" / "d0" / "loop")  # never followed
    found = targets.expand_checkpoints(["ckpts/**/*.pt"], tmp_path)
    assert [p.name for p in found][:3] == ["step_0.pt", "step_1.pt", "step_2.pt"]
    assert len(found) == 30
    monkeypatch.setattr(targets, "MAX_GLOB_VISITS", 40)
    with pytest.raises(ValueError, match="would look at more than 40 files and folders under"):
        targets.expand_checkpoints(["ckpts/**/*.pt"], tmp_path)
    with pytest.raises(ValueError, match="searches from the filesystem root"):
        targets.expand_checkpoints(["/*/*.pt"], tmp_path)


def test_ablating_a_head_past_the_layer_says_which_heads_there_are() -> None:
    adder = ia.load(Path(__file__).resolve().parents[1] / "specs" / "adder.claims.yaml")
    with pytest.raises(QuantityError) as info:
        ia.check("ablate L0H99 (mean): exact-match drops by ≥ 99 points", adder)
    assert "L0H99: layer 0 has 4 heads (L0H0..L0H3); did you mean 'L0H3'?" in str(info.value)
    with pytest.raises(QuantityError, match=r"L0N999: layer 0 has 256 neurons \(L0N0..L0N255\)"):
        ia.check("ablate L0N999 (mean): exact-match drops by ≥ 99 points", adder)


# ---- user code: KeyboardInterrupt and time limits ------------------------------------------
def project(folder: Path, *claims: str) -> Path:
    save_checkpoint(folder / "model.pt")
    (folder / "usermod_h14.py").write_text(USER, encoding="utf-8")
    quantities = ("quantities:\n  neurons:\n    weight: blocks.0.mlp.W_out\n"
                  "    axes: [neuron, d_model]\n    labels: {neuron: N0..N15}\n"
                  "  stop: {call: usermod_h14:interrupt}\n  slow: {call: usermod_h14:sleepy}\n")
    body = "".join(f"- id: {claim_id}\n  claim: {text}\n" for claim_id, text in (
        c.split(": ", 1) for c in claims))
    return write_claims(folder / "h.claims.yaml", claim_file_text(body, quantities=quantities))


def run_cli(folder: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, **env}
    return subprocess.run([sys.executable, "-m", "interp_assert.drivers.cli", "check", *args],
                          cwd=folder, capture_output=True, text=True, timeout=300,
                          env=environment)


@posix_only
def test_keyboard_interrupt_from_user_code_stops_the_cli_like_ctrl_c(tmp_path: Path) -> None:
    project(tmp_path, f"first: {GOOD}", "stop: stop > 0", f"never: {GOOD}")
    (tmp_path / "b.json").write_text('{"schema": "interp-assert/baseline/1", "files": {}}\n')
    before = (tmp_path / "b.json").read_bytes()
    done = run_cli(tmp_path, "h.claims.yaml", "--json", "r.json", "--baseline", "b.json",
                   "--baseline-update", "-q")
    assert done.returncode == 130, done.stdout + done.stderr
    assert "interrupted after 1 of 3 checks" in done.stderr
    assert "baseline b.json not updated: the run was interrupted" in done.stdout
    assert "Traceback" not in done.stdout + done.stderr
    records = json.loads((tmp_path / "r.json").read_text())["results"]
    assert [r["id"] for r in records] == ["first"]
    assert (tmp_path / "b.json").read_bytes() == before


@posix_only
def test_keyboard_interrupt_from_user_code_stops_pytest_like_ctrl_c(tmp_path: Path) -> None:
    project(tmp_path, f"first: {GOOD}", "stop: stop > 0", f"never: {GOOD}")
    done = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-p",
                           "no:randomly", "h.claims.yaml", "--interp-json", "r.json",
                           "--interp-baseline", "b.json", "--interp-baseline-update"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 2, done.stdout  # pytest's "interrupted"
    assert "KeyboardInterrupt" in done.stdout and "baseline b.json not updated" in done.stdout
    records = json.loads((tmp_path / "r.json").read_text())["results"]
    assert [r["id"] for r in records] == ["first"]
    assert not (tmp_path / "b.json").exists()


@posix_only
@pytest.mark.parametrize("how", ["option", "env"])
def test_cli_time_limit(tmp_path: Path, how: str) -> None:
    project(tmp_path, "slow: slow > 0", f"good: {GOOD}")
    args, env = (["--timeout", "0.5"], {}) if how == "option" else (
        [], {"INTERP_ASSERT_TIMEOUT": "0.5"})
    started = time.perf_counter()
    done = run_cli(tmp_path, "h.claims.yaml", "-q", "--plots", "never", *args, **env)
    assert time.perf_counter() - started < 60
    assert done.returncode == 2, done.stdout + done.stderr
    assert ("claim 'slow': quantity 'slow' (usermod_h14:sleepy) was stopped: the claim's user "
            "code ran 0.5 s, over its time limit of 0.5 s") in done.stdout
    assert "1 passed, 0 failed, 1 errors" in done.stdout


def test_cli_refuses_a_bad_time_limit(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        cli.main(["check", "x.claims.yaml", "--timeout", "soon"])
    assert "--timeout: a time limit is a number of seconds, not 'soon'" in capsys.readouterr().err


@posix_only
@pytest.mark.parametrize("how", ["option", "ini", "claim"])
def test_pytest_time_limit(tmp_path: Path, how: str) -> None:
    text = "slow: slow > 0"
    project(tmp_path, text, f"good: {GOOD}")
    args: list[str] = []
    if how == "option":
        args = ["--interp-timeout", "0.5"]
    elif how == "ini":
        (tmp_path / "pytest.ini").write_text("[pytest]\ninterp_assert_timeout = 0.5\n")
    else:
        path = tmp_path / "h.claims.yaml"
        path.write_text(path.read_text().replace("claim: slow > 0", "claim: slow > 0\n"
                                                 "    timeout: 0.5"))
    done = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-p",
                           "no:randomly", "h.claims.yaml", "--interp-plots=never", *args],
                          cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert "over its time limit of 0.5 s" in done.stdout, done.stdout
    assert "1 passed, 1 error" in done.stdout


def test_pytest_refuses_a_bad_time_limit(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest("--interp-timeout", "-3")
    assert "a time limit is a number of seconds, not '-3'" in result.stderr.str()


def test_a_time_limit_outside_the_main_thread_fails_the_call_when_it_returns() -> None:
    from interp_assert.usercode import call_user, time_limit

    errors: list[BaseException] = []

    def work() -> None:
        with time_limit(0.1, "claim 'x'"):
            try:
                call_user(time.sleep, "quantity 'x'", 0.3)
            except TimeLimitError as exc:
                errors.append(exc)

    thread = threading.Thread(target=work)
    thread.start()
    thread.join()
    assert len(errors) == 1
    assert "the claim's user code ran 0.3 s, over its time limit of 0.1 s" in str(errors[0])


@posix_only
def test_the_watchdog_restores_an_earlier_alarm_handler() -> None:
    import signal

    from interp_assert.usercode import call_user, time_limit

    def mine(signum: int, frame: Any) -> None:
        pass

    old = signal.signal(signal.SIGALRM, mine)
    try:
        with time_limit(5, "claim 'x'"):
            assert call_user(lambda: 3, "quantity 'x'") == 3
        assert signal.getsignal(signal.SIGALRM) is mine
        assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)
    finally:
        signal.signal(signal.SIGALRM, old)


# ---- files that cannot be written ----------------------------------------------------------
def failing_replace(code: int, name: str) -> Any:
    real = os.replace

    def replace(src: Any, dst: Any) -> None:
        if str(dst).endswith(name):
            raise OSError(code, os.strerror(code), str(src))
        real(src, dst)

    return replace


@pytest.mark.parametrize(("code", "words"), [(errno.ENOSPC, "No space left on device"),
                                             (errno.EROFS, "Read-only file system")])
def test_cli_write_failure_names_the_file_and_still_prints_the_results(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        code: int, words: str) -> None:
    project(tmp_path, f"good: {GOOD}")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(os, "replace", failing_replace(code, "r.json"))
    status = cli.main(["check", "h.claims.yaml", "--json", "r.json", "--baseline", "b.json",
                       "--baseline-update", "-q", "--plots", "never"])
    out, err = capsys.readouterr()
    assert status == 2
    assert f"ERROR cannot write r.json: {words}" in err
    assert "Traceback" not in out + err
    assert "h.claims.yaml  good" in out and "1 passed, 0 failed, 0 errors" in out
    assert "baseline b.json: 1 of 1 values recorded" in out  # the other files are written
    assert not (tmp_path / "r.json").exists() and (tmp_path / "b.json").exists()


@pytest.mark.parametrize("option", ["--json", "--baseline"])
def test_cli_write_into_a_missing_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                         capsys: pytest.CaptureFixture[str],
                                         option: str) -> None:
    project(tmp_path, f"good: {GOOD}")
    (tmp_path / "plain.txt").write_text("a file, not a folder")
    monkeypatch.chdir(tmp_path)
    extra = ["--baseline-update"] if option == "--baseline" else []
    status = cli.main(["check", "h.claims.yaml", option, "plain.txt/out.json", *extra, "-q",
                       "--plots", "never"])
    out, err = capsys.readouterr()
    assert status == 2, out + err
    assert "ERROR cannot write plain.txt/out.json: plain.txt is a file, not a folder" in err
    assert "hint: write elsewhere" in err
    assert "1 passed, 0 failed, 0 errors" in out


def test_report_write_failure(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                              capsys: pytest.CaptureFixture[str]) -> None:
    project(tmp_path, f"good: {GOOD}")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(os, "replace", failing_replace(errno.ENOSPC, "report.md"))
    status = cli.main(["report", "h.claims.yaml", "-o", "report.md", "--format", "markdown"])
    _out, err = capsys.readouterr()
    assert status == 2 and "ERROR cannot write report.md: No space left on device" in err


def test_pytest_write_failure_is_a_clear_error_and_a_failing_exit(
        pytester: pytest.Pytester, heavy_modules_loaded: None) -> None:
    save_checkpoint(pytester.path / "model.pt")
    (pytester.path / "h.claims.yaml").write_text(claim_file_text(f"- id: good\n  claim: {GOOD}"))
    pytester.makeconftest('''
import errno, os
real = os.replace
def replace(src, dst):
    if str(dst).endswith("r.json"):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(src))
    real(src, dst)
os.replace = replace
''')
    # in a subprocess: the conftest replaces os.replace for the whole process
    result = pytester.runpytest_subprocess("-p", "no:randomly", "--interp-plots=never",
                                           "--interp-json", "r.json")
    text = result.stdout.str()
    assert result.ret != 0
    assert "interp-assert: ERROR cannot write " in text and "r.json: No space left" in text
    assert "1 passed" in text and "Traceback" not in text and "INTERNALERROR" not in text


def test_congruence_with_a_token_outside_the_vocabulary_is_a_clear_error(tmp_path: Path) -> None:
    """Found by the fuzz campaign: a token id past W_U's columns raised IndexError."""
    from conftest import save_checkpoint

    import interp_assert as ia

    save_checkpoint(tmp_path / "model.pt")  # W_U has 3 columns (tokens 0..2)
    subject = ia.subject(tmp_path / "model.pt")
    with pytest.raises(ia.QuantityError, match=r"token 4 is not a token id of W_U \(ids 0\.\.2\)"):
        ia.check("congruence of L0N4 with 4 ≥ 0.7", subject)
