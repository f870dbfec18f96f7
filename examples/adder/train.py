"""Deterministically train the 10-digit addition model.

Run from the repository root::

    python -m examples.adder.train

Training uses fresh random problems every step (:func:`examples.adder.data.generate`
with seed ``train_seed + step``), next-token cross-entropy on the 11 answer
digits only, AdamW with linear warm-up and cosine decay, 2 CPU threads by default. It
writes ``train_log.csv`` and the checkpoints ``checkpoints/adder.pt`` (final)
and ``checkpoints/adder_early.pt`` next to this file. The early checkpoint is the
model as it was before the first training step whose batch exact-match reached
``early_exact`` (40%): mid-way through the sharp phase transition in which
the model learns the task, so it is clearly under-trained. With the same torch
version the checkpoints are reproduced bit for bit, whatever the thread count
(``torch.use_deterministic_algorithms`` is on).
"""

from __future__ import annotations

import argparse
import csv
import math
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from examples.adder.data import (
    ANSWER_QUERY_POSITIONS,
    ANSWER_TOKEN_POSITIONS,
    D_VOCAB,
    POSITIONS,
    SEQ_LEN,
    generate,
)
from examples.tiny_transformer import TinyConfig, TinyTransformer, save_checkpoint

HERE = Path(__file__).resolve().parent

MODEL_CONFIG = TinyConfig(
    n_layers=2,
    d_model=128,
    n_heads=4,
    d_head=32,
    d_mlp=256,
    d_vocab=D_VOCAB,
    n_ctx=SEQ_LEN,
    normalization="LN",
    act_fn="relu",
)
"""Architecture of the committed adder checkpoints."""


@dataclass
class TrainSettings:
    """Optimisation hyper-parameters of the committed run."""

    seed: int = 0
    train_seed: int = 1_000_000
    val_seed: int = 999
    n_val: int = 2000
    steps: int = 800
    early_exact: float = 0.4
    batch_size: int = 256
    lr: float = 1e-3
    weight_decay: float = 0.01
    warmup: int = 100
    eval_every: int = 25
    grad_clip: float = 1.0
    threads: int = 2


def answer_logits(model: TinyTransformer, tokens: torch.Tensor) -> torch.Tensor:
    """Return logits ``[batch, 11, d_vocab]`` predicting answer digits ``A0 .. A10``."""
    return model(tokens)[:, ANSWER_QUERY_POSITIONS]


def answer_loss(model: TinyTransformer, tokens: torch.Tensor) -> tuple[torch.Tensor, float]:
    """Mean cross-entropy over the 11 answer digits (teacher forcing) and batch exact-match."""
    logits = answer_logits(model, tokens)
    targets = tokens[:, ANSWER_TOKEN_POSITIONS]
    loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))
    exact = (logits.argmax(-1) == targets).all(1).float().mean().item()
    return loss, exact


@torch.no_grad()
def evaluate(model: TinyTransformer, tokens: torch.Tensor) -> dict[str, float]:
    """Teacher-forced loss, exact-match rate and per-digit accuracy on ``tokens``."""
    was_training = model.training
    model.eval()
    logits = answer_logits(model, tokens)
    targets = tokens[:, ANSWER_TOKEN_POSITIONS]
    loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1)).item()
    correct = logits.argmax(-1) == targets
    model.train(was_training)
    return {
        "loss": loss,
        "exact": correct.all(1).float().mean().item(),
        "token_acc": correct.float().mean().item(),
    }


def lr_at(step: int, settings: TrainSettings) -> float:
    """Learning rate after linear warm-up and cosine decay to 10% of peak."""
    if step < settings.warmup:
        return settings.lr * (step + 1) / settings.warmup
    progress = (step - settings.warmup) / max(1, settings.steps - settings.warmup)
    return settings.lr * (0.1 + 0.9 * 0.5 * (1.0 + math.cos(math.pi * progress)))


def train(settings: TrainSettings, out_dir: Path = HERE) -> TinyTransformer:
    """Train the adder, writing the log CSV and checkpoints under ``out_dir``."""
    torch.set_num_threads(settings.threads)
    # Deterministic kernels make the weights bit-for-bit reproducible and independent
    # of the thread count (the embedding backward is otherwise order-dependent).
    torch.use_deterministic_algorithms(True)
    torch.manual_seed(settings.seed)
    model = TinyTransformer(MODEL_CONFIG)
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=settings.lr, weight_decay=settings.weight_decay
    )
    val_tokens = generate(settings.n_val, settings.val_seed)["tokens"]
    ckpt_dir = out_dir / "checkpoints"
    metadata = {"seed": settings.seed, "positions": list(POSITIONS), "task": "adder"}
    rows: list[dict[str, float | int]] = []
    early_step: int | None = None
    start = time.time()
    model.train()
    for step in range(1, settings.steps + 1):
        for group in optimizer.param_groups:
            group["lr"] = lr_at(step - 1, settings)
        tokens = generate(settings.batch_size, settings.train_seed + step)["tokens"]
        loss, batch_exact = answer_loss(model, tokens)
        if early_step is None and batch_exact >= settings.early_exact:
            # Snapshot the weights that produced this batch's predictions.
            early_step = step - 1
            save_checkpoint(ckpt_dir / "adder_early.pt", model, step=early_step, **metadata)
            print(f"saved adder_early.pt at step {early_step} (batch exact {batch_exact:.3f})")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), settings.grad_clip)
        optimizer.step()
        if step % settings.eval_every == 0 or step == settings.steps:
            metrics = evaluate(model, val_tokens)
            rows.append(
                {
                    "step": step,
                    "train_loss": round(loss.item(), 6),
                    "val_loss": round(metrics["loss"], 6),
                    "val_exact": round(metrics["exact"], 6),
                    "val_token_acc": round(metrics["token_acc"], 6),
                }
            )
            print(
                f"step {step:5d} loss {loss.item():.4f} val_loss {metrics['loss']:.4f} "
                f"exact {metrics['exact']:.4f} tok {metrics['token_acc']:.4f} "
                f"({time.time() - start:.0f}s)",
                flush=True,
            )
    save_checkpoint(ckpt_dir / "adder.pt", model, step=settings.steps, **metadata)
    with open(out_dir / "train_log.csv", "w", newline="") as fh:
        writer = csv.DictWriter(
            fh, fieldnames=["step", "train_loss", "val_loss", "val_exact", "val_token_acc"]
        )
        writer.writeheader()
        writer.writerows(rows)
    return model.eval()


def main() -> None:
    """Command-line entry point; defaults reproduce the committed checkpoints."""
    defaults = TrainSettings()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=defaults.steps)
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--threads", type=int, default=defaults.threads)
    parser.add_argument("--out-dir", type=Path, default=HERE)
    args = parser.parse_args()
    settings = TrainSettings(steps=args.steps, seed=args.seed, threads=args.threads)
    train(settings, args.out_dir)


if __name__ == "__main__":
    main()
