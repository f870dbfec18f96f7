"""Causal claims: a metric measured before and after ablating or patching components.

* ``ablate L1H0 (mean): exact-match drops by ≥ 30 points``
* ``ablate L1H2, L1H3 at A3, A5..A7 (resample over other, seed 1): loss rises by ≥ 1 nat``
* ``ablate L1H2 (zero): loss on repeated tokens rises by ≥ 1 nat``
* ``patch L1H2 from clean into corrupted: logit-diff recovers ≥ 80%``
* ``... while random sets of the same size drop ≤ 5 points`` (or ``while 10 random sets ...``)

Components are heads ``L{l}H{h}`` (slice of ``hook_z``), neurons ``L{l}N{i}`` (slice of
``hook_post``) or module paths (whole output). The ablation is ``zero``, ``mean`` (the default:
the mean over the reference dataset, per position) or ``resample`` (another input's activation,
seeded); ``over NAME`` picks the reference dataset (default: the metric's). ``at`` restricts it
to positions. The metric is any expression (usually a ``metric:`` quantity) evaluated on the
claim's dataset; ``METRIC on FIELD tokens`` measures a ``loss``-style metric where the boolean
dataset field is true (``on not FIELD tokens``: where it is false).

``drops by`` is before − after, ``rises by`` after − before, ``changes by`` |after − before|;
for patching, *before* is the metric on the target dataset and ``recovers`` is
(patched − target) / (source − target). Random controls ablate (or patch) seeded random sets of
as many components of the same kind (from every layer, the claimed ones excluded); each draw
must satisfy the control's comparison.

The measurement the two kinds share lives in :mod:`interp_assert.claims.causal_base`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from interp_assert.claims.base import Context, register_claim
from interp_assert.claims.causal_base import (
    SHARED_GRAMMAR,
    CausalClaim,
    control_from,
    effect_from,
    parts_of,
    positions_of,
)
from interp_assert.errors import QuantityError
from interp_assert.evaluate.forward import Intervention
from interp_assert.evaluate.interventions import ABLATIONS, Component, ablation, patching
from interp_assert.language import ast
<<<<<<< HEAD
from interp_assert.loading.data import DatasetSpec, load_dataset

if TYPE_CHECKING:
    from matplotlib.axes import Axes

    from interp_assert.evaluate.evaluation import Evaluation

_SHARED = r"""
_causal_tail: causal_effect [causal_control]
causal_parts: label ("," label)*
causal_at: "at" member ("," member)*
causal_effect: causal_metric CAUSAL_CHANGE "by" comparison
    | causal_metric CAUSAL_RECOVERS comparison
causal_metric: expr ["on" [CAUSAL_NOT] NAME "tokens"]
causal_control: "while" [INT] "random" "sets" _causal_same CAUSAL_VERB ["by"] comparison
_causal_same: "of" "the" "same" "size"
CAUSAL_CHANGE: /(drops|rises|changes)\b/
CAUSAL_RECOVERS: /recovers\b/
CAUSAL_NOT: /not\b/
CAUSAL_VERB: /(drop|rise|change|recover)s?\b/"""
DEFAULT_DRAWS = 5
MAX_SWEEP = 64  # the plot of a head claim sweeps every head when the model has at most this many


@dataclass(frozen=True)
class Metric:
    """The measured expression, optionally restricted to tokens where a field is (not) true."""

    expr: ast.Node
    mask: str | None = None
    negate: bool = False

    def __str__(self) -> str:
        if self.mask is None:
            return str(self.expr)
        return f"{self.expr} on {'not ' if self.negate else ''}{self.mask} tokens"

    def value(self, ev: Evaluation) -> Labelled:
        if self.mask is None:
            return ev.value(self.expr)
        return self._masked(ev).compute(ev)

    def _masked(self, ev: Evaluation) -> Any:
        from interp_assert.evaluate.quantities.behaviour import MetricQuantity

        if not isinstance(self.expr, ast.Ref):
            raise QuantityError(f"'{self}': 'on ... tokens' needs a metric name, not an "
                                "expression", hint="write 'loss on repeated tokens'")
        name = self.expr.name
        definition = ev.file.quantities.get(name)
        if definition is not None and isinstance(definition.kind, MetricQuantity):
            config = {k: v for k, v in definition.kind.config.items() if k != "answer"}
        elif definition is None and name == "loss":
            config = {"metric": "loss"}
        else:
            raise QuantityError(f"'{name}' is not a metric quantity; 'on ... tokens' restricts "
                                "a loss metric to the tokens where a dataset field is true",
                                hint="define e.g. 'loss: {metric: loss, answer: ...}'")
        config["mask"] = f"not {self.mask}" if self.negate else self.mask
        return MetricQuantity(str(self), config, None)


@dataclass(frozen=True)
class Effect:
    """``METRIC drops by ≥ 30 points`` / ``rises by`` / ``changes by`` / ``recovers ≥ 80%``."""

    metric: Metric
    change: str  # drops, rises, changes, recovers
    comparison: ast.Comparison

    def __str__(self) -> str:
        verb = "recovers" if self.change == "recovers" else f"{self.change} by"
        return f"{self.metric} {verb} {self.comparison}"


@dataclass(frozen=True)
class Control:
    """``while [N] random sets of the same size drop ≤ 5 points``."""

    change: str  # drop, rise, change, recover
    comparison: ast.Comparison
    draws: int | None = None

    def __str__(self) -> str:
        count = f"{self.draws} " if self.draws is not None else ""
        verb = {"drop": "drop by", "rise": "rise by", "change": "change by"}.get(self.change,
                                                                               self.change)
        return f"while {count}random sets of the same size {verb} {self.comparison}"


def effect_of(change: str, before: float, after: float, source: float | None = None) -> float:
    """The effect of an intervention on a metric (``change`` singular or plural)."""
    verb = change.rstrip("s") if change != "changes" else "change"
    if verb == "drop":
        return before - after
    if verb == "rise":
        return after - before
    if verb == "change":
        return abs(after - before)
    if verb == "recover":
        if source is None:
            raise QuantityError("'recovers' compares a patched run with its source and target; "
                                "use it with 'patch ... from SOURCE into TARGET'")
        with np.errstate(divide="ignore", invalid="ignore"):
            return float((after - before) / (source - before)) if source != before \
                else float("nan")
    raise QuantityError(f"unknown change '{change}'")



def _parts(tree: Tree) -> tuple[str, ...]:
    return tuple(ast.label_text(item) for item in tree.children)


def _positions(tree: Tree | None) -> tuple[str, ...] | None:
    return None if tree is None else tuple(ast.label_text(item) for item in tree.children)


def _effect(tree: Tree) -> Effect:
    metric_tree, change, comparison = tree.children
    expr, negate, mask = metric_tree.children
    metric = Metric(expr, str(mask) if mask is not None else None, negate is not None)
    return Effect(metric, str(change), comparison)


def _control(tree: Tree | None) -> Control | None:
    if tree is None:
        return None
    draws, verb, comparison = tree.children
    word = str(verb).lower()
    word = word[:-1] if word.endswith("s") else word
    return Control(word, comparison, int(draws) if draws is not None else None)


@dataclass
class Measurement:
    """Metric values of one intervention."""

    before: float
    after: float
    effect: float
    source: float | None = None


@dataclass
class CausalClaim(Claim):
    """Shared measurement of ablation and patching claims."""

    parts: tuple[str, ...] = ()
    effect: Effect | None = None
    positions: tuple[str, ...] | None = None
    control: Control | None = None
    seed: int | None = field(default=None)

    # -- pieces for subclasses -----------------------------------------------------------------
    def intervene(self, ev: Evaluation, parts: list[Component],
                  positions: tuple[int, ...] | None) -> tuple[Intervention, ...]:
        raise NotImplementedError

    def datasets(self, ev: Evaluation) -> tuple[DatasetSpec, DatasetSpec | None]:
        """The dataset the metric is measured on with the intervention, and the source
        dataset of patching (None for ablation)."""
        raise NotImplementedError

    def describe(self, ev: Evaluation) -> str:
        raise NotImplementedError

    # -- measurement --------------------------------------------------------------------------
    def expressions(self) -> Any:
        assert self.effect is not None
        yield self.effect.metric.expr
        for comparison in (self.effect.comparison,
                           self.control.comparison if self.control else None):
            if comparison is not None:
                yield comparison.value
                if comparison.upper is not None:
                    yield comparison.upper

    def _layout(self, ev: Evaluation) -> Layout:
        return Layout.parse(ev.file.raw.get("layout"))

    def _components(self, ev: Evaluation, labels: tuple[str, ...]) -> list[Component]:
        layout = self._layout(ev)
        return [component(label, layout) for label in labels]

    def _position_indices(self, dataset: DatasetSpec) -> tuple[int, ...] | None:
        if self.positions is None:
            return None
        loaded = load_dataset(dataset)
        labels = expand_labels(list(self.positions))
        return tuple(loaded.position_index(label) for label in labels)

    def _metric(self, ev: Evaluation, dataset: DatasetSpec,
                interventions: tuple[Intervention, ...] = ()) -> float:
        assert self.effect is not None
        sibling = copy.copy(ev)
        sibling.dataset = dataset.name
        sibling.interventions = interventions
        return self.effect.metric.value(sibling).scalar()

    def measure(self, ev: Evaluation, labels: tuple[str, ...], change: str) -> Measurement:
        """Before, after and the effect of intervening on ``labels``."""
        target, source = self.datasets(ev)
        positions = self._position_indices(target)
        interventions = self.intervene(ev, self._components(ev, labels), positions)
        before = self._metric(ev, target)
        source_value = self._metric(ev, source) if source is not None else None
        after = self._metric(ev, target, interventions)
        return Measurement(before, after, effect_of(change, before, after, source_value),
                           source_value)

    def evaluate(self, ctx: Context) -> Outcome:
        ev = cast("Evaluation", ctx)
        assert self.effect is not None
        main = self.measure(ev, self.parts, self.effect.change)
        bound, upper = evaluate_bounds(ctx, self.effect.comparison)
        holds = compare(main.effect, self.effect.comparison, bound, upper)
        metric = str(self.effect.metric)
        what = self.describe(ev)
        change = "recovery" if self.effect.change == "recovers" else self.effect.change[:-1]
        measured = (f"{metric} {fmt(main.before)} → {fmt(main.after)} with {what}; "
                    f"{change} {fmt(main.effect)}")
        if main.source is not None:
            measured += f" (source {fmt(main.source)})"
        expected = f"{change} {expected_text(self.effect.comparison, bound, upper)}"
        rows: list[dict[str, Any]] = [{"intervened": ", ".join(self.parts), "before": main.before,
                                       "after": main.after, "effect": main.effect,
                                       "holds": holds}]
        controls: list[float] = []
        passed = holds
        if self.control is not None:
            control_ok, controls, text = self._controls(ev, rows)
            passed = passed and control_ok
            measured += f"; {text}"
            c_bound, c_upper = evaluate_bounds(ctx, self.control.comparison)
            expected += (f", random sets {self.control.change} "
                         f"{expected_text(self.control.comparison, c_bound, c_upper)}")
        target, source = self.datasets(ev)
        context = {"intervention": what, "metric": metric,
                   "dataset": f"{load_dataset(target).n} samples of {target.describe()}"}
        if source is not None:
            context["source"] = f"{load_dataset(source).n} samples of {source.describe()}"
        plot_data: dict[str, Any] = {"effect": main.effect, "controls": controls,
                                     "bound": bound, "upper": upper, "change": change}
        if self.control is not None:
            plot_data["control_bound"] = evaluate_bounds(ctx, self.control.comparison)
        if self.control is None and all(parse_head(label) for label in self.parts) and \
                self._sweepable(ev):
            plot_data["sweep"] = lambda: self._sweep(ev)
        return Outcome(passed, measured, expected, value=main.effect, rows=rows,
                       context=context, plot_data=plot_data)

    def _controls(self, ev: Evaluation, rows: list[dict[str, Any]]
                  ) -> tuple[bool, list[float], str]:
        assert self.control is not None
        kinds = {component(label).kind for label in self.parts}
        if len(kinds) != 1 or kinds == {"module"}:
            raise QuantityError("random controls need the claimed components to be all heads "
                                "or all neurons")
        pool = component_pool(ev, kinds.pop())
        draws = self.control.draws or DEFAULT_DRAWS
        sets = random_sets(pool, self.parts, len(self.parts), draws, self.seed or 0)
        if not sets:
            raise QuantityError("no other components to draw random controls from")
        bound, upper = evaluate_bounds(ev, self.control.comparison)
        effects = []
        ok = True
        for labels in sets:
            result = self.measure(ev, labels, self.control.change)
            holds = compare(result.effect, self.control.comparison, bound, upper)
            ok = ok and holds
            effects.append(result.effect)
            rows.append({"intervened": ", ".join(labels) + " (control)", "before": result.before,
                         "after": result.after, "effect": result.effect, "holds": holds})
        values = np.asarray(effects)
        text = (f"{len(sets)} random sets of {len(self.parts)}: {self.control.change} mean "
                f"{fmt(float(values.mean()))}, sd {fmt(float(values.std()))}, range "
                f"[{fmt(float(values.min()))}, {fmt(float(values.max()))}]")
        return ok, effects, text

    def _sweepable(self, ev: Evaluation) -> bool:
        try:
            return len(component_pool(ev, "head")) <= MAX_SWEEP
        except InterpAssertError:
            return False

    def _sweep(self, ev: Evaluation) -> tuple[np.ndarray, list[str], list[str]]:
        """The effect of intervening on each head alone: [layer, head]."""
        assert self.effect is not None
        pool = component_pool(ev, "head")
        heads = [parse_head(label) for label in pool]
        layers = sorted({h[0] for h in heads if h is not None})
        width = 1 + max(h[1] for h in heads if h is not None)
        grid = np.full((len(layers), width), np.nan)
        for label, head in zip(pool, heads):
            if head is None:
                continue
            try:
                grid[layers.index(head[0]), head[1]] = self.measure(
                    ev, (label,), self.effect.change).effect
            except InterpAssertError:
                continue
        return grid, [f"L{layer}" for layer in layers], [f"H{h}" for h in range(width)]

    def plot(self, outcome: Outcome, ax: Axes) -> None:
        data = outcome.plot_data
        if "sweep" in data:
            from interp_assert.claims.plots import heatmap

            grid, rows, cols = data["sweep"]()
            cells = [(rows.index(f"L{h[0]}"), h[1]) for h in
                     (parse_head(label) for label in self.parts) if h is not None]
            heatmap(ax, grid, rows, cols, outline=cells, annotate=True, outline_color="red",
                    cmap="RdBu_r", vmin=-np.nanmax(np.abs(grid)), vmax=np.nanmax(np.abs(grid)))
            ax.set_title(f"{data['change']} of {self.effect.metric if self.effect else ''} per "
                         "head (claimed outlined)", fontsize=9)
            return
        controls = np.asarray(data.get("controls") or [])
        if controls.size:
            jitter = np.random.default_rng(0).uniform(-0.15, 0.15, size=controls.size)
            ax.scatter(np.zeros(controls.size) + jitter, controls, color="C0",
                       label="random sets")
        ax.scatter([0], [data["effect"]], color="C3", s=80, marker="*", zorder=3,
                   label=", ".join(self.parts))
        ax.axhline(data["bound"], color="C3", linestyle="--", label="claimed bound")
        if data.get("control_bound"):
            ax.axhline(data["control_bound"][0], color="C0", linestyle=":",
                       label="control bound")
        ax.set_xticks([])
        ax.set_xlim(-1, 1)
        ax.set_ylabel(data["change"])
        ax.legend(fontsize=8)
        ax.grid(axis="y", alpha=0.3)
=======
from interp_assert.loading.data import DatasetSpec
>>>>>>> split-circ


@register_claim
@dataclass
class Ablate(CausalClaim):
    """``ablate L1H0 (mean): exact-match drops by ≥ 30 points``."""

    kind = "ablate"
    grammar = r"""ablate: "ablate" causal_parts [causal_at] [ablate_how] ":" _causal_tail
ablate_how: "(" ABLATION ["over" NAME] ["," "seed" INT] ")"
ABLATION: /(zero|mean|resample)\b/""" + SHARED_GRAMMAR

    how: str = "mean"
    over: str | None = None

    @classmethod
    def build(cls, children: list[Any]) -> Ablate:
        parts, at, how_tree, effect, control = children
        how, over, seed = ("mean", None, None) if how_tree is None else how_tree.children
        made = cls(parts=parts_of(parts), effect=effect_from(effect), positions=positions_of(at),
                   control=control_from(control), seed=int(seed) if seed is not None else None,
                   how=str(how), over=str(over) if over is not None else None)
        if made.effect is not None and made.effect.change == "recovers":
            raise QuantityError("'recovers' belongs to patching ('patch X from A into B: ...')")
        return made

    def __str__(self) -> str:
        at = f" at {', '.join(self.positions)}" if self.positions else ""
        options = self.how + (f" over {self.over}" if self.over else "")
        options += f", seed {self.seed}" if self.seed is not None else ""
        control = f" {self.control}" if self.control else ""
        return f"ablate {', '.join(self.parts)}{at} ({options}): {self.effect}{control}"

    def datasets(self, ctx: Context) -> tuple[DatasetSpec, DatasetSpec | None]:
        return self._metric_dataset(ctx), None

    def _metric_dataset(self, ctx: Context) -> DatasetSpec:
        """The claim's dataset, or the one a single metric quantity is pinned to."""
        assert self.effect is not None
        expr = self.effect.metric.expr
        definition = ctx.definitions.get(expr.name) if isinstance(expr, ast.Ref) else None
        pinned = getattr(definition.kind, "config", {}).get("data") if definition else None
        return ctx.dataset_spec(str(pinned) if pinned else None)

    def intervene(self, ctx: Context, parts: list[Component],
                  positions: tuple[int, ...] | None) -> tuple[Intervention, ...]:
        if self.how not in ABLATIONS:
            raise QuantityError(f"unknown ablation '{self.how}'")
        target = self._metric_dataset(ctx)
        reference = ctx.dataset_spec(self.over) if self.over else target
        return ablation(ctx, parts, self.how, target, reference, positions, self.seed or 0)

    def describe(self, ctx: Context) -> str:
        where = f"at {', '.join(self.positions)}" if self.positions else "at all positions"
        how = {"zero": "zero-ablated", "mean": "mean-ablated", "resample": "resample-ablated"}
        reference = ""
        if self.how != "zero":
            spec = ctx.dataset_spec(self.over) if self.over else self._metric_dataset(ctx)
            reference = f" (reference {spec.name}"
            reference += f", seed {self.seed or 0})" if self.how == "resample" else ")"
        return f"{', '.join(self.parts)} {how[self.how]} {where}{reference}"


@register_claim
@dataclass
class Patch(CausalClaim):
    """``patch L1H2 from clean into corrupted: logit-diff recovers ≥ 80%``."""

    kind = "patch"
    grammar = r"""
patch: "patch" causal_parts [causal_at] "from" NAME "into" NAME ":" _causal_tail"""

    source: str = ""
    target: str = ""

    @classmethod
    def build(cls, children: list[Any]) -> Patch:
        parts, at, source, target, effect, control = children
        return cls(parts=parts_of(parts), effect=effect_from(effect), positions=positions_of(at),
                   control=control_from(control), source=str(source), target=str(target))

    def __str__(self) -> str:
        at = f" at {', '.join(self.positions)}" if self.positions else ""
        control = f" {self.control}" if self.control else ""
        return (f"patch {', '.join(self.parts)}{at} from {self.source} into {self.target}: "
                f"{self.effect}{control}")

    def datasets(self, ctx: Context) -> tuple[DatasetSpec, DatasetSpec | None]:
        return ctx.dataset_spec(self.target), ctx.dataset_spec(self.source)

    def intervene(self, ctx: Context, parts: list[Component],
                  positions: tuple[int, ...] | None) -> tuple[Intervention, ...]:
        self._check_metric(ctx)
        return patching(ctx, parts, ctx.dataset_spec(self.source), ctx.dataset_spec(self.target),
                        positions)

    def _check_metric(self, ctx: Context) -> None:
        assert self.effect is not None
        expr = self.effect.metric.expr
        if isinstance(expr, ast.Ref) and expr.name in ctx.definitions:
            config = getattr(ctx.definitions[expr.name].kind, "config", {})
            if "data" in config:
                raise QuantityError(f"metric '{expr.name}' is pinned to dataset "
                                    f"'{config['data']}', but patching measures it on both "
                                    f"'{self.source}' and '{self.target}'",
                                    hint="remove 'data:' from the metric quantity")

    def describe(self, ctx: Context) -> str:
        where = f"at {', '.join(self.positions)}" if self.positions else "at all positions"
        return f"{', '.join(self.parts)} patched {where} from {self.source} into {self.target}"
