"""``sae: path/to/folder``: the features of a sparse dictionary over the planned forward pass.

The value is each feature's firing frequency (the fraction of the dataset's tokens on which it
is nonzero) on an axis ``feature`` labelled ``F0 .. F{d_sae-1}``; ``meta["features"]`` holds
the :class:`~interp_assert.evaluate.feature_sink.FeatureActivations` that the feature claims
read (frequencies at positions, top activations, histograms).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from pathlib import Path
from typing import TYPE_CHECKING

from interp_assert.errors import SpecError
from interp_assert.evaluate.feature_sink import FeatureActivations, FeatureSink
from interp_assert.evaluate.forward import Sink
from interp_assert.evaluate.quantities.base import register_quantity
from interp_assert.evaluate.quantities.behaviour import ForwardQuantity
from interp_assert.labels import Axis, Labelled
from interp_assert.loading.data import DatasetSpec
from interp_assert.loading.dictionary import SparseDictionary, load_dictionary
from interp_assert.loading.paths import resolve_path

if TYPE_CHECKING:
    from interp_assert.evaluate.evaluation import Evaluation


@register_quantity
class SparseFeatures(ForwardQuantity):
    """A sparse autoencoder or transcoder in sae-lens's folder layout, encoded on its hook
    (``hook:`` overrides the config's ``hook_name``)."""

    key = "sae"
    options = frozenset({"data", "hook"})

    def validate(self) -> None:
        if not isinstance(self.config["sae"], str) or not self.config["sae"].strip():
            raise SpecError(f"quantity '{self.name}': 'sae' must be the path of a folder "
                            "holding cfg.json and sae_weights.safetensors", self.location)
        if "hook" in self.config and not isinstance(self.config["hook"], str):
            raise SpecError(f"quantity '{self.name}': 'hook' must be a module path",
                            self.location)

    def folder(self) -> Path:
        """The dictionary's folder, relative to the claim file."""
        base = Path.cwd()
        if self.location is not None and not self.location.path.startswith("<"):
            base = Path(self.location.path).parent
        return resolve_path(str(self.config["sae"]), base, f"quantity '{self.name}': 'sae'",
                            self.location)

    def dictionary(self) -> SparseDictionary:
        """The loaded dictionary (a :class:`CheckpointError` names what is wrong)."""
        return load_dictionary(self.folder(), self.location)

    def hook(self, dictionary: SparseDictionary) -> str:
        return str(self.config.get("hook") or dictionary.hook)

    def fingerprint(self) -> str:
        path = self.folder()
        try:
            version = str((path / "sae_weights.safetensors").stat().st_mtime_ns)
        except OSError:
            version = "missing"
        return f"sae:{path}:{version}:{sorted(self.config.items())!r}"

    def need(self, dataset: DatasetSpec, search_path: tuple[Path, ...]
             ) -> tuple[Hashable, Callable[[], Sink]]:
        folder, hook = self.folder(), self.config.get("hook")

        def make() -> Sink:
            dictionary = load_dictionary(folder, self.location)
            return FeatureSink(dictionary, str(hook or dictionary.hook))

        try:  # a rewritten dictionary is another sink
            version = (folder / "sae_weights.safetensors").stat().st_mtime_ns
        except OSError:
            version = None
        return ("sae", str(folder), version, hook), make

    def compute(self, ev: Evaluation) -> Labelled:
        features, dataset = self.read(ev)
        assert isinstance(features, FeatureActivations)
        counts, tokens = features.token_counts()
        frequency = counts / tokens if tokens else counts * float("nan")
        context = {**self.context(dataset), "dictionary": features.dictionary.describe(),
                   "tokens": tokens}
        return Labelled(frequency, (Axis("feature", features.dictionary.labels()),), self.name,
                        {"features": features, "context": context})
