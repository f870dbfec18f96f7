"""Scale benchmark: interp-assert against bare torch/numpy on a GPT-2-small-sized model.

A decoder-only transformer in TransformerLens layout (``examples/tiny_transformer.py``: the
parameter names, shapes and hook points of TransformerLens's ``HookedTransformer``, with its
config fields) is built with random weights offline at GPT-2-small size (12 layers, d_model
768, 12 heads of 64, d_mlp 3072, vocab 50257, n_ctx 1024; ReLU MLP) and saved as a
checkpoint. Each row writes a claim file to a temporary folder and measures, in FRESH
processes, interp-assert checking it (``Runner``, plots off) against a bare torch/numpy script
computing the same numbers from the same checkpoint with the same loader, data and batches:

1. ``labels``: expanding ``L{0..11}N{0..3071}`` (36,864 labels; the call alone, after its
   import) vs a list comprehension;
2. ``weights``: a weight claim over every neuron (``norm`` of each ``W_out`` row ≥ 0);
3. ``attention``: 144 claims "L{l}H{h} attends to the previous token ≥ 0", 64 × 128 tokens;
4. ``distribution``: mostly (≥ 90% of) the neurons of one MLP layer (3072) have kurtosis in
   a range (a neuron that never fires has none), 256 × 128 tokens;
5. ``kcomp``: the 144 × 144 K-composition table (a ranking claim reads all of it);
6. ``ablation``: mean-ablating 12 heads (one per layer), the loss change, 64 × 128 tokens.

Each measurement is one fresh child process (``python bench/bench_scale.py --child ...``);
the two sides run alternately (paired), ``--repeats`` times; the table gives medians with
min-max. Time is the work in the child after ``import torch, numpy`` (both sides import them):
for interp-assert it includes importing the library, reading the claim file, loading the
checkpoint, the passes and the claims; for bare, loading and computing. Peak memory is the
child's peak RSS (``VmHWM`` of /proc/self/status, reset at exec, so nothing is inherited from
the parent, which never imports torch; ``ru_maxrss`` elsewhere), next to the bytes actually
needed: the floor (the peak RSS of a child that only imports torch and numpy) + 4 B × the
parameters + the row's largest transient (one batch's logits 4·B·T·V, plus what the row must
keep; see ``needed_mb``).
Before a row is reported, the numbers of the two sides must agree within 1e-4.

Run: python bench/bench_scale.py [--quick] [--repeats 3] [--rows labels,weights,...]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
HERE = Path(__file__).resolve().parent

FULL = {"n_layers": 12, "d_model": 768, "n_heads": 12, "d_head": 64, "d_mlp": 3072,
        "d_vocab": 50257, "n_ctx": 1024, "seq": 128, "attn_n": 64, "dist_n": 256, "batch": 8}
QUICK = {"n_layers": 4, "d_model": 128, "n_heads": 4, "d_head": 32, "d_mlp": 512,
         "d_vocab": 2000, "n_ctx": 64, "seq": 32, "attn_n": 16, "dist_n": 32, "batch": 8}
ROWS = ("labels", "weights", "attention", "distribution", "kcomp", "ablation")
GOALS = {"labels": "< 0.1 s", "weights": "", "attention": "≤ 1.5× time, ≤ 1.2× memory",
         "distribution": "≤ 1.5× time, ≤ 1.2× memory", "kcomp": "≤ 2× time", "ablation": ""}
TOLERANCE = 1e-4
DIST_LAYER = "middle"  # the MLP layer of the distribution row: n_layers // 2


# ----------------------------------------------------------------------------- data


def generate(n: int, seed: int, length: int = 128, vocab: int = 50257) -> dict[str, Any]:
    """``n`` sequences of uniformly random tokens (``tokens`` int64 [n, length]) and a
    ``scored`` mask marking every token from position 1 on (each predicted by the one before)."""
    import torch

    gen = torch.Generator().manual_seed(seed)
    tokens = torch.randint(0, vocab, (n, length), generator=gen, dtype=torch.int64)
    scored = torch.ones(n, length, dtype=torch.bool)
    scored[:, 0] = False
    return {"tokens": tokens, "scored": scored}


# ----------------------------------------------------------------------------- claim files


def claim_file(row: str, size: dict[str, int], checkpoint: Path) -> str:
    """The claim file of a row (YAML text)."""
    layers, heads = size["n_layers"], size["n_heads"]
    head = (f"subject:\n  checkpoint: {checkpoint}\n  loader: examples.tiny_transformer:load\n"
            f"  python_path: [{ROOT}, {HERE}]\n")
    n = size["dist_n"] if row == "distribution" else size["attn_n"]
    data = (f"data:\n  seqs:\n    generate: bench_scale:generate\n    n: {n}\n    seed: 5\n"
            f"    batch_size: {size['batch']}\n"
            f"    args: {{length: {size['seq']}, vocab: {size['d_vocab']}}}\n")
    if row == "weights":
        return (head + "quantities:\n  norms: norm(W_out)\n"
                "claims:\n  - id: neuron-norms\n    claim: all of norms >= 0\n")
    if row == "attention":
        quantities = "".join(f"  p{layer}: {{activation: blocks.{layer}.attn.hook_pattern}}\n"
                             for layer in range(layers))
        claims = "".join(f"  - {{id: prev-L{layer}H{h}, claim: \"L{layer}H{h} attends to the "
                         "previous token >= 0\"}\n"
                         for layer in range(layers) for h in range(heads))
        return head + data + "quantities:\n" + quantities + "claims:\n" + claims
    if row == "distribution":
        return (head + data + "quantities:\n  post: {distribution: "
                f"blocks.{layers // 2}.mlp.hook_post}}\nclaims:\n  - id: kurtosis\n"
                "    claim: \"mostly neurons of post have kurtosis in [-3, 1000000]\"\n")
    if row == "kcomp":
        return (head + "claims:\n  - id: k-composition\n"
                f"    claim: \"L0H0 → L{layers - 1}H0 ranks in top {(layers * heads) ** 2} in "
                "K-composition\"\n")
    if row == "ablation":
        ablated = ", ".join(f"L{layer}H{layer % heads}" for layer in range(layers))
        return (head + data + "quantities:\n  loss: {metric: loss, mask: scored}\n"
                f"claims:\n  - id: ablate\n    claim: \"ablate {ablated} (mean): loss changes "
                "by >= 0 nats\"\n")
    raise ValueError(row)


# ----------------------------------------------------------------------------- children


def ours(row: str, size: dict[str, int], work: Path) -> dict[str, Any]:
    """interp-assert checks the row's claim file; returns its numbers keyed like bare's."""
    if row == "labels":
        from interp_assert.labels import expand_labels

        labels = expand_labels(f"L{{0..{size['n_layers'] - 1}}}N{{0..{size['d_mlp'] - 1}}}")
        return {"count": len(labels), "labels": "\n".join(labels)}
    from interp_assert.run.runner import Runner, RunOptions, load_claim_file

    claims = load_claim_file(work / f"{row}.claims.yaml")
    runner = Runner(RunOptions(plots="never", root=work, artifacts=work / "artifacts"))
    results = list(runner.run(runner.checks(claims)))
    bad = [(r.claim_id, r.status, str(r.error)) for r in results if r.status != "holds"]
    if bad:
        raise SystemExit(f"{row}: claims that do not hold: {bad[:3]}")
    outcomes = [r.outcome for r in results]
    if row == "weights":
        return {item["element"]: item["value"] for item in outcomes[0].rows}
    if row == "attention":
        return {o.context["head"]: o.value for o in outcomes}
    if row == "distribution":
        return {item["neuron"]: item["value"] for item in outcomes[0].rows}
    if row == "kcomp":
        rows = outcomes[0].rows
        return {"rank": outcomes[0].value,
                **{f"{item['writer']}>{item['reader']}": item["score"] for item in rows}}
    if row == "ablation":
        item = outcomes[0].rows[0]
        return {"before": item["before"], "after": item["after"], "effect": item["effect"]}
    raise ValueError(row)


def _forward(model: Any, data: dict[str, Any], batch: int) -> None:
    """One pass over the data in batches, logits dropped (the hooks do the work)."""
    import torch

    with torch.inference_mode():
        for start in range(0, len(data["tokens"]), batch):
            model(data["tokens"][start:start + batch])


def bare(row: str, size: dict[str, int], work: Path) -> dict[str, Any]:
    """The same numbers with torch and numpy only (the same loader, data and batches)."""
    import torch

    layers, heads, d_mlp = size["n_layers"], size["n_heads"], size["d_mlp"]
    checkpoint = work / "model.pt"
    if row == "labels":
        labels = [f"L{layer}N{i}" for layer in range(layers) for i in range(d_mlp)]
        return {"count": len(labels), "labels": "\n".join(labels)}
    if row in ("weights", "kcomp"):
        state = torch.load(checkpoint, map_location="cpu", weights_only=True)["model_state_dict"]
        if row == "weights":
            return {f"L{layer}N{i}": float(v) for layer in range(layers) for i, v in enumerate(
                state[f"blocks.{layer}.mlp.W_out"].double().norm(dim=1).tolist())}
        return k_composition(state, layers, heads)
    sys.path.insert(0, str(ROOT))
    from examples.tiny_transformer import load

    model = load(checkpoint)
    n = size["dist_n"] if row == "distribution" else size["attn_n"]
    data = generate(n, 5, size["seq"], size["d_vocab"])
    batch = size["batch"]
    if row == "attention":
        sums = torch.zeros(layers, heads, dtype=torch.float64)

        def previous(layer: int) -> Any:
            def hook(_m: Any, _i: Any, out: Any) -> None:  # A[b, h, q, q - 1], q >= 1
                sums[layer] += out.diagonal(offset=-1, dim1=-2, dim2=-1).double().sum((0, 2))
            return hook

        for layer, block in enumerate(model.blocks):
            block.attn.hook_pattern.register_forward_hook(previous(layer))
        _forward(model, data, batch)
        scores = sums / (n * (size["seq"] - 1))
        return {f"L{layer}H{h}": float(scores[layer, h]) for layer in range(layers)
                for h in range(heads)}
    if row == "distribution":
        return kurtosis(model, data, batch, layers // 2)
    return mean_ablation(model, data, batch, heads)


def kurtosis(model: Any, data: dict[str, Any], batch: int, layer: int) -> dict[str, Any]:
    """Excess kurtosis m4/m2² - 3 of every neuron of one MLP layer: float64 power sums about
    the first batch's mean, streamed batch by batch."""
    import torch

    state: dict[str, Any] = {}

    def hook(_m: Any, _i: Any, out: Any) -> None:
        x = out.reshape(-1, out.shape[-1]).double()
        if not state:
            state.update(shift=x.mean(0), n=0, sums=[torch.zeros(x.shape[1], dtype=x.dtype)
                                                     for _ in range(4)])
        d = x - state["shift"]
        state["n"] += x.shape[0]
        for k in range(4):
            state["sums"][k] += (d ** (k + 1)).sum(0)

    model.blocks[layer].mlp.hook_post.register_forward_hook(hook)
    _forward(model, data, batch)
    n, (s1, s2, s3, s4) = state["n"], state["sums"]
    mu = s1 / n
    m2 = s2 / n - mu ** 2
    m4 = s4 / n - 4 * mu * s3 / n + 6 * mu ** 2 * s2 / n - 3 * mu ** 4
    values = (m4 / m2 ** 2 - 3).tolist()
    return {f"L{layer}N{i}": v for i, v in enumerate(values)}


def mean_ablation(model: Any, data: dict[str, Any], batch: int, heads: int) -> dict[str, Any]:
    """Loss (mean over samples of each sample's mean next-token loss) before and after
    replacing head L{l}H{l mod heads} of every layer by its mean over the samples, per
    position: one clean pass (loss + the means), one ablated pass."""
    import torch

    tokens = data["tokens"]
    picked = [(layer, layer % heads) for layer in range(len(model.blocks))]
    sums = {layer: torch.zeros(0) for layer, _ in picked}

    def capture(layer: int, head: int) -> Any:
        def hook(_m: Any, _i: Any, z: Any) -> None:
            part = z[:, :, head].double().sum(0)
            sums[layer] = part if sums[layer].numel() == 0 else sums[layer] + part
        return hook

    def sample_losses() -> Any:
        losses = []
        with torch.inference_mode():
            for start in range(0, len(tokens), batch):
                x = tokens[start:start + batch]
                logp = torch.log_softmax(model(x)[:, :-1], dim=-1)
                losses.append(-logp.gather(-1, x[:, 1:, None])[..., 0].double().mean(1))
        return torch.cat(losses)

    handles = [model.blocks[layer].attn.hook_z.register_forward_hook(capture(layer, head))
               for layer, head in picked]
    before = float(sample_losses().mean())
    for handle in handles:
        handle.remove()
    means = {layer: (sums[layer] / len(tokens)).float() for layer in sums}

    def replace(layer: int, head: int) -> Any:
        def hook(_m: Any, _i: Any, z: Any) -> Any:
            z = z.clone()
            z[:, :, head] = means[layer]
            return z
        return hook

    for layer, head in picked:
        model.blocks[layer].attn.hook_z.register_forward_hook(replace(layer, head))
    after = float(sample_losses().mean())
    return {"before": before, "after": after, "effect": abs(after - before)}


def k_composition(state: dict[str, Any], layers: int, heads: int) -> dict[str, Any]:
    """K-composition ‖W_OV^w W_QK^rᵀ‖_F / (‖W_OV^w‖_F ‖W_QK^r‖_F) for every (writer,
    reader) head pair with the writer in an earlier layer (Elhage et al. 2021), in float64
    with BLAS matmuls on the head-sized factors: with M = W_O^w W_K^r, G_V = W_V^wᵀ W_V^w and
    G_Q = W_Q^rᵀ W_Q^r, ‖W_V M W_Qᵀ‖_F² = Σ (G_V M G_Q) ⊙ M. Returns the claimed pair's rank
    (1 + the pairs scoring higher) and the top 10 pairs' scores."""
    import torch

    def stack(name: str) -> Any:
        return torch.cat([state[f"blocks.{layer}.attn.{name}"] for layer in range(layers)]
                         ).double()

    w_q, w_k, w_v, w_o = stack("W_Q"), stack("W_K"), stack("W_V"), stack("W_O")
    n, d_model, d_head = w_q.shape
    g_v = w_v.transpose(1, 2) @ w_v  # [N, d_head, d_head]
    g_q = w_q.transpose(1, 2) @ w_q
    ov_norm = ((g_v @ w_o) * w_o).sum((1, 2)).sqrt()  # ‖W_V W_O‖_F
    qk_norm = ((w_k @ g_q) * w_k).sum((1, 2)).sqrt()  # ‖W_K W_Qᵀ‖_F
    k_all = w_k.permute(1, 0, 2).reshape(d_model, n * d_head)  # [d_model, N·d_head]
    squared = torch.zeros(n, n, dtype=torch.float64)
    for layer in range(layers - 1):
        rows = slice(layer * heads, (layer + 1) * heads)
        middle = (w_o[rows].reshape(heads * d_head, d_model) @ k_all)  # W_O^w W_K^r
        middle = middle.reshape(heads, d_head, n, d_head).permute(0, 2, 1, 3)
        squared[rows] = ((g_v[rows, None] @ middle @ g_q[None]) * middle).sum((2, 3))
    writer_layer = torch.arange(n)[:, None] // heads
    valid = writer_layer < torch.arange(n)[None, :] // heads
    scores = torch.where(valid, squared.clamp(min=0).sqrt(), 0.0) / (
        ov_norm[:, None] * qk_norm[None, :])
    claimed = float(scores[0, (layers - 1) * heads])
    rank = 1 + int((scores[valid] > claimed).sum())
    flat = sorted(((float(scores[i, j]), i, j) for i, j in valid.nonzero().tolist()),
                  reverse=True)
    return {"rank": float(rank), **{f"L{i // heads}H{i % heads}>L{j // heads}H{j % heads}": s
                                    for s, i, j in flat[:10]}}


def child(row: str, side: str, work: Path, out: Path) -> None:
    """One measurement: the work timed after ``import torch, numpy``; peak RSS at its end."""
    import numpy  # noqa: F401  (both sides have them imported before the clock starts)
    import torch  # noqa: F401

    size = json.loads((work / "size.json").read_text())
    numbers: dict[str, Any] = {}
    if row == "labels" and side == "ours":
        import interp_assert.labels  # noqa: F401  (the row times the expansion alone)
    started, cpu_started = time.perf_counter(), time.process_time()
    if side == "build":
        numbers = build(work)
    elif side != "floor":
        numbers = (ours if side == "ours" else bare)(row, size, work)
    seconds = time.perf_counter() - started
    cpu_seconds = time.process_time() - cpu_started  # all threads: steady on a loaded machine
    out.write_text(json.dumps({"seconds": seconds, "cpu_seconds": cpu_seconds,
                               "peak_mb": peak_rss_mb(),
                               "numbers": numbers}))


def peak_rss_mb() -> float:
    """This process's peak resident set: VmHWM (Linux; reset at exec, so nothing is inherited
    from the parent), else ``ru_maxrss``."""
    import resource

    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 1024


# ----------------------------------------------------------------------------- parent


def build(work: Path) -> dict[str, Any]:
    """Save the random-weight checkpoint (run in a child: the parent never imports torch, so
    the children it starts inherit no memory from it); return the parameter count."""
    sys.path.insert(0, str(ROOT))
    import torch

    from examples.tiny_transformer import TinyConfig, TinyTransformer, save_checkpoint

    size = json.loads((work / "size.json").read_text())
    config = TinyConfig(**{k: size[k] for k in ("n_layers", "d_model", "n_heads", "d_head",
                                                "d_mlp", "d_vocab", "n_ctx")})
    torch.manual_seed(0)
    model = TinyTransformer(config)
    save_checkpoint(work / "model.pt", model)
    return {"params": sum(p.numel() for p in model.parameters())}


def measure(row: str, side: str, work: Path) -> dict[str, Any]:
    """Run one fresh child process and read what it measured."""
    out = work / f"out-{row}-{side}.json"
    out.unlink(missing_ok=True)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(HERE)])}
    done = subprocess.run([sys.executable, str(Path(__file__)), "--child", row, "--side", side,
                           "--work", str(work), "--out", str(out)],
                          capture_output=True, text=True, env=env, cwd=work)
    if done.returncode != 0:
        raise SystemExit(f"{row} ({side}) failed:\n{done.stdout[-3000:]}{done.stderr[-3000:]}")
    return json.loads(out.read_text())


def agree(row: str, ours_numbers: dict[str, Any], bare_numbers: dict[str, Any]) -> float:
    """The largest |difference| between the two sides' numbers; exits when they disagree."""
    if set(ours_numbers) != set(bare_numbers):
        missing = set(ours_numbers) ^ set(bare_numbers)
        raise SystemExit(f"{row}: the two sides computed different numbers: {sorted(missing)[:5]}")
    worst = 0.0
    for key, value in ours_numbers.items():
        other = bare_numbers[key]
        if isinstance(value, str) or isinstance(other, str):
            if value != other:
                raise SystemExit(f"{row}: {key} differs")
            continue
        if value != value and other != other:  # NaN on both sides (a neuron that never fires)
            continue
        diff = abs(value - other)
        if not diff <= TOLERANCE * max(1.0, abs(other)):
            raise SystemExit(f"{row}: {key} = {value} (interp-assert) vs {other} (bare)")
        worst = max(worst, diff)
    return worst


def needed_mb(row: str, size: dict[str, int], params: int, floor: float) -> tuple[float, str]:
    """Bytes the row needs beyond the floor (formula, float32 = 4 B), in MB, and the formula."""
    b, t, v = size["batch"], size["seq"], size["d_vocab"]
    heads, d_mlp = size["n_heads"], size["d_mlp"]
    n_heads = size["n_layers"] * heads
    labels = size["n_layers"] * d_mlp
    formulas = {
        "labels": (labels * (49 + 8 + 8), "n·(str 49+~8 B + 8 B pointer)"),
        "weights": (4 * params, "4·P"),
        "attention": (4 * params + 4 * b * t * v + 4 * b * heads * t * t,
                      "4·P + 4·B·T·V + 4·B·H·T²"),
        "distribution": (4 * params + 4 * b * t * v + 4 * b * t * d_mlp,
                         "4·P + 4·B·T·V + 4·B·T·d_mlp"),
        "kcomp": (4 * params + 8 * n_heads ** 2, "4·P + 8·N²"),
        "ablation": (4 * params + 4 * b * t * v, "4·P + 4·B·T·V"),
    }
    extra, formula = formulas[row]
    return floor + extra / 2**20, formula


def spread(values: list[float]) -> str:
    return f"{statistics.median(values):.3g} ({min(values):.3g}–{max(values):.3g})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes for a smoke run")
    parser.add_argument("--repeats", type=int, default=None,
                        help="paired fresh-process runs per row (default 3, --quick 1)")
    parser.add_argument("--rows", default=",".join(ROWS), help=f"some of {','.join(ROWS)}")
    parser.add_argument("--json", type=Path, help="also write the measurements here")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--side", help=argparse.SUPPRESS)
    parser.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.side, args.work, args.out)
        return
    rows = [r.strip() for r in args.rows.split(",") if r.strip()]
    unknown = [r for r in rows if r not in ROWS]
    if unknown:
        parser.error(f"unknown rows {unknown}; choose from {','.join(ROWS)}")
    repeats = args.repeats or (1 if args.quick else 3)
    size = QUICK if args.quick else FULL
    with tempfile.TemporaryDirectory(prefix="bench-scale-") as tmp:
        work = Path(tmp)
        (work / "size.json").write_text(json.dumps(size))
        for row in ROWS[1:]:
            (work / f"{row}.claims.yaml").write_text(claim_file(row, size, work / "model.pt"))
        params = measure("model", "build", work)["numbers"]["params"]
        floor = statistics.median(measure("labels", "floor", work)["peak_mb"]
                                  for _ in range(max(1, min(repeats, 3))))
        print(f"model: {size['n_layers']} layers, d_model {size['d_model']}, {size['n_heads']} "
              f"heads, d_mlp {size['d_mlp']}, vocab {size['d_vocab']}: P = {params:,} "
              f"parameters; data {size['attn_n']} (distribution {size['dist_n']}) × "
              f"{size['seq']} tokens, batches of B = {size['batch']}; {repeats} paired "
              f"fresh-process repeats; {os.cpu_count()} CPUs; floor (python + torch + numpy) "
              f"{floor:.0f} MB\n")
        report = []
        for row in rows:
            runs: dict[str, list[dict[str, Any]]] = {"ours": [], "bare": []}
            for repeat in range(repeats):
                order = ("ours", "bare") if repeat % 2 == 0 else ("bare", "ours")
                for side in order:
                    runs[side].append(measure(row, side, work))
            worst = max(agree(row, o["numbers"], b["numbers"])
                        for o, b in zip(runs["ours"], runs["bare"]))
            times = {s: [r["seconds"] for r in runs[s]] for s in runs}
            cpu = {s: [r["cpu_seconds"] for r in runs[s]] for s in runs}
            peaks = {s: [r["peak_mb"] for r in runs[s]] for s in runs}
            ratio = [o / b for o, b in zip(times["ours"], times["bare"])]
            mem_ratio = [o / b for o, b in zip(peaks["ours"], peaks["bare"])]
            need, formula = needed_mb(row, size, params, floor)
            report.append({"row": row, "ours_s": times["ours"], "bare_s": times["bare"],
                           "ours_cpu_s": cpu["ours"], "bare_cpu_s": cpu["bare"],
                           "cpu_ratio": [o / b for o, b in zip(cpu["ours"], cpu["bare"])],
                           "ratio": ratio, "ours_mb": peaks["ours"], "bare_mb": peaks["bare"],
                           "mem_ratio": mem_ratio, "needed_mb": need, "formula": formula,
                           "max_abs_diff": worst, "goal": GOALS[row]})
            print(f"  {row}: done (numbers agree, max |diff| {worst:.2g})", flush=True)
            if args.json:  # after every row, so that a long run keeps what it measured
                args.json.write_text(json.dumps({"size": size, "params": params,
                                                 "floor_mb": floor, "rows": report}, indent=1))
        print("\n| row | interp-assert s | bare s | ratio | peak MB | bare peak MB | ratio | "
              "needed MB (floor + formula) | goal |")
        print("|---|---|---|---|---|---|---|---|---|")
        for r in report:
            print(f"| {r['row']} | {spread(r['ours_s'])} | {spread(r['bare_s'])} | "
                  f"{spread(r['ratio'])} | {statistics.median(r['ours_mb']):.0f} | "
                  f"{statistics.median(r['bare_mb']):.0f} | {spread(r['mem_ratio'])} | "
                  f"{r['needed_mb']:.0f} ({r['formula']}) | {r['goal']} |")
        print("\n| row | interp-assert CPU s | bare CPU s | ratio |\n|---|---|---|---|")
        for r in report:
            print(f"| {r['row']} | {spread(r['ours_cpu_s'])} | {spread(r['bare_cpu_s'])} | "
                  f"{spread(r['cpu_ratio'])} |")
        print("\nTimes: the child's work after `import torch, numpy` (median, min–max over the "
              "paired runs; ratio = median of the per-pair ratios); CPU s: the child's CPU "
              "time over all its threads (what a loaded machine disturbs least). Peak: the "
              "peak RSS (VmHWM) of the fresh child. P parameters, B batch, T tokens, V vocab, "
              "H heads per layer, N heads in all.")


if __name__ == "__main__":
    main()
