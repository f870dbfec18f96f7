"""Circuit hypothesis tests on a circuit declared under ``circuits:``:

* ``circuit induction is faithful: keeps ≥ 80% of advantage``
* ``circuit induction is complete: removing it loses ≥ 90% of advantage``
* ``circuit induction is minimal: each member matters by ≥ 5% of advantage``
* ``... and beats 95% of 20 random circuits`` (faithfulness and completeness)
* options in parentheses after the property: ``(ratio)``, ``(over NAME)``, ``(seed 3)``

With M(S) the metric when every head (neuron) of the circuit's kinds outside S is
mean-ablated, M_full = M(everything) and b = M(nothing) (every such component mean-ablated; b = 0
with ``ratio``, the IOI paper's M_circuit / M_full), the scores are
faithfulness (M(C) − b) / (M_full − b), completeness (M_full − M(all but C)) / (M_full − b) and,
per member v, (M(C) − M(C ∖ v)) / (M_full − b). Exact definitions and pass counts:
docs/definitions.md, "Circuit hypothesis tests".
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from interp_assert.claims import causal  # noqa: F401  (defines causal_metric, used below)
from interp_assert.claims.base import Claim, Context, register_claim
from interp_assert.claims.causal_base import MeasuredMetric
from interp_assert.claims.circuit_confidence import judge_members, judge_score, score_metas
from interp_assert.claims.circuit_edge_test import circuit_edge_universe, edge_ablation
from interp_assert.claims.compare import evaluate_bounds
from interp_assert.claims.outcome import Outcome, compare, expected_text, fmt
from interp_assert.errors import InterpAssertError, QuantityError, did_you_mean
from interp_assert.evaluate.circuit_ablation import (
    beaten,
    fraction,
    mean_ablation,
    random_circuits,
)
from interp_assert.evaluate.circuit_layout import Layout
from interp_assert.evaluate.forward import announce
from interp_assert.evaluate.interventions import component_pool
from interp_assert.language import ast
from interp_assert.language.ast import referenced_names
from interp_assert.loading.circuits import Circuit, lookup
from interp_assert.loading.data import DatasetSpec, load_dataset

if TYPE_CHECKING:
    from matplotlib.axes import Axes

VERBS = {"faithful": "keeps", "complete": "removing it loses",
         "minimal": "each member matters by"}
SCORES = {"faithful": "faithfulness", "complete": "completeness", "minimal": "minimality"}
DEFAULT_DRAWS = 20
MAX_DRAWS = 1000


@register_claim
@dataclass
class CircuitTest(Claim):
    """``circuit NAME is faithful|complete|minimal [(options)]: VERB ≥ x% of METRIC
    [and beats y% of N random circuits]``."""

    kind = "circuit_test"
    grammar = r"""
circuit_test: "circuit" NAME "is" CIRCUIT_PROP [circuit_opts] ":" _circuit_body
_circuit_body: CIRCUIT_VERB comparison "of" causal_metric [circuit_random] [confidence]
circuit_opts: "(" circuit_opt ("," circuit_opt)* ")"
circuit_opt: CIRCUIT_RATIO | "over" NAME -> circuit_over | "seed" INT -> circuit_seed
circuit_random: "and" "beats" expr "of" [INT] "random" "circuits"
CIRCUIT_PROP: /(faithful|complete|minimal)\b/
CIRCUIT_RATIO: /ratio\b/
CIRCUIT_VERB: /keeps\b|removing\s+it\s+loses\b|each\s+member\s+matters\s+by\b/"""

    circuit: str = ""
    prop: str = "faithful"
    comparison: ast.Comparison | None = None
    metric: MeasuredMetric | None = None
    ratio: bool = False
    over: str | None = None
    seed: int = 0
    beats: ast.Node | None = None
    draws: int | None = None

    @classmethod
    def build(cls, children: list[Any]) -> CircuitTest:
        name, prop, opts, verb, comparison, metric_tree, random, confidence = children
        if confidence is not None and confidence[1] and str(prop) != "minimal":
            comparison = replace(comparison, confidence=confidence[0], sequential=True)
        elif confidence is not None:  # '... of advantage with 95% confidence'
            comparison = replace(comparison, confidence=ast.confidence_level(confidence))
        elif comparison.sequential:
            ast.confidence_level((comparison.confidence, True))  # refused: not sequential
        made = cls(circuit=str(name), prop=str(prop), comparison=comparison)
        expr, negate, mask = metric_tree.children
        made.metric = MeasuredMetric(expr, str(mask) if mask is not None else None,
                                     negate is not None)
        for opt in opts.children if opts is not None else ():
            if opt.data == "circuit_over":
                made.over = str(opt.children[0])
            elif opt.data == "circuit_seed":
                made.seed = int(opt.children[0])
            else:
                made.ratio = True
        if " ".join(str(verb).split()) != VERBS[made.prop]:
            raise QuantityError(f"'{made.prop}' is stated with '{VERBS[made.prop]}', not "
                                f"'{' '.join(str(verb).split())}'",
                                hint=f"circuit {name} is {made.prop}: {VERBS[made.prop]} "
                                     f"{comparison} of ...")
        if random is not None:
            if made.prop == "minimal":
                raise QuantityError("random circuits are compared for faithfulness and "
                                    "completeness, not minimality",
                                    hint="drop 'and beats ... random circuits'")
            made.beats, draws = random.children
            made.draws = int(draws) if draws is not None else None
            if made.draws is not None and not 1 <= made.draws <= MAX_DRAWS:
                raise QuantityError(f"{made.draws} random circuits: compare with 1 to "
                                    f"{MAX_DRAWS} (each costs a forward pass)",
                                    hint="and beats 95% of 20 random circuits")
        return made

    def __str__(self) -> str:
        opts = (["ratio"] if self.ratio else []) + ([f"over {self.over}"] if self.over else [])
        opts += [f"seed {self.seed}"] if self.seed else []
        text = f"circuit {self.circuit} is {self.prop}"
        text += f" ({', '.join(opts)})" if opts else ""
        assert self.comparison is not None
        text += f": {VERBS[self.prop]} {replace(self.comparison, confidence=None)} of " \
                f"{self.metric}"
        if self.beats is not None:
            draws = f"{self.draws} " if self.draws is not None else ""
            text += f" and beats {self.beats} of {draws}random circuits"
        if self.comparison.confidence is not None:
            level = ast.Number(self.comparison.confidence, "%")
            text += f" with {level} confidence"
        return text

    def expressions(self) -> Any:
        assert self.metric is not None and self.comparison is not None
        yield self.metric.expr
        yield self.comparison.value
        if self.comparison.upper is not None:
            yield self.comparison.upper
        if self.beats is not None:
            yield self.beats

    def planned_quantities(self, definitions: Mapping[str, Any]) -> set[str]:
        return set(referenced_names(self.metric.expr)) if self.metric else set()

    def planned_sinks(self, claim_file: Any, dataset: str | None
                      ) -> list[tuple[str | None, Hashable, Callable[[], Any]]]:
        return []  # the means' captures are announced first, so the clean pass serves both

    # -- measurement --------------------------------------------------------------------------
    def _dataset(self, ctx: Context) -> DatasetSpec:
        """The claim's dataset, or the one a single metric quantity is pinned to."""
        assert self.metric is not None
        expr = self.metric.expr
        definition = ctx.definitions.get(expr.name) if isinstance(expr, ast.Ref) else None
        pinned = getattr(definition.kind, "config", {}).get("data") if definition else None
        return ctx.dataset_spec(str(pinned) if pinned else None)

    def _universe(self, ctx: Context, circuit: Circuit) -> list[str]:
        """Every head (neuron) of the circuit's kinds; unknown members are errors."""
        universe: list[str] = []
        if circuit.edges:
            return circuit_edge_universe(ctx, circuit)
        for kind in circuit.kinds:
            pool = component_pool(ctx, kind)
            members = circuit.heads if kind == "head" else circuit.neurons
            for label in members:
                if label not in pool:
                    raise QuantityError(
                        f"circuit '{circuit.name}': the model has no {kind} {label} ("
                        f"{len(pool)} {kind}s, {pool[0]}..{pool[-1]})"
                        + did_you_mean(label, pool), circuit.location,
                        hint=f"name {kind}s that exist in '{circuit.name}:'")
            universe.extend(pool)
        if not universe:
            raise QuantityError(f"circuit '{circuit.name}' declares no kind of component")
        return universe

    def evaluate(self, ctx: Context) -> Outcome:
        assert self.metric is not None and self.comparison is not None
        circuit = lookup(ctx.circuits, self.circuit)
        universe = self._universe(ctx, circuit)
        layout = Layout.parse(ctx.layout)
        target = self._dataset(ctx)
        reference = ctx.dataset_spec(self.over) if self.over else target

        edges = edge_ablation(ctx, circuit, reference, target, layout)
        samples: dict[frozenset[str], Any] = {}  # per-sample metric of each run, for intervals

        def metric(kept: tuple[str, ...] | frozenset[str]) -> float:
            """M(kept): everything of the circuit's kinds outside ``kept`` mean-ablated."""
            ablated = [label for label in universe if label not in set(kept)]
            interventions = () if not ablated else edges.interventions(tuple(kept)) if edges \
                else mean_ablation(ctx, ablated, reference, layout)
            announce_metric(ctx, self.metric.expr, target, interventions)  # type: ignore[union-attr]
            derived = ctx.derive(dataset=target.name, interventions=interventions)
            value = self.metric.value(derived)  # type: ignore[union-attr]
            samples[frozenset(kept)] = value.meta.get("samples")
            return value.scalar()

        members = circuit.members
        # the means first: their capture joins the clean pass the metric's M_full reads
        if edges is None:
            mean_ablation(ctx, universe, reference, layout)
        full = metric(tuple(universe))
        base = 0.0 if self.ratio else metric(())
        gap = full - base
        rows: list[dict[str, Any]] = [
            {"run": "full model", "ablated": 0, "metric": full, "score": None}]
        if not self.ratio:
            rows.append({"run": "everything ablated", "ablated": len(universe), "metric": base,
                         "score": None})

        def score(labels: tuple[str, ...]) -> tuple[float, float]:
            """(metric, score) of circuit ``labels`` for this claim's property."""
            if self.prop == "complete":
                value = metric(tuple(x for x in universe if x not in set(labels)))
                return value, fraction(full - value, gap)
            value = metric(labels)
            return value, fraction(value - base, gap)

        main_metric, main = score(members)
        run = "all but the circuit" if self.prop == "complete" else "circuit alone"
        ablated = len(members) if self.prop == "complete" else len(universe) - len(members)
        rows.append({"run": f"{run} ({self.circuit})", "ablated": ablated,
                     "metric": main_metric, "score": main})
        bound, upper = evaluate_bounds(ctx, self.comparison)
        plot_data: dict[str, Any] = {"bound": bound, "upper": upper, "score": SCORES[self.prop]}
        value = main
        if self.prop == "minimal":
            matters = {}
            for label in members:
                without = metric(tuple(m for m in members if m != label))
                matters[label] = fraction(main_metric - without, gap)
                rows.append({"run": f"circuit without {label}", "ablated": ablated + 1,
                             "metric": without, "score": matters[label]})
            value = min(matters.values(), key=lambda v: (not math.isnan(v), v)) \
                if matters else math.nan
            plot_data["members"] = matters
        holds = compare(value, self.comparison, bound, upper)
        what = "smallest member effect" if self.prop == "minimal" else SCORES[self.prop]
        measured = (f"{what} {fmt(value)}: {self.metric} {fmt(full)} full, "
                    f"{fmt(main_metric)} {run}")
        if not self.ratio:
            measured += f", {fmt(base)} with all {len(universe)} ablated"
        expected = f"{what} {expected_text(self.comparison, bound, upper)}"
        passed, random_ok = holds, True
        if self.beats is not None:
            random_ok, text, more = self._random(ctx, circuit, score, main, rows, plot_data,
                                                 ablated)
            passed = passed and random_ok
            measured += f"; {text}"
            expected += f", beating {more}"
        plot_data["value"] = value
        plot_data["ratio"] = self.ratio
        context = {"circuit": f"{self.circuit}: {', '.join(members) or 'no members'}",
                   "ablation": f"mean over {load_dataset(reference).n} samples of "
                               f"{reference.describe()}, per position",
                   "dataset": f"{load_dataset(target).n} samples of {target.describe()}"}
        outcome = Outcome(passed, measured, expected, value=value, rows=rows, context=context,
                          plot_data=plot_data)
        name = f"{SCORES[self.prop]} of circuit '{self.circuit}' on '{self.metric}'"
        metas = score_metas(self.prop, self.ratio, samples, universe, members)
        if self.prop == "minimal":
            return judge_members(outcome, self.comparison, metas, bound, upper, name)
        return judge_score(outcome, self.comparison, metas[""], bound, upper, name,
                           also=random_ok)

    def _random(self, ctx: Context, circuit: Circuit,
                score: Callable[[tuple[str, ...]], tuple[float, float]], main: float,
                rows: list[dict[str, Any]], plot_data: dict[str, Any], ablated: int
                ) -> tuple[bool, str, str]:
        """Score random circuits of the same size; whether the real one beats enough."""
        assert self.beats is not None
        pools = {kind: component_pool(ctx, kind) for kind in circuit.kinds if kind != "edge"}
        sizes = {"head": len(circuit.heads), "neuron": len(circuit.neurons)}
        if circuit.edges:
            pools = {"edge": circuit_edge_universe(ctx, circuit)}
            sizes = {"edge": len(circuit.edges)}
        draws = self.draws or DEFAULT_DRAWS
        sets = random_circuits({k: pools.get(k, []) for k in sizes}, sizes,
                               frozenset(circuit.members), draws, self.seed)
        if not sets:
            raise QuantityError(f"no random circuit of the size of '{circuit.name}' to compare "
                                "with", hint="a circuit of every component has no rivals")
        scores = []
        for labels in sets:
            value, result = score(labels)
            scores.append(result)
            rows.append({"run": "random: " + ", ".join(labels), "ablated": ablated,
                         "metric": value, "score": result})
        k, beat, p = beaten(main, scores)
        need = ctx.scalar(self.beats)
        if not math.isfinite(need) or not 0 <= need <= 1:
            raise QuantityError(f"'beats {self.beats}' must be a fraction in [0, 1] (a "
                                "percentage)", hint="write 'and beats 95% of 20 random circuits'")
        values = np.asarray(scores, dtype=float)
        finite = values[np.isfinite(values)]
        spread = (f"mean {fmt(float(finite.mean()))}, sd {fmt(float(finite.std()))}, range "
                  f"[{fmt(float(finite.min()))}, {fmt(float(finite.max()))}]"
                  if finite.size else "all NaN")
        text = (f"beats {len(sets) - k} of {len(sets)} random circuits ({fmt(100 * beat)}%, "
                f"p = (k+1)/(N+1) = {fmt(p)}); random {SCORES[self.prop]}: {spread}")
        plot_data.update(random=scores, beats=need, fraction=beat, p=p)
        return beat >= need, text, f"≥ {fmt(100 * need)}% of {len(sets)} random circuits"

    def plot(self, outcome: Outcome, ax: Axes) -> None:
        from interp_assert.claims.circuit_test_plot import plot_circuit_test

        plot_circuit_test(ax, outcome, self.circuit)


def announce_metric(ctx: Context, expr: ast.Node, target: DatasetSpec,
                    interventions: tuple[Any, ...]) -> None:
    """Plan the forward sinks of every quantity the metric reads (through expression
    quantities too) on the intervened pass, so that one pass serves them all."""
    names, seen = list(referenced_names(expr)), set()
    while names:
        name = names.pop()
        if name in seen or name not in ctx.definitions:
            continue
        seen.add(name)
        kind = ctx.definitions[name].kind
        names.extend(kind.references())
        need = getattr(kind, "need", None)
        if need is None:
            continue
        pinned = getattr(kind, "config", {}).get("data")
        spec = ctx.dataset_spec(str(pinned)) if pinned else target
        try:
            key, factory = need(spec, ctx.search_path)
        except InterpAssertError:
            continue  # reading the quantity reports it
        announce(ctx.plan, ctx.subject, spec, key, factory, interventions)
