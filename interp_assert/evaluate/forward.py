"""Planned forward passes: every activation, distribution and metric that the claims of a run
need on one (checkpoint, dataset) is read in a single pass, with all hooks attached at once.

The run's plan (:mod:`interp_assert.plan`) says which sinks the selected claims read; the
first request on a (subject, dataset, interventions) triple runs one pass that feeds every
planned sink, and the results are cached on the subject. A sink that raises, or whose hook
never fires, fails only the claims that read it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from interp_assert.errors import InterpAssertError, QuantityError, did_you_mean
from interp_assert.evaluate import result_cache, sequential
from interp_assert.evaluate.batching import model_placement, on_device, sized_batches, to_device
from interp_assert.evaluate.streaming import StreamingStats
from interp_assert.loading.data import Dataset, DatasetSpec, load_dataset
from interp_assert.loading.subject import LoadedSubject
from interp_assert.progress import current, phase
from interp_assert.workers import parallel_map

if TYPE_CHECKING:
    from interp_assert.loading.layout_rules import AttentionRule
    from interp_assert.plan.plan import RunPlan


class Sink(ABC):
    """Consumes a forward pass batch by batch: a module's output (or input), or the logits."""

    #: module path whose output it reads, or None for the model's output (logits)
    hook: str | None = None
    read_input: bool = False
    #: set when the sink was dropped from its pass (over the memory limit, or it raised)
    error: InterpAssertError | None = None
    #: whether its hook gave it a value in the pass (a hook that never fires is an error)
    fired: bool = False

    @abstractmethod
    def update(self, value: Any, batch: dict[str, Any]) -> None: ...

    @abstractmethod
    def result(self) -> Any: ...

    def bytes_needed(self, seen: int, total: int) -> int:
        """Memory the sink will hold after a pass over ``total`` samples, estimated once it has
        seen the first ``seen`` (what :func:`run_forward` checks against the memory limit)."""
        return 0

    def describe(self) -> str:
        if self.hook is None:
            return "the model output"
        return f"the input of {self.hook}" if self.read_input else self.hook

    def release(self) -> None:
        """Free what the sink holds (it was dropped from its pass)."""
        return None


class KeepingSink(Sink):
    """Keeps every batch's array and concatenates them at the end."""

    parts: list[np.ndarray]

    def bytes_needed(self, seen: int, total: int) -> int:
        kept = sum(part.nbytes for part in self.parts)
        return 2 * kept * total // max(seen, 1)  # the parts and their concatenation

    def result(self) -> np.ndarray:
        return np.concatenate(self.parts, axis=0)

    def release(self) -> None:
        self.parts = []


def _to_numpy(value: Any) -> np.ndarray:
    if isinstance(value, tuple | list):
        value = value[0]
    return value.detach().float().cpu().numpy()


class CaptureSink(KeepingSink):
    """Keeps the whole activation (float32), concatenated over batches."""

    def __init__(self, hook: str, read_input: bool = False) -> None:
        self.hook, self.read_input = hook, read_input
        self.parts = []

    def update(self, value: Any, batch: dict[str, Any]) -> None:
        self.parts.append(_to_numpy(value))


@dataclass(frozen=True)
class Intervention:
    """A change to the forward pass (ablation, patching): replaces a module's output."""

    hook: str
    key: Hashable
    apply: Callable[[Any, dict[str, Any]], Any]

    def __hash__(self) -> int:
        return hash((self.hook, self.key))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Intervention) and (self.hook, self.key) == (other.hook,
                                                                               other.key)


FORWARD_PASSES: list[tuple[Any, ...]] = []  # a log of passes run (tests and benchmarks read it)


def announce(plan: RunPlan | None, subject: LoadedSubject, dataset_spec: DatasetSpec, key: Hashable,
             factory: Callable[[], Sink], interventions: tuple[Intervention, ...] = ()) -> None:
    """Add a sink to the plan of its pass before requesting it, so that one pass serves
    several sinks requested one after another (a claim reading several components)."""
    if plan is not None:
        plan.sinks((subject.spec, dataset_spec, interventions), key, factory)


def request(plan: RunPlan | None, subject: LoadedSubject, dataset_spec: DatasetSpec, key: Hashable,
            factory: Callable[[], Sink], interventions: tuple[Intervention, ...] = ()) -> Any:
    """The result of sink ``key``, running (at most) one forward pass for everything the run
    planned on this (subject, dataset, interventions). With a result cache on, a sink whose
    result is cached is read from it, and the pass runs only for the sinks that miss."""
    pass_key = (subject.spec, dataset_spec, interventions)
    cache_key = ("forward", dataset_spec, interventions, key)
    with subject.lock:
        planned = plan.sinks(pass_key, key, factory) if plan is not None else {key: factory}
        sequential.reopen(plan, subject.cache, pass_key)  # cut short, now read whole
        if cache_key in subject.cache and _serves(subject.cache[cache_key], planned[key]):
            return _unwrap(subject.cache[cache_key])
        stored = result_cache.entries_for(subject, dataset_spec, interventions)
        missing: dict[Hashable, Sink] = {}
        served = False
        for k, make in planned.items():
            known = subject.cache.get(("forward", dataset_spec, interventions, k), _Refused)
            if known is not _Refused and _serves(known, make):
                continue
            if (stored is not None and (found := stored.get(k)) is not result_cache.MISS
                    and _serves(found, make)):
                subject.cache[("forward", dataset_spec, interventions, k)] = found
                served = True
                continue
            try:
                missing[k] = make()
            except InterpAssertError as exc:  # one quantity's bad options break only its claims
                subject.cache[("forward", dataset_spec, interventions, k)] = _Refused(exc)
        if missing or not served:  # every sink served from the cache: no pass
            dataset = load_dataset(dataset_spec)
            rule = sequential.pass_rule(plan, pass_key, missing, dataset_spec.batch_size)
            with phase("pass", f"{dataset_spec.name} on {subject.spec.label}"):
                run_forward(subject, dataset, list(missing.values()), interventions,
                            progress=current().batch, stop=rule)
            cut = sequential.note_stop(rule, subject.cache, pass_key, plan)
            FORWARD_PASSES.append(pass_key)
            # the sinks' results (concatenations, mostly) are independent: computed side by side
            results = parallel_map(_finish, missing.values())
            for k, result in zip(missing, results):
                if cut:  # read from a pass that stopped early
                    getattr(result, "meta", {})["cut_short"] = True
                subject.cache[("forward", dataset_spec, interventions, k)] = result
                if stored is not None and not isinstance(result, _Refused) and not cut:
                    stored.put(k, result)
            if stored is not None:
                stored.close()
        return _unwrap(subject.cache[cache_key])


def _serves(cached: Any, factory: Callable[[], Sink]) -> bool:
    """Whether a cached result can stand for what ``factory``'s sink would give: statistics
    without their raw samples do not, for a sink that keeps them."""
    return not (isinstance(cached, StreamingStats) and not cached.exact
                and getattr(factory, "keeps_samples", True))


@dataclass(frozen=True)
class _Refused:
    """A cached sink result that is an error (each request raises a fresh copy of it)."""

    error: InterpAssertError


def _finish(sink: Sink) -> Any:
    """A sink's result, or its error (which concerns only the claims that read this sink)."""
    if sink.error is not None:
        return _Refused(sink.error)
    if sink.hook is not None and not sink.fired:
        return _Refused(_never_fired(sink))
    try:
        return sink.result()
    except InterpAssertError as exc:
        return _Refused(exc)
    except Exception as exc:
        return _Refused(QuantityError(f"reading {sink.describe()} failed: "
                                      f"{type(exc).__name__}: {exc}"))


def _never_fired(sink: Sink) -> QuantityError:
    """Why a hooked module gave nothing: the model never called it in the pass."""
    hint = ("the module exists but the model's forward pass never called it; check that this "
            "hook point is computed for this model")
    name = sink.hook.rsplit(".", 1)[-1] if sink.hook else ""
    if name in _OPTIONAL_TL_HOOKS:
        hint = (f"TransformerLens computes {name} only when the model's config sets "
                f"{_OPTIONAL_TL_HOOKS[name]}=True; set it in the loader, or read another hook")
    return QuantityError(f"hook '{sink.hook}' never fired during the forward pass", hint=hint)


#: TransformerLens hook points that exist but fire only when a config flag is set
_OPTIONAL_TL_HOOKS = {"hook_result": "use_attn_result", "hook_q_input": "use_split_qkv_input",
                      "hook_k_input": "use_split_qkv_input",
                      "hook_v_input": "use_split_qkv_input",
                      "hook_attn_in": "use_attn_in", "hook_mlp_in": "use_hook_mlp_in"}


def _unwrap(cached: Any) -> Any:
    if isinstance(cached, _Refused):
        raise cached.error.copy()
    return cached


def over_memory_limit(sinks: Sequence[Sink], seen: int, dataset: Dataset) -> list[Sink]:
    """The sinks to drop from a pass, largest first, so that what the others keep fits in the
    memory limit; each gets its error. ``seen``: samples of the first batch."""
    from interp_assert.resources import format_bytes, limit_error, memory_limit

    limit = memory_limit()
    if limit is None:
        return []
    needs = sorted(((sink.bytes_needed(seen, dataset.n), i) for i, sink in enumerate(sinks)),
                   reverse=True)
    whole = total = sum(need for need, _ in needs)
    dropped = []
    for need, i in needs:
        if total <= limit:
            break
        total -= need
        sink = sinks[i]
        share = f" (the whole pass: {format_bytes(whole)})" if whole > need else ""
        sink.error = limit_error(
            f"keeping {sink.describe()} on dataset '{dataset.spec.name}' ({dataset.n} samples)",
            need, limit, hint="use fewer samples (the dataset's 'n') or a 'distribution:' "
                              "quantity, which streams statistics instead of keeping every value")
        if share:
            sink.error.message += share
        dropped.append(sink)
    return dropped


def find_module(model: Any, path: str, rule: AttentionRule | None = None) -> Any:
    """The submodule at a dotted path (TransformerLens hook names are submodule paths), else
    the hook point the subject's ``layout: attention:`` rule computes from a module."""
    from interp_assert.evaluate.fused_attention import fused_hook, no_module_error

    try:
        return model.get_submodule(path)
    except AttributeError:
        pass
    try:
        found = fused_hook(model, path, rule)
    except AttributeError:  # the rule names a module the model lacks: report that module
        found, path = None, rule.resolve(path)[0] if rule and rule.resolve(path) else path
    if found is not None:
        return found
    raise no_module_error(model, path, rule) from None


def model_output(model: Any, batch: dict[str, Any], dataset: Dataset,
                 virtual: frozenset[str] = frozenset(),
                 interventions: tuple[Intervention, ...] = ()) -> tuple[Any, dict[str, Any]]:
    """Call the model on one batch: (logits, values of virtual hook points).

    An adapter model may define ``interp_forward(batch, hooks) -> {"logits": ..., name: ...}``
    to take over the call and provide hook points that are not modules (e.g. a Hugging Face
    model's attention patterns from ``output_attentions``); one that sets ``interp_intervenes``
    gets the interventions too (``interp_forward(batch, hooks, interventions, input_key)``:
    the nnsight adapter applies them inside its trace).
    """
    if getattr(model, "interp_intervenes", False):  # the adapter applies the interventions
        out = model.interp_forward(batch, virtual, interventions, dataset.spec.input)
        return out["logits"], {k: v for k, v in out.items() if k != "logits"}
    if hasattr(model, "interp_forward"):
        out = model.interp_forward(batch, virtual)
        return out["logits"], {k: v for k, v in out.items() if k != "logits"}
    inputs = batch[dataset.spec.input]
    device, dtype = model_placement(model, dataset.spec.device)
    output = model(to_device(inputs, device, dtype))
    if hasattr(output, "logits"):
        return output.logits, {}
    if isinstance(output, tuple | list):
        return output[0], {}
    return output, {}


def has_module(model: Any, path: str, rule: AttentionRule | None = None) -> bool:
    """Whether ``path`` is a module of the model, or a hook point ``rule`` gives."""
    try:
        model.get_submodule(path)
    except AttributeError:
        return rule is not None and rule.resolve(path) is not None
    return True


def run_forward(subject: LoadedSubject, dataset: Dataset, sinks: list[Sink],
                interventions: tuple[Intervention, ...] = (),
                progress: Callable[[int, int], None] | None = None,
                stop: Callable[[int], bool] | None = None) -> None:
    """One pass over ``dataset`` feeding every sink; interventions modify outputs first.
    ``progress(done, total)`` is called after each batch with the samples done so far;
    ``stop(done)`` (a sequential stop rule, with its ``batch_size``) ends the pass early."""
    import torch

    model = subject.model  # a load that failed raises its own error here
    if model is None:  # what is missing (a loader, or a config beside the checkpoint)
        raise subject.no_model_error()
    device = model_placement(model, dataset.spec.device)[0]
    rule = subject.spec.attention  # hook points a fused attention gives (layout: attention:)
    current: dict[str, Any] = {}
    handles = []
    try:
        intervenes = getattr(model, "interp_intervenes", False)  # e.g. through nnsight
        for intervention in () if intervenes else interventions:
            module = find_module(model, intervention.hook, rule)
            handles.append(module.register_forward_hook(
                lambda _m, _args, out, _i=intervention: _i.apply(out, current)))
        groups: dict[tuple[str, bool], list[Sink]] = {}
        virtual_sinks: dict[str, list[Sink]] = {}
        adapter = hasattr(model, "interp_forward")
        for sink in sinks:
            if sink.hook is None:
                continue
            if adapter and not sink.read_input and not has_module(model, sink.hook, rule):
                virtual_sinks.setdefault(sink.hook, []).append(sink)
            else:
                groups.setdefault((sink.hook, sink.read_input), []).append(sink)
        virtual = frozenset(virtual_sinks)
        for (hook, read_input), group in groups.items():
            if all(getattr(sink, "optional", False) for sink in group) and not has_module(
                    model, hook, rule):
                continue  # guessed by the plan for a deeper model; nothing reads them
            try:
                module = find_module(model, hook, rule)
            except QuantityError as exc:  # only the sinks of this hook fail
                for sink in group:
                    sink.error = exc
                continue
            if read_input:
                handles.append(module.register_forward_pre_hook(
                    lambda _m, args, _g=group: _feed(_g, args[0], current)))
            else:
                handles.append(module.register_forward_hook(
                    lambda _m, _args, out, _g=group: _feed(_g, out, current)))
        output_sinks = [s for s in sinks if s.hook is None]
        with torch.inference_mode():
            batches = (stop.batches(dataset) if hasattr(stop, "batches")  # type: ignore[union-attr]
                       else sized_batches(subject, model, dataset))
            for number, batch in enumerate(batches):
                batch = on_device(batch, device)
                current.clear()
                current.update(batch)
                logits, values = model_output(model, batch, dataset, virtual,
                                              interventions if intervenes else ())
                _feed(output_sinks, logits, batch)
                for hook, group in virtual_sinks.items():
                    if hook in values:
                        _feed(group, values[hook], batch)
                        continue
                    for sink in group:
                        sink.error = sink.error or QuantityError(
                            f"the model adapter provided no hook point '{hook}'"
                            + did_you_mean(hook, values))
                if number == 0:  # the first batch tells how much the whole pass will keep
                    for sink in over_memory_limit(sinks, len(batch["_index"]), dataset):
                        sink.release()
                        for group in (*groups.values(), *virtual_sinks.values(), output_sinks):
                            if sink in group:
                                group.remove(sink)
                if progress is not None:
                    progress(int(batch["_index"][-1]) + 1, dataset.n)
                del logits, values  # not alive while the next batch runs
                if stop is not None and stop(int(batch["_index"][-1]) + 1):
                    break
    finally:
        for handle in handles:
            handle.remove()


def _feed(sinks: list[Sink], value: Any, batch: dict[str, Any]) -> None:
    """A hook's body: feeds the sinks and returns None, so the module's output stays as it is.
    A sink that raises keeps its error and is fed no more; the others go on."""
    for sink in sinks:
        if sink.error is not None:
            continue
        sink.fired = True
        try:
            sink.update(value, batch)
        except InterpAssertError as exc:
            sink.error = exc
        except Exception as exc:
            sink.error = QuantityError(f"reading {sink.describe()} failed: "
                                       f"{type(exc).__name__}: {exc}")
        if sink.error is not None:
            sink.release()
