"""interp-assert: interpretability claims about trained networks, checked like tests.

The public facade. Names are imported from the private modules on first use (PEP 562), so
``import interp_assert`` (which the pytest plugin does in every pytest run) loads nothing heavy.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

#: public name -> module that defines it
_EXPORTS = {
    "Subject": "interp_assert.drivers.api", "check": "interp_assert.drivers.api",
    "load": "interp_assert.drivers.api", "subject": "interp_assert.drivers.api",
    "validate": "interp_assert.drivers.api",
    "Claim": "interp_assert.claims.base", "register_claim": "interp_assert.claims.base",
    "Context": "interp_assert.claims.base",
    "ClaimResult": "interp_assert.judge.verdict", "Verdict": "interp_assert.judge.verdict",
    "CheckpointError": "interp_assert.errors", "ClaimFailed": "interp_assert.errors",
    "ClaimSyntaxError": "interp_assert.errors", "InterpAssertError": "interp_assert.errors",
    "QuantityError": "interp_assert.errors", "SpecError": "interp_assert.errors",
    "UnknownNameError": "interp_assert.errors", "UserCodeError": "interp_assert.errors",
    "Axis": "interp_assert.labels", "Labelled": "interp_assert.labels",
    "QuantityKind": "interp_assert.evaluate.quantities",
    "register_function": "interp_assert.evaluate.quantities",
    "register_quantity": "interp_assert.evaluate.quantities",
    "format_result": "interp_assert.output.text",
    "MemoryLimitError": "interp_assert.resources", "set_memory_limit": "interp_assert.resources",
    "load_claim_file": "interp_assert.run.runner", "Runner": "interp_assert.run.runner",
    "RunOptions": "interp_assert.run.runner",
    "Outcome": "interp_assert.claims.outcome",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'interp_assert' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])


if TYPE_CHECKING:  # for type checkers and IDEs: the same names, imported eagerly
    from interp_assert.claims.base import Claim, Context, register_claim
    from interp_assert.claims.outcome import Outcome
    from interp_assert.drivers.api import Subject, check, load, subject, validate
    from interp_assert.errors import (
        CheckpointError,
        ClaimFailed,
        ClaimSyntaxError,
        InterpAssertError,
        QuantityError,
        SpecError,
        UnknownNameError,
        UserCodeError,
    )
    from interp_assert.evaluate.quantities import QuantityKind, register_function, register_quantity
    from interp_assert.judge.verdict import ClaimResult, Verdict
    from interp_assert.labels import Axis, Labelled
    from interp_assert.output.text import format_result
    from interp_assert.resources import MemoryLimitError, set_memory_limit
    from interp_assert.run.runner import Runner, RunOptions, load_claim_file
