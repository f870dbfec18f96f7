"""Both columns of examples/notebooks/README.md: each notebook claim's value as interp-assert
measures it, and the same number computed here straight from the checkpoint or table with
numpy/torch/pandas/scipy (nothing from interp_assert).

    python -m examples.notebooks.values          # prints the Markdown table

``tests/test_notebooks.py`` asserts that the two columns agree.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import cache
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
EXAMPLES = HERE.parent
ADDER = EXAMPLES / "adder" / "checkpoints" / "adder.pt"
GATES = EXAMPLES / "gates" / "gates.csv"
FILES = {
    "000": HERE / "000_projector_gates.claims.yaml",
    "001": HERE / "001_unembedding_mlp_directions.claims.yaml",
    "002": HERE / "002_adder_visual_analysis.claims.yaml",
    "003": HERE / "003_activation_distributions.claims.yaml",
    "004": HERE / "004_circuit_analysis.claims.yaml",
}
#: adder positions: X0..X9 = 0..9, "+" = 10, Y0..Y9 = 11..20, "=" = 21, A0..A10 = 22..32
X, Y, A = 0, 11, 22


# --- shared inputs -------------------------------------------------------------------------

@cache
def checkpoint() -> dict:
    import torch

    return torch.load(ADDER, weights_only=True)


def w(name: str) -> np.ndarray:
    """A weight of the adder's state dict as float64."""
    return checkpoint()["model_state_dict"][name].double().numpy()


@cache
def gates() -> tuple:
    """Per head: the per-sample nanmean scalars, and the gate logit."""
    import pandas as pd

    df = pd.read_csv(GATES)
    df["m"] = df["aligned_attn"].apply(lambda s: float(np.nanmean(json.loads(s))))
    samples = {h: g["m"].to_numpy() for h, g in df.groupby("head")}
    logits = {h: float(g["ov_logit"].unique()[0]) for h, g in df.groupby("head")}
    return samples, logits


def cos_table(m: np.ndarray) -> np.ndarray:
    u = m / np.linalg.norm(m, axis=1, keepdims=True)
    return u @ u.T


def layer_norm(x: np.ndarray) -> np.ndarray:
    c = x - x.mean(-1, keepdims=True)
    return c / np.sqrt((c ** 2).mean(-1, keepdims=True) + 1e-5)


def unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def orthogonalize(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    bh = b / np.linalg.norm(b)
    return a - (a @ bh) * bh


def rank_of(values: np.ndarray, i: int) -> int:
    """1 + the number of entries larger than entry i."""
    return int(1 + np.sum(values > values[i]))


# --- 000: gates table ----------------------------------------------------------------------

def _000_enabled_scalar_mean() -> float:
    samples, logits = gates()
    return float(np.mean([samples[h].mean() for h in sorted(logits) if logits[h] >= 0]))


def _000_fraction_heads(test: Callable[[np.ndarray], bool]) -> float:
    samples, _ = gates()
    return float(np.mean([test(v) for v in samples.values()]))


# --- 001: directions -----------------------------------------------------------------------

@cache
def congruence() -> np.ndarray:
    """[neuron, digit]: layer-normed W_out rows against the digit unembedding columns."""
    return layer_norm(w("blocks.1.mlp.W_out")) @ w("unembed.W_U")[:, :10]


def _001_orthogonal() -> float:
    u = w("unembed.W_U").T[:10]
    c = np.abs(cos_table(u))
    return float(c[np.triu_indices(10, 1)].max())


def _001_right_minus_left() -> np.ndarray:
    c = congruence()
    return c[:, 9] - c[:, 0]


def _001_orth_dot() -> float:
    u = w("unembed.W_U").T
    return float(abs(orthogonalize(u[9], u[0]) @ orthogonalize(u[0], u[9])))


def _001_top3_count() -> float:
    c = congruence()
    order = np.argsort(-c, axis=1, kind="stable")[:, :3]
    return float(np.bincount(order.ravel(), minlength=10).max())


# --- 002 and 003: forward passes -----------------------------------------------------------

@cache
def adder_run(n: int, seed: int) -> dict:
    """Logits and captured activations of the adder on generate(n, seed), by plain torch."""
    import torch

    from examples.adder.data import generate
    from examples.tiny_transformer import load

    model = load(checkpoint())
    data = generate(n, seed)
    captured: dict[str, np.ndarray] = {}
    hooks = []
    for name in ("blocks.0.attn.hook_pattern", "blocks.0.attn.hook_z", "blocks.0.mlp.hook_post"):
        def keep(_m, _i, out, name=name) -> None:
            captured[name] = out.detach().double().numpy()
        hooks.append(model.get_submodule(name).register_forward_hook(keep))
    with torch.no_grad():
        logits = model(data["tokens"])
    for h in hooks:
        h.remove()
    answer = np.arange(A, A + 11)
    predictions = logits[:, answer - 1].argmax(-1).numpy()
    wrong = predictions != data["tokens"][:, answer].numpy()
    return {"wrong": wrong, "carry": data["carry"].numpy() != 0, **captured}


def _002_attends(head: int, pairs: list[tuple[int, list[int]]], bound: float) -> float:
    mean = adder_run(500, 42)["blocks.0.attn.hook_pattern"].mean(0)[head]  # [query, key]
    return float(np.mean([mean[q, keys].sum() >= bound for q, keys in pairs]))


def _002_top3_rank() -> float:
    row = adder_run(500, 42)["blocks.0.attn.hook_pattern"].mean(0)[0, A + 4]
    order = list(np.argsort(-row, kind="stable"))
    return float(max(order.index(X + 5), order.index(Y + 5)) + 1)


def _002_av_python() -> float:
    """examples/adder/analysis.py's readout, redone in numpy: ln1(W_E[d] + W_pos[p]) over the
    20 operand positions, through the carry head L0H3, centred, on the top right-singular
    vector; the smallest step (sign fixed so digit 9 > digit 0)."""
    pos = list(range(0, 10)) + list(range(11, 21))
    resid = w("embed.W_E")[:10, None, :] + w("pos_embed.W_pos")[None, pos, :]
    normed = layer_norm(resid) * w("blocks.0.ln1.w") + w("blocks.0.ln1.b")
    vec = (normed @ w("blocks.0.attn.W_V")[3] @ w("blocks.0.attn.W_O")[3]).mean(1)
    centred = vec - vec.mean(0)
    r = centred @ np.linalg.svd(centred, full_matrices=False)[2][0]
    r = r if r[9] >= r[0] else -r
    return float(np.diff(r).min())


def _002_av_yaml() -> float:
    """The YAML readout: parameter-free layer norm of W_E[0..9] through W_OV of L0H3. Either
    direction may hold; the value is the smallest step in the better one."""
    ov = w("blocks.0.attn.W_V")[3] @ w("blocks.0.attn.W_O")[3]
    vec = layer_norm(w("embed.W_E")[:10]) @ ov
    centred = vec - vec.mean(0)
    r = centred @ np.linalg.svd(centred, full_matrices=False)[2][0]
    return float(max(np.diff(r).min(), np.diff(-r).min()))


def _002_first_step(column: str, bound: float) -> float:
    import pandas as pd

    log = pd.read_csv(EXAMPLES / "adder" / "train_log.csv")
    return float(log.loc[log[column] >= bound, "step"].iloc[0])


# --- 003: distributions --------------------------------------------------------------------

def channels(name: str) -> np.ndarray:
    """[channel, values]: the activation pooled over batch and positions; one channel per
    remaining coordinate (per (head, d_head) pair for hook_z [batch, pos, head, d_head])."""
    a = adder_run(200, 7)[name]
    return a.reshape(a.shape[0] * a.shape[1], -1).T


def head_values(name: str, head: int) -> np.ndarray:
    """Every value of one head of a [batch, pos, head, d_head] activation, flattened."""
    return adder_run(200, 7)[name][:, :, head, :].reshape(-1)


def _003_heads(test: Callable[[np.ndarray], bool]) -> float:
    """Share of hook_z's heads whose pooled values pass ``test``."""
    return float(np.mean([test(head_values("blocks.0.attn.hook_z", h)) for h in range(4)]))


def _003_head_channels(head: int, share: Callable[[np.ndarray], float], bound: float) -> float:
    """Share of one head's d_head channels whose ``share`` reaches ``bound``."""
    a = adder_run(200, 7)["blocks.0.attn.hook_z"][:, :, head, :]
    return float(np.mean([share(c) >= bound for c in a.reshape(-1, a.shape[-1]).T]))


def notebook_peak(acts: np.ndarray) -> float:
    """The notebook's own peak finder: a 50-bin histogram, scipy find_peaks(height=200,
    distance=40), the peak nearest 0, widened to the middle of a broad plateau."""
    from scipy.signal import find_peaks

    counts, bins = np.histogram(acts, bins=50)
    mids = (bins[:-1] + bins[1:]) / 2
    peaks, _ = find_peaks(np.concatenate([[0], counts, [0]]), height=200, distance=40)
    peaks = peaks - 1  # zero-padded so that a spike in the first bin (ReLU) counts
    peak = peaks[np.argmin(np.abs(mids[peaks]))]
    close = counts * 2 > counts[peak]
    lo, hi = peak, peak
    while lo > 0 and close[lo]:
        lo -= 1
    while hi < len(close) and close[hi]:
        hi += 1
    if hi - lo > 20:
        peak = (lo + hi) // 2
    return float(mids[peak])


def _003_peaks_near_zero(name: str, within: float) -> float:
    return float(np.mean([abs(notebook_peak(c)) <= within * c.std() for c in channels(name)]))


def _003_fraction(name: str, share: Callable[[np.ndarray], float], bound: float) -> float:
    return float(np.mean([share(c) >= bound for c in channels(name)]))


# --- 004: circuits -------------------------------------------------------------------------

@cache
def ov(layer: int, head: int) -> np.ndarray:
    return w(f"blocks.{layer}.attn.W_V")[head] @ w(f"blocks.{layer}.attn.W_O")[head]


@cache
def head_neuron(k: int = 32) -> np.ndarray:
    """[head, neuron] (L0H0..L1H3 × L0N0..L1N255): max |cos| over the head's top k right
    singular vectors with the neuron's W_in column; NaN where the head is in a later layer."""
    scores = np.full((8, 512), np.nan)
    for hl in range(2):
        for h in range(4):
            vh = np.linalg.svd(ov(hl, h))[2][:k]
            for nl in range(hl, 2):
                w_in = unit(w(f"blocks.{nl}.mlp.W_in").T)
                scores[hl * 4 + h, nl * 256:(nl + 1) * 256] = np.abs(vh @ w_in.T).max(0)
    return scores


def _004_effective_rank() -> float:
    s = np.linalg.svd(ov(0, 0), compute_uv=False)
    energy = np.cumsum(s ** 2) / np.sum(s ** 2)
    return float(1 + np.sum(energy < 0.9 - 1e-12))


def _004_above_percentile() -> float:
    scores = head_neuron()
    value = scores[0, 90]
    assert value > np.quantile(scores[np.isfinite(scores)], 0.999)
    return float(value)


def _random_edges_past(scores: np.ndarray, n: int, level: float) -> int:
    """The notebook's control, seeded: n edges drawn without replacement (seed 0)."""
    drawn = scores[np.sort(np.random.default_rng(0).choice(scores.size, n, replace=False))]
    return int(np.sum(drawn > np.quantile(scores, level)))


# --- the table -----------------------------------------------------------------------------

def _svd(m: np.ndarray) -> tuple:
    return np.linalg.svd(m)


#: (notebook, claim id) -> (the notebook's analysis, the independent value)
INDEPENDENT: dict[tuple[str, str], tuple[str, Callable[[], float]]] = {
    ("000", "enabled-gates"): ("gate enabled iff logit ≥ 0, counted",
                               lambda: float(sum(v >= 0 for v in gates()[1].values()))),
    ("000", "enabled-iff-sigmoid"): ("sigmoid(logit) of the enabled gates (worst)", lambda: float(
        min(1 / (1 + np.exp(-gates()[1][h])) for h in ("L0H0", "L0H1", "L1H0")))),
    ("000", "disabled-gates"): ("skipped projectors, logit < 0 (worst)", lambda: float(
        max(gates()[1][h] for h in ("L0H2", "L0H3", "L1H1", "L1H2", "L1H3")))),
    ("000", "enabled-scalar-mean"): ("nanmean scalars, enabled projectors only",
                                     _000_enabled_scalar_mean),
    ("000", "sum-projectors-high"): ("per-projector mean of per-sample nanmeans (worst)",
                                     lambda: float(min(gates()[0]["L0H0"].mean(),
                                                       gates()[0]["L0H1"].mean()))),
    ("000", "scalars-in-unit-range"): ("histograms on xlim(0, 1): share of projectors ≥ 0",
                                       lambda: _000_fraction_heads(lambda v: v.min() >= 0)),
    ("000", "scalars-below-one"): ("histograms on xlim(0, 1): share of projectors ≤ 1",
                                   lambda: _000_fraction_heads(lambda v: v.max() <= 1)),
    ("000", "enabled-histogram-high"): ("histogram of an enabled projector (10% quantile)",
                                        lambda: float(np.quantile(gates()[0]["L0H0"], 0.1))),
    ("001", "unembed-norms"): ("norms of the unembedding rows (smallest)",
                               lambda: float(np.linalg.norm(w("unembed.W_U"), axis=0).min())),
    ("001", "unembed-bias-small"): ("unembedding bias is small (max |b|)",
                                    lambda: float(np.abs(w("unembed.b_U")).max())),
    ("001", "unembed-nearly-orthogonal"): ("cosine heatmap of the unembedding (max |cos|)",
                                           _001_orthogonal),
    ("001", "cluster-of-n104"): ("cluster from an exemplar, |cos| > t (min over listed)",
                                 lambda: float(np.abs(cos_table(congruence())[104,
                                                                              [206, 218]]).min())),
    ("001", "digit-9-group"): ("listed neurons cluster (min pairwise cos)", lambda: float(
        min(cos_table(congruence())[i, j] for i, j in ((104, 206), (104, 218), (206, 218))))),
    ("001", "out-directions-spread"): ("cosine table of W_out (count |cos| > 0.5)", lambda: float(
        np.sum(np.abs(cos_table(w("blocks.1.mlp.W_out"))) > 0.5))),
    ("001", "in-directions-spread"): ("cosine table of W_in (count |cos| > 0.5)", lambda: float(
        np.sum(np.abs(cos_table(w("blocks.1.mlp.W_in").T)) > 0.5))),
    ("001", "right-minus-left-top"): ("right − left congruence, rank of N206",
                                      lambda: float(rank_of(_001_right_minus_left(), 206))),
    ("001", "n104-right-over-left"): ("right − left congruence, rank of N104",
                                      lambda: float(rank_of(_001_right_minus_left(), 104))),
    ("001", "orthogonalised-directions"): ("right_not_left · left_not_right", _001_orth_dot),
    ("001", "congruence-kurtosis"): ("kurtosis of each neuron's congruence (max)", lambda: float(
        __import__("scipy.stats").stats.kurtosis(congruence(), axis=1).max())),
    ("001", "top-3-digits-counted"): ("top-k per neuron, counted across neurons (max)",
                                      _001_top3_count),
    ("001", "embedding-norm-restriction"): ("embedding rows with norm > 0.8", lambda: float(
        np.sum(np.linalg.norm(w("embed.W_E"), axis=1) > 0.8))),
    ("001", "in-directions-vs-unembedding"): ("W_in directions vs unembedding (max |cos|)",
                                              lambda: float(np.abs(unit(w("blocks.1.mlp.W_in").T)
                                                                   @ unit(w("unembed.W_U").T).T
                                                                   ).max())),
    ("001", "out-directions-vs-embedding-kurtosis"): (
        "W_out vs embedding congruence, kurtosis per neuron (max)", lambda: float(
            __import__("scipy.stats").stats.kurtosis(
                unit(w("blocks.1.mlp.W_out")) @ unit(w("embed.W_E")).T, axis=1).max())),
    ("002", "exact-match"): ("exact match", lambda: float(
        np.mean(~adder_run(500, 42)["wrong"].any(1)))),
    ("002", "per-position-error"): ("per-position error ≤ 1% (share of A0..A10)", lambda: float(
        np.mean(adder_run(500, 42)["wrong"].mean(0) <= 0.01))),
    ("002", "carry-split-error"): ("error by position + carry (share of A1..A9)", lambda: float(
        np.mean([adder_run(500, 42)["wrong"][adder_run(500, 42)["carry"][:, i], i].mean()
                 <= adder_run(500, 42)["wrong"][~adder_run(500, 42)["carry"][:, i], i].mean()
                 + 0.02 for i in range(1, 10)]))),
    ("002", "answer-attends-operands"): ("avg attention answer → operands (share of A0..A8)",
                                         lambda: _002_attends(0, [(A + i, [X + i + 1, Y + i + 1])
                                                                  for i in range(9)], 0.8)),
    ("002", "top-3-sources"): ("top-3 attention sources of A4 (worst rank)", _002_top3_rank),
    ("002", "carry-head-attends"): ("carry head → the place below (share of A0..A9)",
                                    lambda: _002_attends(3, [(A + i, [X + i, Y + i])
                                                             for i in range(10)], 0.5)),
    ("002", "av-monotone"): ("rank-1 A·V readout, monotone (smallest step)", _002_av_python),
    ("002", "av-monotone-yaml"): ("A·V in YAML, simplified (open; smallest step)", _002_av_yaml),
    ("002", "norm-weights"): ("norm weights vs recorded values (max |deviation|)", lambda: float(
        np.abs(w("blocks.0.ln1.w")[:5]
               - [1.0225, 0.9898, 0.9818, 1.0016, 0.9693]).max())),
    ("002", "trajectory-exact"): ("training trajectory: first step with val_exact ≥ 0.99",
                                  lambda: _002_first_step("val_exact", 0.99)),
    ("002", "trajectory-token-acc"): ("training trajectory: final val_tok_acc", lambda: float(
        __import__("pandas").read_csv(EXAMPLES / "adder" / "train_log.csv")
        ["val_token_acc"].iloc[-1])),
    ("002", "checkpoint-step"): ("the checkpoint's step", lambda: float(checkpoint()["step"])),
    ("002", "checkpoint-heads"): ("config stored in the checkpoint",
                                  lambda: float(checkpoint()["config"]["n_heads"])),
    ("003", "attn-peaks-near-zero"): ("peak near 0 (share of hook_z channels)",
                                      lambda: _003_peaks_near_zero("blocks.0.attn.hook_z", 1)),
    ("003", "attn-zeroness"): ("zero-ness: |x| < 1 std on ≥ half (share)", lambda: _003_fraction(
        "blocks.0.attn.hook_z", lambda c: np.mean(np.abs(c) < c.std()), 0.5)),
    ("003", "mlp-mostly-zero"): ("zeroed MLP neurons (share)", lambda: _003_fraction(
        "blocks.0.mlp.hook_post", lambda c: np.mean(np.abs(c) < 0.001), 0.3)),
    ("003", "mlp-peak-at-zero"): ("peak near 0 (share of MLP neurons)",
                                  lambda: _003_peaks_near_zero("blocks.0.mlp.hook_post", 0.5)),
    ("003", "attn-head-zeroness"): ("per-head distributions: |x| < 1 std (share of heads)",
                                    lambda: _003_heads(
                                        lambda x: np.mean(np.abs(x) < x.std()) >= 0.7)),
    ("003", "attn-head-peak"): ("per-head distributions: peak near 0 (share of heads)",
                                lambda: _003_heads(
                                    lambda x: abs(notebook_peak(x)) <= 0.15 * x.std())),
    ("003", "attn-zeroed-in-one-head"): ("zeroed neurons of head L0H2 (share)",
                                         lambda: _003_head_channels(
                                             2, lambda c: np.mean(np.abs(c) < c.std()), 0.5)),
    ("004", "ov-effective-rank"): ("SVD of W_OV: effective rank at 90%", _004_effective_rank),
    ("004", "ov-rank-is-d-head"): ("W_OV keeps 32 directions", lambda: float(
        np.sum(np.linalg.svd(ov(0, 0), compute_uv=False) > 0.001))),
    ("004", "top-edge-above-999"): ("head→neuron score above the 99.9th percentile",
                                    _004_above_percentile),
    ("004", "edges-beyond-threshold"): ("edges beyond a threshold, counted", lambda: float(
        np.sum(np.nan_to_num(head_neuron(), nan=0) > 0.4))),
    ("004", "neuron-edges"): ("heads by neuron (L0N90)",
                              lambda: float(np.sum(head_neuron()[:4, 90] > 0.4))),
    ("004", "random-edge-control"): ("768 random edges past the 99.9th percentile", lambda: float(
        _random_edges_past(head_neuron()[:4].reshape(-1), 768, 0.999))),
    ("004", "ov-writes-to-tokens"): ("heads' SVD onto the unembedding (max |cos|)", lambda: float(
        np.abs(_svd(ov(0, 0))[2][:32] @ unit(w("unembed.W_U").T).T).max())),
    ("004", "ov-reads-tokens"): ("embedding into heads' SVD (max |cos|)", lambda: float(
        np.abs(_svd(ov(0, 0))[0][:, :32].T @ unit(w("embed.W_E")).T).max())),
}

INDEPENDENT.update(__import__("examples.notebooks.values_extra", fromlist=["INDEPENDENT"])
                   .INDEPENDENT)

#: analyses of the notebooks that no claim reproduces: (notebook, analysis, why), the why
#: starting "not expressible" or "left out"
NOT_EXPRESSIBLE = [
    ("000", "per-projector histogram has one bump",
     "left out: it can be written (`scalar_dist[L0H0] is unimodal`, it holds), but the "
     "project's peak finder has no independent reference here"),
    ("002", "positions in Q/K space (2-D)",
     "left out: the 62p model's q_proj of positions has no counterpart in the bundled adder"),
    ("002", "off-by histogram of errors",
     "left out: `error_direction` expresses it, but the bundled adder makes no errors on "
     "these sums, so there is nothing to histogram"),
    ("002", "out_proj |A| (read) vs |B| (write)",
     "left out: the 62p model's rank-1 out_proj has no counterpart in the bundled adder"),
    ("003", "several peaks per neuron",
     "left out: `is unimodal` writes it, but the project's peak finder is not the "
     "notebook's find_peaks(height=200, distance=40); no independent number"),
]


def project_values() -> dict[tuple[str, str], object]:
    """Every claim's result (``ClaimResult``) by (notebook, claim id), run by interp-assert."""
    import interp_assert

    return {(nb, r.claim_id): r for nb, path in FILES.items()
            for r in interp_assert.load(path).run()}


def cell(text: str) -> str:
    """Text for a Markdown table cell."""
    return text.replace("|", "\\|")


def main() -> None:
    results = project_values()
    print("| notebook | analysis | claim | verdict | project's value | independent value |")
    print("|---|---|---|---|---|---|")
    for (nb, claim_id), (analysis, independent) in INDEPENDENT.items():
        r = results[(nb, claim_id)]
        value = r.outcome.value if r.outcome is not None else None
        print(f"| {nb} | {cell(analysis)} | `{cell(r.sentence)}` | {r.verdict.value} "
              f"| {value:.6g} | {independent():.6g} |")
    for nb, analysis, why in NOT_EXPRESSIBLE:
        print(f"| {nb} | {cell(analysis)} | {cell(why)} | | | |")


if __name__ == "__main__":
    main()
