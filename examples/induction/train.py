"""Deterministically train the 2-layer attention-only induction model.

Run from the repository root::

    python -m examples.induction.train

The model sees fresh sequences from :func:`examples.induction.data.generate`
every step (seed ``train_seed + step``) and is trained with next-token
cross-entropy on all positions. Checkpoints ``checkpoints/step_XXXX.pt`` are
written at :data:`SAVE_STEPS` (step 0 is the untrained initialisation) and
``checkpoints/induction.pt`` at the end; ``train_log.csv`` records validation
losses split into repeated tokens (predictable by induction) and first
occurrences. With the same torch version the checkpoints are reproduced bit for
bit, whatever the thread count (``torch.use_deterministic_algorithms`` is on).
"""

from __future__ import annotations

import argparse
import csv
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from examples.induction.data import D_VOCAB, SEQ_LEN, generate
from examples.tiny_transformer import TinyConfig, TinyTransformer, save_checkpoint

HERE = Path(__file__).resolve().parent

MODEL_CONFIG = TinyConfig(
    n_layers=2,
    d_model=64,
    n_heads=4,
    d_head=16,
    d_mlp=None,
    d_vocab=D_VOCAB,
    n_ctx=SEQ_LEN,
    normalization=None,
    act_fn="relu",
)
"""Architecture of the committed induction checkpoints (attention-only, no LayerNorm)."""

SAVE_STEPS: tuple[int, ...] = (0, 200, 400, 600, 800, 1000, 1100, 1200, 1300, 1500, 2000, 3000)
"""Steps at which ``checkpoints/step_XXXX.pt`` snapshots are written."""


@dataclass
class TrainSettings:
    """Optimisation hyper-parameters of the committed run."""

    seed: int = 0
    train_seed: int = 1_000_000
    val_seed: int = 999
    n_val: int = 1000
    steps: int = 3000
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 0.01
    eval_every: int = 25
    threads: int = 2


def next_token_logits_and_losses(
    model: TinyTransformer, tokens: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits ``[batch, SEQ_LEN - 1, vocab]`` and per-position next-token losses
    ``[batch, SEQ_LEN - 1]``: entry ``t`` is the prediction of the token at ``t + 1``."""
    logits = model(tokens)[:, :-1]
    losses = F.cross_entropy(
        logits.reshape(-1, logits.shape[-1]), tokens[:, 1:].reshape(-1), reduction="none"
    ).view(tokens.shape[0], -1)
    return logits, losses


def token_losses(model: TinyTransformer, tokens: torch.Tensor) -> torch.Tensor:
    """Per-position next-token loss ``[batch, SEQ_LEN - 1]`` (position ``t`` predicts ``t+1``)."""
    return next_token_logits_and_losses(model, tokens)[1]


def repeated_targets(batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """``batch["repeated"]`` aligned with :func:`token_losses`: ``[batch, SEQ_LEN - 1]``, entry
    ``t`` True when the token at ``t + 1`` (the one the logits at ``t`` predict) is repeated."""
    return batch["repeated"][:, 1:]


@torch.no_grad()
def evaluate(model: TinyTransformer, batch: dict[str, torch.Tensor]) -> dict[str, float]:
    """Mean loss overall, on repeated tokens and on first occurrences; induction accuracy.

    Each mean pools the scored tokens of every sequence (``losses[mask].mean()``)."""
    was_training = model.training
    model.eval()
    tokens = batch["tokens"]
    logits, losses = next_token_logits_and_losses(model, tokens)
    repeated = repeated_targets(batch)
    correct = logits.argmax(-1) == tokens[:, 1:]
    model.train(was_training)
    return {
        "loss": losses.mean().item(),
        "loss_repeated": losses[repeated].mean().item(),
        "loss_first": losses[~repeated].mean().item(),
        "acc_repeated": correct[repeated].float().mean().item(),
    }


def train(settings: TrainSettings, out_dir: Path = HERE) -> TinyTransformer:
    """Train the model, writing the log CSV and checkpoints under ``out_dir``."""
    torch.set_num_threads(settings.threads)
    # Deterministic kernels make the weights bit-for-bit reproducible and independent
    # of the thread count (the embedding backward is otherwise order-dependent).
    torch.use_deterministic_algorithms(True)
    torch.manual_seed(settings.seed)
    model = TinyTransformer(MODEL_CONFIG)
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=settings.lr, weight_decay=settings.weight_decay
    )
    val = generate(settings.n_val, settings.val_seed)
    ckpt_dir = out_dir / "checkpoints"
    metadata = {"seed": settings.seed, "task": "induction"}
    fields = ["step", "train_loss", "val_loss", "val_loss_repeated", "val_loss_first"]
    fields.append("val_acc_repeated")
    rows: list[dict[str, float | int]] = []

    def log(step: int, train_loss: float) -> None:
        metrics = evaluate(model, val)
        rows.append(
            {
                "step": step,
                "train_loss": round(train_loss, 6),
                "val_loss": round(metrics["loss"], 6),
                "val_loss_repeated": round(metrics["loss_repeated"], 6),
                "val_loss_first": round(metrics["loss_first"], 6),
                "val_acc_repeated": round(metrics["acc_repeated"], 6),
            }
        )
        print(
            f"step {step:5d} train {train_loss:.4f} val {metrics['loss']:.4f} "
            f"rep {metrics['loss_repeated']:.4f} first {metrics['loss_first']:.4f} "
            f"acc_rep {metrics['acc_repeated']:.4f} ({time.time() - start:.0f}s)",
            flush=True,
        )

    start = time.time()
    model.train()
    log(0, float("nan"))
    if 0 in SAVE_STEPS:
        save_checkpoint(ckpt_dir / "step_0000.pt", model, step=0, **metadata)
    for step in range(1, settings.steps + 1):
        tokens = generate(settings.batch_size, settings.train_seed + step)["tokens"]
        loss = token_losses(model, tokens).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if step % settings.eval_every == 0 or step == settings.steps:
            log(step, loss.item())
        if step in SAVE_STEPS:
            save_checkpoint(ckpt_dir / f"step_{step:04d}.pt", model, step=step, **metadata)
    save_checkpoint(ckpt_dir / "induction.pt", model, step=settings.steps, **metadata)
    with open(out_dir / "train_log.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=fields)
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
    train(TrainSettings(steps=args.steps, seed=args.seed, threads=args.threads), args.out_dir)


if __name__ == "__main__":
    main()
