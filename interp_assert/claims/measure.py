"""Measuring one claim in a context: its template instances (``for i in 0..9``) evaluated and
combined, and any exception turned into an error that names the claim and its place."""

from __future__ import annotations

import traceback
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from interp_assert.claims.outcome import Outcome
from interp_assert.claims.sequential import supports_sequential
from interp_assert.errors import InterpAssertError, Location
from interp_assert.language import templates
from interp_assert.language.templates import substitute
from interp_assert.usercode import is_user_frame, user_code_error

if TYPE_CHECKING:
    from interp_assert.claims.base import Claim, Context
    from interp_assert.language.parser import ParsedClaim


@dataclass
class Measured:
    """What measuring a claim gave: the claim object used (for its plot) and its outcome, or
    the error that stopped it."""

    claim: Claim | None = None
    outcome: Outcome | None = None
    error: InterpAssertError | None = None
    #: the quantities read, in order
    used: list[str] = field(default_factory=list)
    #: the context it was measured in (for :meth:`Claim.plot_evidence`)
    context: Context | None = None


def uses_variable(parsed: ParsedClaim) -> bool:
    """Whether the sentence of a template uses its variable (``{i}``, ``{9-i}``)."""
    each = parsed.for_each
    return each is not None and templates.uses(parsed.text, each.variable)


def instances(parsed: ParsedClaim) -> Iterator[tuple[str | None, Any]]:
    """The claim, or one instance per value of its ``for`` clause, made one at a time as they
    are evaluated (a template whose variable is unused gives one instance: all are equal)."""
    if parsed.for_each is None or not uses_variable(parsed):
        yield None, parsed.claim
        return
    each = parsed.for_each
    for i in range(each.start, each.stop + 1):
        yield f"{each.variable}={i}", substitute(parsed.claim, each.variable, i)


def evaluate_parsed(parsed: ParsedClaim, ctx: Context) -> tuple[Any, Outcome]:
    """Evaluate a (possibly templated) claim; returns the claim object used for plotting."""
    results = [(tag, claim, claim.evaluate(ctx)) for tag, claim in instances(parsed)]
    for _, claim, outcome in results:
        supports_sequential(claim, outcome)
    if len(results) == 1:
        claim, outcome = results[0][1], results[0][2]
        if parsed.for_each is not None:
            outcome.notes.append(f"'{parsed.for_each}' is not used in the claim (no "
                                 f"{{{parsed.for_each.variable}}}): checked once")
        return claim, outcome
    failing = [(tag, claim, outcome) for tag, claim, outcome in results if not outcome.passed]
    tag, claim, worst = (failing or results)[0]
    rows = []
    for instance_tag, _, outcome in results:
        rows.append({"instance": instance_tag, "measured": outcome.measured,
                     "holds": outcome.passed})
    held = len(results) - len(failing)
    measured = f"{held}/{len(results)} instances hold"
    if failing:
        measured += f"; first failing {tag}: {worst.measured}"
    # the plot draws the first failing instance, and marks every instance it can
    shown = [{"tag": t, "holds": o.passed, "value": o.value, "data": o.plot_data}
             for t, _, o in results]
    combined = Outcome(not failing, measured, f"every instance: {worst.expected}",
                       value=float(held) / len(results), rows=rows, notes=worst.notes,
                       plot_data={**worst.plot_data, "instances": shown},
                       context=worst.context)
    combined.sequential = worst.sequential
    return claim, combined


def measure(parsed: ParsedClaim, ctx: Context, claim_id: str, location: Location) -> Measured:
    """Measure a claim; every exception becomes an error on this claim (one broken claim
    never breaks a run)."""
    try:
        claim, outcome = evaluate_parsed(parsed, ctx)
    except InterpAssertError as exc:
        return Measured(error=name_claim(exc, claim_id, location))
    except RecursionError:  # the parser's nesting limit keeps this away
        return Measured(error=InterpAssertError(
            f"claim '{claim_id}': the claim is nested too deeply to evaluate", location,
            hint="split it into quantities (quantities: name: expression)"))
    except Exception as exc:  # a bug or a numeric failure: still one result, never a crash
        if _raised_in_user_code(exc):  # a callable a claim kind called directly
            return Measured(error=name_claim(user_code_error(exc, "user code raised"),
                                             claim_id, location))
        return Measured(error=unexpected(exc, claim_id, location))
    return Measured(claim, outcome, context=ctx)


def _raised_in_user_code(exc: BaseException) -> bool:
    """Whether the traceback passes through the user's own code."""
    return any(is_user_frame(frame.filename) for frame in traceback.extract_tb(exc.__traceback__))


def name_claim(exc: InterpAssertError, claim_id: str, location: Location) -> InterpAssertError:
    """The error as this claim's: a copy (one error may be shared by several claims, e.g. a
    broken checkpoint's) that names the claim and its place."""
    named = exc.copy().at(location)
    if f"claim '{claim_id}'" not in named.message:
        named.message = f"claim '{claim_id}': {named.message}"
    return named


def unexpected(exc: BaseException, claim_id: str, location: Location) -> InterpAssertError:
    """An exception nobody anticipated, with its last frames."""
    frames = traceback.format_exception(type(exc), exc, exc.__traceback__)[-4:]
    return InterpAssertError(
        f"claim '{claim_id}': unexpected {type(exc).__name__}: {exc}", location,
        hint="this may be a bug in interp-assert; last frames:\n" + "".join(frames).rstrip())
