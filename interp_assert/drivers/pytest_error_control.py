"""Run-level error control in pytest: ``--interp-alpha`` and ``--interp-error-control`` (ini
``interp_assert_alpha`` / ``interp_assert_error_control``, env ``INTERP_ASSERT_ALPHA`` /
``INTERP_ASSERT_ERROR_CONTROL``). Imports nothing but pytest at start-up.

pytest reports each claim's item as it finishes, before the other claims of the run are known,
so an item shows the verdict of its claim alone. The correction is decided once, where the run's
records are gathered (``Runner.finish`` in the reporting process, xdist controller included);
then a claim that does not survive fails the run: the exit status, the terminal section, the
JSON results, the report and the JUnit file (a ``failure`` in its testcase) say so.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from interp_assert.drivers.pytest_session import ClaimSession
    from interp_assert.judge.error_control import ErrorControl


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("interp-assert")
    group.addoption("--interp-alpha", metavar="ALPHA", default=None,
                    help="control the error rate across the run's confidence claims at ALPHA "
                         "(0.05; off: none); a claim that holds alone but not after the "
                         "correction fails the run (ini: interp_assert_alpha; env: "
                         "INTERP_ASSERT_ALPHA; default off)")
    group.addoption("--interp-error-control", choices=("holm", "bh"), default=None,
                    help="holm: family-wise error (Holm), bh: false-discovery rate "
                         "(Benjamini-Hochberg); alone it sets alpha 0.05 (ini: "
                         "interp_assert_error_control; env: INTERP_ASSERT_ERROR_CONTROL; "
                         "default holm)")
    parser.addini("interp_assert_alpha", "run-level error rate of the confidence claims "
                  "(0.05, off)", default="")
    parser.addini("interp_assert_error_control", "holm or bh", default="")


def error_control_of(config: pytest.Config) -> ErrorControl | None:
    """The run's error control from the options, the ini file and the environment."""
    from interp_assert.errors import InterpAssertError
    from interp_assert.judge.error_control import parse_control

    alpha = config.getoption("interp_alpha") or config.getini("interp_assert_alpha") or None
    method = (config.getoption("interp_error_control")
              or config.getini("interp_assert_error_control") or None)
    try:
        return parse_control(alpha, method)
    except InterpAssertError as exc:
        raise pytest.UsageError(f"--interp-alpha / --interp-error-control: {exc.message}"
                                f"\n  hint: {exc.hint}") from None


def pytest_configure(config: pytest.Config) -> None:
    """A misspelt α or method stops the run (the library is imported only when one is set)."""
    import os

    if (config.getoption("interp_alpha") or config.getoption("interp_error_control")
            or config.getini("interp_assert_alpha") or config.getini("interp_assert_error_control")
            or os.environ.get("INTERP_ASSERT_ALPHA")
            or os.environ.get("INTERP_ASSERT_ERROR_CONTROL")):
        error_control_of(config)


def after_control(session: pytest.Session, claim_session: ClaimSession) -> None:
    """After ``Runner.finish`` decided the correction: a claim that did not survive fails the
    run's exit status, and the JUnit file (written after this) carries each claim's p-values."""
    demoted = {nodeid: item for nodeid, item in claim_session.records.items()
               if item.get("error_control") and item["verdict"]
               != item["error_control"]["verdict_alone"]}
    if any(item["fails_run"] for item in demoted.values()) and (
            session.exitstatus == pytest.ExitCode.OK):
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
    _junit(session.config, claim_session, demoted)


def _junit(config: pytest.Config, claim_session: ClaimSession,
           demoted: dict[str, dict[str, Any]]) -> None:
    """Each confidence claim's testcase gets its p-values as properties, and a claim that does
    not survive a ``failure`` (pytest's JUnit writer has finalised the testcases by now)."""
    from _pytest.junitxml import mangle_test_address, xml_key

    xml = config.stash.get(xml_key, None)
    if xml is None:
        return
    from interp_assert.judge.error_control import ErrorControl
    from interp_assert.output.error_control import control_text, mark

    text = control_text(claim_session.records.values())
    if not text:
        return
    xml.add_global_property("interp_error_control", text.splitlines()[0])
    by_case = {}
    for nodeid, item in claim_session.records.items():
        names = mangle_test_address(nodeid)
        classes = [xml.prefix, *names[:-1]] if xml.prefix else names[:-1]
        by_case[(".".join(classes), names[-1])] = nodeid, item
    import xml.etree.ElementTree as ET

    for reporter in getattr(xml, "node_reporters_ordered", []):
        case = reporter.to_xml()
        nodeid, item = by_case.get((case.get("classname"), case.get("name")), (None, {}))
        entry = item.get("error_control")
        if not entry:
            continue
        properties = case.find("properties")
        if properties is None:
            properties = ET.Element("properties")
            case.insert(0, properties)
        for name, value in (("error_control", ErrorControl(entry["alpha"], entry["method"])
                             .describe()), ("p_value", repr(entry["p_value"])),
                            ("adjusted_p", repr(entry["adjusted_p"])),
                            ("survives", mark(entry))):
            properties.append(ET.Element("property", name=name, value=value))
        if nodeid in demoted and item["fails_run"] and case.find("failure") is None:
            case.append(ET.Element("failure", message=item["reason"]))
            xml.stats["failure"] += 1
            xml.stats["passed"] = max(0, xml.stats["passed"] - 1)


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int,
                            config: pytest.Config) -> None:
    """Which confidence claims survive the correction, with their adjusted p-values."""
    from interp_assert.drivers.pytest_keys import SESSION_KEY

    claim_session = config.stash.get(SESSION_KEY, None)
    if claim_session is None or not claim_session.records:
        return
    from interp_assert.output.error_control import control_text

    text = control_text(claim_session.records.values())
    if text:
        terminalreporter.section("interp-assert error control")
        terminalreporter.write_line(text)
