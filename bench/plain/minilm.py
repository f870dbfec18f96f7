"""Plain mirror of ``specs/minilm.claims.yaml`` (Hugging Face model, attention targets)."""

from __future__ import annotations

from collections import defaultdict

import torch

from bench.plain.common import ROOT

SAME = {
    ("previous-token-head", None): "L0H2 previous",
    ("next-token-head", None): "L1H8 next",
    ("cls-head-L1H11", None): "L1H11 [CLS]",
    ("cls-head-L2H9", None): "L2H9 [CLS]",
    ("cls-head-L4H5", None): "L4H5 [CLS]",
    ("no-sep-head", None): "L0H5 [SEP]",
    ("no-self-head", None): "L1H1 itself",
}


def numbers() -> dict[str, float]:
    import transformers

    from examples.minilm.model import model_folder

    folder = model_folder()
    model = transformers.AutoModel.from_pretrained(folder, attn_implementation="eager").eval()
    tokenizer = transformers.AutoTokenizer.from_pretrained(folder)
    lines = (ROOT / "examples/minilm/sentences.txt").read_text(encoding="utf-8").splitlines()
    sentences = [s.strip() for s in lines if s.strip() and not s.lstrip().startswith("#")]
    sums: dict[str, torch.Tensor] = defaultdict(lambda: torch.zeros(6, 12, dtype=torch.float64))
    counts: dict[str, float] = defaultdict(float)
    with torch.inference_mode():
        for start in range(0, len(sentences), 16):
            batch = tokenizer(sentences[start:start + 16], padding=True, return_tensors="pt")
            attentions = model(**batch, output_attentions=True).attentions
            mask = batch["attention_mask"].bool()
            last = mask.sum(1) - 1  # each sentence's [SEP]
            rows = torch.arange(len(mask))
            pairs = {"previous": mask[:, 1:] & mask[:, :-1], "next": mask[:, :-1] & mask[:, 1:]}
            for layer, att in enumerate(attentions):
                att = att.double()  # [b, h, q, k]
                sums["previous"][layer] += (att.diagonal(-1, -2, -1) * pairs["previous"][:, None]
                                            ).sum((0, 2))
                sums["next"][layer] += (att.diagonal(1, -2, -1) * pairs["next"][:, None]
                                        ).sum((0, 2))
                real = mask[:, None, :]
                sums["cls"][layer] += (att[..., 0] * real).sum((0, 2))
                sums["sep"][layer] += (att[rows, :, :, last] * real).sum((0, 2))
                sums["self"][layer] += (att.diagonal(0, -2, -1) * real).sum((0, 2))
            counts["previous"] += float(pairs["previous"].sum())
            counts["next"] += float(pairs["next"].sum())
            for name in ("cls", "sep", "self"):
                counts[name] += float(mask.sum())
    scores = {name: sums[name] / counts[name] for name in sums}
    return {"L0H2 previous": float(scores["previous"][0, 2]),
            "L1H8 next": float(scores["next"][1, 8]),
            "L1H11 [CLS]": float(scores["cls"][1, 11]), "L2H9 [CLS]": float(scores["cls"][2, 9]),
            "L4H5 [CLS]": float(scores["cls"][4, 5]), "L0H5 [SEP]": float(scores["sep"][0, 5]),
            "L1H1 itself": float(scores["self"][1, 1])}
