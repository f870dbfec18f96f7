"""``for all a, b: pkg.module:check(a, b) [exhaustively]``: a property over all inputs.

The check callable receives the model and the inputs, and returns a bool, or ``(ok, details)``
where ``details`` maps labels to per-position values (plotted for the counterexample), or
raises ``AssertionError``. Hypothesis searches and shrinks (derandomized, no database);
``exhaustively`` enumerates finite domains and reports the failing fraction. A check may offer
``check.batch(model, *lists) -> sequence of bool`` to be called on chunks when exhaustive.

Strategies come from the sentence (``for all a in integers(0, 99): ...``) or from the claim's
``strategies:`` key; they are parsed by :func:`parse_strategy` (never ``eval``).
"""

from __future__ import annotations

import ast as pyast
import itertools
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from interp_assert.claims.base import Claim, Context, register_claim
from interp_assert.claims.outcome import Outcome
from interp_assert.errors import QuantityError, SpecError

if TYPE_CHECKING:
    from matplotlib.axes import Axes

DEFAULT_MAX_EXAMPLES = 200
MAX_EXHAUSTIVE = 1_000_000
BATCH = 4096
_STRATEGIES = ("integers", "floats", "booleans", "sampled_from", "lists")


# -- strategy text ---------------------------------------------------------------------------
@dataclass(frozen=True)
class StrategySpec:
    """A parsed strategy call: name, positional and keyword arguments (plain values)."""

    name: str
    args: tuple[Any, ...] = ()
    kwargs: tuple[tuple[str, Any], ...] = ()

    def __str__(self) -> str:
        words = [repr(a) if not isinstance(a, StrategySpec) else str(a) for a in self.args]
        words += [f"{k}={v!r}" for k, v in self.kwargs]
        return f"{self.name}({', '.join(words)})"


def parse_strategy(text: str) -> StrategySpec:
    """Parse ``integers(0, 9)``, ``floats(-1, 1)``, ``booleans()``, ``sampled_from([1, 2])``
    or ``lists(integers(0, 9), min_size=1, max_size=3)`` with Python's parser, without eval."""
    try:
        tree = pyast.parse(str(text).strip(), mode="eval").body
    except SyntaxError:
        raise SpecError(f"cannot read strategy {text!r}",
                        hint="write e.g. integers(0, 99) or sampled_from([1, 2, 3])") from None
    return _strategy_node(tree, str(text))


def _strategy_node(node: pyast.AST, text: str) -> StrategySpec:
    if not (isinstance(node, pyast.Call) and isinstance(node.func, pyast.Name)
            and node.func.id in _STRATEGIES):
        raise SpecError(f"strategy {text!r}: expected one of "
                        + ", ".join(f"{s}(...)" for s in _STRATEGIES))
    args = tuple(_literal(a, text) for a in node.args)
    kwargs = tuple((str(k.arg), _literal(k.value, text)) for k in node.keywords)
    return StrategySpec(node.func.id, args, kwargs)


def _literal(node: pyast.AST, text: str) -> Any:
    if isinstance(node, pyast.Call):
        return _strategy_node(node, text)
    try:
        return pyast.literal_eval(node)
    except ValueError:
        raise SpecError(f"strategy {text!r}: arguments must be numbers, booleans, strings, "
                        "lists or strategies") from None


def build_strategy(spec: StrategySpec) -> Any:
    """The hypothesis strategy of a parsed spec."""
    from hypothesis import strategies as st

    args = [build_strategy(a) if isinstance(a, StrategySpec) else a for a in spec.args]
    kwargs = dict(spec.kwargs)
    if spec.name == "floats":
        kwargs.setdefault("allow_nan", False)
    try:
        return getattr(st, spec.name)(*args, **kwargs)
    except Exception as exc:
        raise SpecError(f"strategy {spec}: {exc}") from None


def domain(spec: StrategySpec) -> list[Any]:
    """Every value of a finite strategy (integers with bounds, booleans, sampled_from)."""
    kwargs = dict(spec.kwargs)
    if spec.name == "booleans":
        return [False, True]
    if spec.name == "sampled_from":
        values = spec.args[0] if spec.args else kwargs.get("elements")
        return list(values or [])
    if spec.name == "integers":
        low = spec.args[0] if spec.args else kwargs.get("min_value")
        high = spec.args[1] if len(spec.args) > 1 else kwargs.get("max_value")
        if isinstance(low, int) and isinstance(high, int):
            if high - low + 1 > MAX_EXHAUSTIVE:
                raise SpecError(f"{spec} has {high - low + 1:,} values, too many to enumerate")
            return list(range(low, high + 1))
    raise SpecError(f"{spec} is not a finite domain that can be enumerated",
                    hint="use bounded integers(lo, hi), booleans() or sampled_from([...]); "
                         "or drop 'exhaustively'")


# -- the claim -------------------------------------------------------------------------------
@register_claim
@dataclass
class ForAll(Claim):
    """A check callable holds for every input its strategies generate."""

    kind = "forall"
    grammar = r"""forall: "for" "all" forall_vars ":" FORALL_TARGET forall_args [FORALL_EXHAUSTIVE]
forall_vars: forall_var ("," forall_var)*
forall_var: NAME ["in" FORALL_STRATEGY]
forall_args: "(" [NAME ("," NAME)*] ")"
FORALL_TARGET.2: /[A-Za-z_][\w.]*:[A-Za-z_]\w*/
FORALL_STRATEGY.2: /[a-z_]+\((?:[^()]|\((?:[^()]|\([^()]*\))*\))*\)/
FORALL_EXHAUSTIVE: /exhaustively\b/"""

    variables: tuple[str, ...]
    target: str
    arguments: tuple[str, ...]
    inline: tuple[tuple[str, str], ...] = ()
    exhaustive: bool = False

    @classmethod
    def build(cls, children: list[Any]) -> ForAll:
        names, target, args, exhaustive = children
        variables: list[str] = []
        inline: list[tuple[str, str]] = []
        for child in names.children:
            name, strategy = child.children
            variables.append(str(name))
            if strategy is not None:
                inline.append((str(name), str(strategy)))
        arguments = tuple(str(a) for a in args.children if a is not None)
        unknown = [a for a in arguments if a not in variables]
        if unknown:
            raise SpecError(f"'{unknown[0]}' is not a variable of 'for all'",
                            hint="name every argument after 'for all'")
        return cls(tuple(variables), str(target), arguments or tuple(variables), tuple(inline),
                   exhaustive is not None)

    def __str__(self) -> str:
        strategies = dict(self.inline)
        names = ", ".join(f"{v} in {strategies[v]}" if v in strategies else v
                          for v in self.variables)
        tail = " exhaustively" if self.exhaustive else ""
        return f"for all {names}: {self.target}({', '.join(self.arguments)}){tail}"

    def expressions(self) -> Iterator[Any]:
        return iter(())

    # -- evaluation --------------------------------------------------------------------------
    def _options(self, ctx: Context) -> dict[str, Any]:
        """The claim file's options for this claim (``strategies``, ``max_examples``, ...)."""
        claim_file = getattr(ctx, "file", None)
        for entry in getattr(claim_file, "claims", []):
            parsed = entry.parsed
            if parsed is not None and (parsed.claim is self or parsed.text == self.sentence):
                return dict(entry.options)
        return {}

    def strategies(self, options: dict[str, Any]) -> dict[str, StrategySpec]:
        raw = options.get("strategies") or {}
        if not isinstance(raw, dict):
            raise SpecError("'strategies' must map each variable to a strategy")
        texts = {str(k): str(v) for k, v in raw.items()}
        texts.update(dict(self.inline))
        missing = [v for v in self.variables if v not in texts]
        if missing:
            raise SpecError(f"no strategy for '{missing[0]}'",
                            hint=f"add 'strategies: {{{missing[0]}: integers(0, 99)}}' to the "
                                 f"claim, or write 'for all {missing[0]} in integers(0, 99)'")
        return {v: parse_strategy(texts[v]) for v in self.variables}

    def evaluate(self, ctx: Context) -> Outcome:
        from interp_assert.usercode import resolve_callable

        options = self._options(ctx)
        specs = self.strategies(options)
        check = resolve_callable(self.target, getattr(ctx, "search_path", ()), "check")
        model = ctx.subject.model  # type: ignore[attr-defined]
        exhaustive = self.exhaustive or bool(options.get("exhaustive", False))

        def run(values: dict[str, Any]) -> tuple[bool, str, dict[str, Any]]:
            return _call(check, model, [values[a] for a in self.arguments])

        if exhaustive:
            return self._exhaustive(check, model, specs, run)
        return self._search(specs, run, int(options.get("max_examples", DEFAULT_MAX_EXAMPLES)))

    def _search(self, specs: dict[str, StrategySpec],
                run: Callable[[dict[str, Any]], tuple[bool, str, dict[str, Any]]],
                max_examples: int) -> Outcome:
        from hypothesis import HealthCheck, Phase, find, settings
        from hypothesis import strategies as st
        from hypothesis.errors import NoSuchExample

        strategy = st.fixed_dictionaries({v: build_strategy(s) for v, s in specs.items()})
        config = settings(derandomize=True, database=None, max_examples=max_examples,
                          deadline=None, suppress_health_check=list(HealthCheck),
                          phases=[Phase.explicit, Phase.generate, Phase.shrink])
        expected = f"the check holds for {max_examples} searched inputs"
        try:
            example = find(strategy, lambda values: not run(values)[0], settings=config)
        except NoSuchExample:
            return Outcome(True, f"no counterexample in {max_examples} examples", expected,
                           value=1.0, context=_context(specs))
        return self._failure(example, run, expected, specs, None)

    def _exhaustive(self, check: Callable, model: Any, specs: dict[str, StrategySpec],
                    run: Callable[[dict[str, Any]], tuple[bool, str, dict[str, Any]]]) -> Outcome:
        domains = {v: domain(specs[v]) for v in self.variables}
        total = 1
        for values in domains.values():
            total *= len(values)
        if total > MAX_EXHAUSTIVE:
            raise SpecError(f"{total:,} combinations are too many to enumerate "
                            f"(at most {MAX_EXHAUSTIVE:,})")
        batch = getattr(check, "batch", None)
        failing: list[dict[str, Any]] = []
        combos = itertools.product(*(domains[v] for v in self.variables))
        while chunk := list(itertools.islice(combos, BATCH)):
            rows = [dict(zip(self.variables, combo, strict=True)) for combo in chunk]
            if batch is not None:
                columns = [[row[a] for row in rows] for a in self.arguments]
                oks = [bool(ok) for ok in batch(model, *columns)]
            else:
                oks = [run(row)[0] for row in rows]
            failing.extend(row for row, ok in zip(rows, oks, strict=True) if not ok)
        expected = f"the check holds for all {total:,} inputs"
        if not failing:
            return Outcome(True, f"holds for all {total:,} inputs", expected, value=1.0,
                           context=_context(specs))
        fraction = len(failing) / total
        return self._failure(failing[0], run, expected, specs,
                             (len(failing), total, fraction))

    def _failure(self, example: dict[str, Any],
                 run: Callable[[dict[str, Any]], tuple[bool, str, dict[str, Any]]],
                 expected: str, specs: dict[str, StrategySpec],
                 counts: tuple[int, int, float] | None) -> Outcome:
        _, message, details = run(example)
        shown = ", ".join(f"{k}={v!r}" for k, v in example.items())
        if counts is None:
            measured = f"fails for {shown} (minimal counterexample)"
            value = 0.0
        else:
            failed, total, fraction = counts
            measured = f"fails for {failed:,} of {total:,} inputs ({fraction:.2%}); first: {shown}"
            value = 1.0 - fraction
        notes = [message] if message else []
        return Outcome(False, measured, expected, value=value, notes=notes,
                       plot_data={"example": shown, "details": details},
                       context={**_context(specs), "counterexample": shown})

    def plot(self, outcome: Outcome, ax: Axes) -> None:
        details = outcome.plot_data.get("details") or {}
        series = {k: v for k, v in details.items() if k != "positions"
                  and isinstance(v, Sequence) and not isinstance(v, str)}
        if not series:
            super().plot(outcome, ax)
            return
        positions = details.get("positions")
        for index, (label, values) in enumerate(series.items()):
            xs = list(range(len(values)))
            ax.plot(xs, [float(v) for v in values], marker="o", linestyle="-" if index else "--",
                    label=str(label))
            if positions is not None and len(positions) == len(values):
                ax.set_xticks(xs, [str(p) for p in positions])
        ax.set_xlabel("position")
        ax.set_title(f"counterexample {outcome.plot_data.get('example', '')}", fontsize=9)
        ax.legend(fontsize=8)


def _context(specs: dict[str, StrategySpec]) -> dict[str, Any]:
    return {"strategies": ", ".join(f"{k}: {v}" for k, v in specs.items())}


def _call(check: Callable, model: Any, args: list[Any]) -> tuple[bool, str, dict[str, Any]]:
    """Run the check: (holds, message, per-position details)."""
    try:
        result = check(model, *args)
    except AssertionError as exc:
        return False, str(exc), {}
    details: dict[str, Any] = {}
    if isinstance(result, tuple):
        if len(result) != 2 or not isinstance(result[1], dict):
            raise QuantityError("a check returns a bool or (bool, {label: values})")
        result, details = result
    return bool(result), "", details
