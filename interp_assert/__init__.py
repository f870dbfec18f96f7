"""interp-assert: interpretability claims about trained networks, checked like tests.

The public facade. Heavy libraries (torch, matplotlib, pandas) are imported only when a claim
is evaluated, never by importing this package.
"""

from .api import Subject, check, load, subject, validate
from .claims.base import Claim, register_claim
from .engine import ClaimResult
from .errors import (
    CheckpointError,
    ClaimFailed,
    ClaimSyntaxError,
    InterpAssertError,
    QuantityError,
    SpecError,
    UnknownNameError,
    UserCodeError,
)
from .labels import Axis, Labelled
from .quantities import QuantityKind, register_function, register_quantity
from .report import format_result
from .resources import MemoryLimitError, set_memory_limit
from .spec import load_claim_file
from .verdict import Outcome

__version__ = "0.1.0"

__all__ = [
    "Axis", "CheckpointError", "Claim", "ClaimFailed", "ClaimResult", "ClaimSyntaxError",
    "InterpAssertError", "Labelled", "MemoryLimitError", "Outcome", "QuantityError",
    "QuantityKind", "SpecError", "Subject", "UnknownNameError", "UserCodeError", "check",
    "format_result", "load", "load_claim_file", "register_claim", "register_function",
    "register_quantity", "set_memory_limit", "subject", "validate",
]
