"""Train a small sparse autoencoder on the adder's layer-0 residual stream.

Run from the repository root::

    python -m examples.adder.train_sae

It reads ``blocks.0.hook_resid_post`` of the committed checkpoint ``checkpoints/adder.pt`` at
every position of fresh addition problems, trains a ReLU sparse autoencoder (d_sae 256, an L1
penalty on the feature activations, decoder rows kept at unit norm, Adam, seeded, CPU) and
writes ``sae/cfg.json`` and ``sae/sae_weights.safetensors`` next to this file, in the layout
sae-lens saves. With the same torch version the weights are reproduced bit for bit.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from examples.adder.data import generate
from examples.tiny_transformer import load

HERE = Path(__file__).resolve().parent
HOOK = "blocks.0.hook_resid_post"
D_SAE = 256


def encode(x: torch.Tensor, weights: dict[str, torch.Tensor]) -> torch.Tensor:
    """Feature activations of ``x [..., d_in]``: ReLU((x − b_dec) @ W_enc + b_enc)."""
    return torch.relu((x - weights["b_dec"]) @ weights["W_enc"] + weights["b_enc"])


def decode(f: torch.Tensor, weights: dict[str, torch.Tensor]) -> torch.Tensor:
    """The reconstruction ``f @ W_dec + b_dec``."""
    return f @ weights["W_dec"] + weights["b_dec"]


def activations(n: int, seed: int) -> torch.Tensor:
    """``blocks.0.hook_resid_post`` of ``n`` fresh problems, one row per token."""
    model = load(HERE / "checkpoints" / "adder.pt")
    captured: list[torch.Tensor] = []
    handle = model.get_submodule(HOOK).register_forward_hook(
        lambda _m, _i, out: captured.append(out.detach()))
    with torch.inference_mode():
        tokens = generate(n, seed)["tokens"]
        for start in range(0, n, 1000):
            model(tokens[start:start + 1000])
    handle.remove()
    return torch.cat(captured).reshape(-1, captured[0].shape[-1]).clone()


def train(x: torch.Tensor, steps: int, l1: float, lr: float, batch: int, seed: int
          ) -> dict[str, torch.Tensor]:
    """Fit the autoencoder to the rows of ``x``; returns its weights."""
    gen = torch.Generator().manual_seed(seed)
    d_in = x.shape[1]
    w_dec = torch.randn(D_SAE, d_in, generator=gen)
    w_dec /= w_dec.norm(dim=1, keepdim=True)
    weights = {"W_enc": w_dec.t().clone().requires_grad_(),
               "b_enc": torch.zeros(D_SAE, requires_grad=True),
               "W_dec": w_dec.clone().requires_grad_(),
               "b_dec": x.mean(0).clone().requires_grad_()}
    optimiser = torch.optim.Adam(list(weights.values()), lr=lr)
    for step in range(steps):
        rows = x[torch.randint(0, len(x), (batch,), generator=gen)]
        f = encode(rows, weights)
        loss = (decode(f, weights) - rows).pow(2).sum(-1).mean() + l1 * f.sum(-1).mean()
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        with torch.no_grad():  # unit-norm decoder rows: the L1 penalty cannot shrink them
            weights["W_dec"] /= weights["W_dec"].norm(dim=1, keepdim=True)
        if step % 250 == 0 or step == steps - 1:
            with torch.no_grad():
                l0 = (f > 0).float().sum(-1).mean().item()
                mse = (decode(f, weights) - rows).pow(2).sum(-1).mean().item()
            print(f"step {step:5d}  loss {loss.item():.4f}  mse {mse:.4f}  L0 {l0:.1f}")
    return {k: v.detach().contiguous() for k, v in weights.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=HERE / "sae")
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--l1", type=float, default=1.0)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--batch", type=int, default=512)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    torch.use_deterministic_algorithms(True)
    start = time.time()
    x = activations(8000, seed=424242)
    weights = train(x, args.steps, args.l1, args.lr, args.batch, args.seed)
    from safetensors.torch import save_file

    args.out.mkdir(parents=True, exist_ok=True)
    save_file(weights, str(args.out / "sae_weights.safetensors"))
    config = {"architecture": "standard", "d_in": int(x.shape[1]), "d_sae": D_SAE,
              "hook_name": HOOK, "apply_b_dec_to_input": True, "normalize_activations": "none",
              "dtype": "float32", "model_name": "adder",
              "training": {"script": "examples/adder/train_sae.py", "steps": args.steps,
                           "l1": args.l1, "lr": args.lr, "batch": args.batch,
                           "seed": args.seed, "samples": 8000, "data_seed": 424242}}
    (args.out / "cfg.json").write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {args.out} in {time.time() - start:.1f} s")


if __name__ == "__main__":
    main()
