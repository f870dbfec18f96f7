"""Measure all-MiniLM-L6-v2's attention heads over ``sentences.txt`` (extra ``[hf]``).

Per head: the mean attention weight, over every real (sample, query) pair (padding left
out), on the previous token, the next token, the query itself, ``[CLS]`` and the sample's
``[SEP]``. ``python -m examples.minilm.measure`` prints the table the claim file was
written from (``--json`` prints it as JSON).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

SENTENCES = Path(__file__).with_name("sentences.txt")
TARGETS = ("previous", "next", "itself", "[CLS]", "[SEP]")


def head_scores(patterns: np.ndarray, mask: np.ndarray, sep: np.ndarray
                ) -> dict[str, np.ndarray]:
    """Per-head mean weight on each target; ``patterns`` is (batch, head, query, key)."""
    n, _, width, _ = patterns.shape
    real = mask.astype(bool)
    q = np.arange(width)
    keys = {"previous": np.broadcast_to(q - 1, (n, width)),
            "next": np.broadcast_to(q + 1, (n, width)),
            "itself": np.broadcast_to(q, (n, width)),
            "[CLS]": np.zeros((n, width), dtype=np.int64),
            "[SEP]": np.broadcast_to(sep[:, None], (n, width))}
    scores = {}
    for name, key in keys.items():
        inside = (key >= 0) & (key < width)
        valid = real & inside & np.take_along_axis(real, np.clip(key, 0, width - 1), axis=1)
        index = np.clip(key, 0, width - 1)[:, None, :, None]
        index = np.broadcast_to(index, (n, patterns.shape[1], width, 1))
        weight = np.take_along_axis(patterns, index, axis=3)[..., 0]
        scores[name] = np.where(valid[:, None, :], weight, 0.0).sum(axis=(0, 2)) / valid.sum()
    return scores


def measure() -> dict[str, dict[str, float]]:
    """{head label: {target: score}} for every head of the model."""
    from interp_assert.evaluate.forward import CaptureSink, run_forward
    from interp_assert.loading.data import DatasetSpec
    from interp_assert.loading.subject import LoadedSubject, SubjectSpec
    from interp_assert.loading.text_data import (
        TextDataset,
        load_tokenizer,
        read_sentences,
        tokenize,
    )

    from .model import load, model_folder

    model = load()
    texts = read_sentences(SENTENCES)
    fields, labels = tokenize(texts, load_tokenizer(model_folder()))
    dataset = TextDataset(DatasetSpec("sentences", generate="measure", batch_size=16),
                          fields, len(texts), labels)
    subject = LoadedSubject(SubjectSpec(loader="examples.minilm.model:load"))
    layers = model.n_layers
    sinks = [CaptureSink(f"blocks.{layer}.attn.hook_pattern") for layer in range(layers)]
    subject._model, subject._model_loaded = model, True
    run_forward(subject, dataset, list(sinks))
    table: dict[str, dict[str, float]] = {}
    for layer, sink in enumerate(sinks):
        scores = head_scores(sink.result(), fields["attention_mask"], fields["position:[SEP]"])
        for head in range(sink.result().shape[1]):
            table[f"L{layer}H{head}"] = {t: float(scores[t][head]) for t in TARGETS}
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    table = measure()
    if args.json:
        print(json.dumps(table, indent=1))
        return
    print("head   " + "  ".join(f"{t:>8}" for t in TARGETS))
    for head, row in table.items():
        best = max(row, key=lambda t: row[t])
        print(f"{head:<6} " + "  ".join(f"{row[t]:8.3f}" for t in TARGETS) + f"   {best}")


if __name__ == "__main__":
    main()
