"""Every claim kind's failure plot on one page: ``contact_sheet.png``.

Runs claim files that exercise every claim kind with failing claims (and one NaN result) on
the bundled models (the adder and its early checkpoint, the induction model's untrained
checkpoint, the gates table),
draws every claim's plot through the Python API (``plots="all"``), and tiles the PNGs into
``<out>/contact_sheet.png``, each tile titled with its claim id and verdict::

    python bench/contact_sheet.py OUT_FOLDER [--columns 4] [--only ID ...] [--colors 256]

``--colors N`` stores the sheet with a palette of N colours (Pillow, no dithering): about a
fifth of the size (docs/images/contact_sheet.png was made with ``--colors 256``).

The claim files are written into ``OUT_FOLDER/claims/``; the single plots into
``OUT_FOLDER/plots/``. Nothing is downloaded.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ADDER = ROOT / "examples" / "adder"
INDUCTION = ROOT / "examples" / "induction"

#: (claim id, sentence, extra YAML keys): on the trained adder; every one of them fails
ADDER_CLAIMS = [
    ("compare-ci", "exact-match ≤ 50% with 95% confidence", {}),
    ("within", "token-accuracy within 0.001 of 0.5", {}),
    ("aggregate", "all of N104, N206, N218, N7, N9 of neurons norm > 1.2", {}),
    ("nan-value", "no-answer ≥ 0", {}),
    ("cluster", "N104,N206,N218,N7,N9 cluster with cos > 0.5", {"on": "neuron_logits"}),
    ("cluster-apart", "N104,N206 cluster with cos > 0.5 apart from N218, N7 with cos < 0.3",
     {"on": "neuron_logits"}),
    ("cluster-of", "the cluster of N104 at cos > 0.5 includes N206, N7 and excludes N218",
     {"on": "neuron_logits"}),
    ("close", "A·V ≈ [-4, -3.7, -3.3, -3, -2.5, 1.5, 2.9, 3.6, 4.2, 4] within 0.15", {}),
    ("orthogonal", "N104, N206, N7, N9 orthogonal within 0.3", {"on": "neuron_logits"}),
    ("monotone", "A·V monotone decreasing over digits", {}),
    ("arg-extreme", "argmin of A·V over digits is 9", {}),
    ("top-k", "L1N44, L1N7 in top 2 of congruence(4)", {}),
    ("ranks-above", "L1N7 ranks above L1N44 in congruence(4)", {}),
    ("attention-template", "L0H0: A{i} attends to X{i+1}, Y{i+1} ≥ 0.97 for i in 0..8", {}),
    ("top-sources", "L0H3: top-1 sources of A3 include Y4", {}),
    ("ablate-sweep", "ablate L0H2 (mean): exact-match drops by ≥ 50 points", {}),
    ("ablate-control", "ablate L0H2 (mean): exact-match drops by ≥ 50 points while 6 random "
                       "sets of the same size drop by ≤ 10 points", {}),
    ("effective-rank", "effective rank of W_OV[L0H0] at 90% energy ≤ 3", {}),
    ("head-neuron", "score(L0H2 → L1N7) above the 99th percentile of all head→neuron scores",
     {}),
    ("congruence", "congruence of L1N44, L1N7, L1N9 with 4 ≥ 0.3", {}),
    ("composition", "K-composition of L0H0 into L1H0 ≥ 0.5", {}),
    ("composition-rank", "L0H2 → L1H1 ranks first in K-composition", {}),
    ("reaches", "log reaches 0.99 by step 300", {}),
    ("stays", "log stays ≥ 0.9 from step 0", {}),
    ("final-value", "final log < 0.5", {}),
    ("circle", "pca(neurons[N0:N9], 2) lies on a circle within 0.3 in order", {}),
    ("links", "head-neuron > 0.3 links L0H0, L0H2 to L0N90, L0N102 only", {}),
    ("ecdf-fraction", "abs(pairs(cos(neurons))) has fraction x <= 0.1 >= 0.9", {}),
    ("cluster-template", "N104, N{i} cluster with cos > 0.5 for i in 205..208",
     {"on": "neuron_logits"}),
    ("top-k-template", "L1N{i} in top 3 of congruence(4) for i in 42..46", {}),
]

#: on the adder's early checkpoint (adder_early.pt), which still makes mistakes
EARLY_CLAIMS = [
    ("for-all", "for all a in integers(0, 9999999999), b in integers(0, 9999999999): "
                "examples.adder.check:adds_correctly(a, b)", {"max_examples": 50}),
    ("digit-template", "digit-error at A{i} ≤ 1% for i in 0..10", {}),
]

GATES_CLAIMS = [
    ("distribution-every", "every head of aligned_dist has kurtosis in [-1, 0]", {}),
    ("distribution-modes", "aligned_dist[L0H0] is multimodal", {}),
    ("distribution-centred", "every head of layer_scaled(peak_centred(aligned_dist)) has "
                             "quantile 0.9 < 0.01", {}),
]

INDUCTION_CLAIMS = [
    ("patch", "patch L0H0, L0H1, L0H2, L0H3 from clean into corrupted: loss-repeated "
              "recovers ≤ 50%", {}),
]


def _yaml_claims(claims: list[tuple[str, str, dict]]) -> str:
    import json

    lines = ["claims:"]
    for claim_id, sentence, extra in claims:
        lines.append(f"  - id: {claim_id}")
        lines.append(f"    claim: {json.dumps(sentence, ensure_ascii=False)}")
        lines.extend(f"    {key}: {json.dumps(value)}" for key, value in extra.items())
    return "\n".join(lines) + "\n"


def write_claim_files(folder: Path) -> list[Path]:
    """The claim files of the sheet, written into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    adder_spec = (ROOT / "specs" / "adder.claims.yaml").read_text(encoding="utf-8")
    head = adder_spec.split("\nclaims:", 1)[0]
    head = head.replace("../examples/", f"{ROOT / 'examples'}/")
    head = head.replace("quantities:\n", "quantities:\n  no-answer:\n    expr: log(exact-match - 2)"
                        "\n    doc: the log of a negative number, NaN on purpose\n", 1)
    adder = folder / "adder_failing.claims.yaml"
    adder.write_text(head + "\n" + _yaml_claims(ADDER_CLAIMS), encoding="utf-8")
    early = folder / "adder_early.claims.yaml"
    early.write_text(head.replace("adder.pt", "adder_early.pt") + "\n"
                     + _yaml_claims(EARLY_CLAIMS), encoding="utf-8")
    gates_spec = (ROOT / "specs" / "gates.claims.yaml").read_text(encoding="utf-8")
    gates = folder / "gates_failing.claims.yaml"
    gates.write_text(gates_spec.split("\nclaims:", 1)[0].replace(
        "../examples/", f"{ROOT / 'examples'}/") + "\n" + _yaml_claims(GATES_CLAIMS),
        encoding="utf-8")
    spec = (ROOT / "specs" / "induction.claims.yaml").read_text(encoding="utf-8")
    spec = spec.split("\nclaims:", 1)[0].replace("../examples/", f"{ROOT / 'examples'}/")
    spec = spec.replace("induction.pt", "step_0000.pt")
    induction = folder / "induction_untrained.claims.yaml"
    induction.write_text(spec + "\n" + _yaml_claims(INDUCTION_CLAIMS), encoding="utf-8")
    return [adder, early, gates, induction]


def tile(images: list[tuple[str, Path]], path: Path, columns: int) -> Path:
    """Tile the PNGs into one figure, each under its caption."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.image as mpimg
    from matplotlib.figure import Figure

    rows = max(1, -(-len(images) // columns))
    figure = Figure(figsize=(5.0 * columns, 3.6 * rows), dpi=80)
    for n, (caption, png) in enumerate(images):
        ax = figure.add_subplot(rows, columns, n + 1)
        ax.imshow(mpimg.imread(png))
        ax.set_title(caption, fontsize=10)
        ax.axis("off")
    figure.subplots_adjust(left=0.005, right=0.995, top=0.985, bottom=0.005, wspace=0.02,
                           hspace=0.12)
    figure.savefig(path)
    return path


def quantize(path: Path, colors: int) -> Path:
    """Rewrite the PNG at ``path`` with a palette of ``colors`` colours (no dithering)."""
    from PIL import Image

    with Image.open(path) as image:
        palette = image.convert("RGB").quantize(colors=colors,
                                                method=Image.Quantize.FASTOCTREE,
                                                dither=Image.Dither.NONE)
    palette.save(path, optimize=True)
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path, help="output folder")
    parser.add_argument("--columns", type=int, default=4)
    parser.add_argument("--only", nargs="*", help="only these claim ids")
    parser.add_argument("--colors", type=int, help="store the sheet with this many colours")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    from interp_assert.drivers.api import load

    out = args.out.resolve()
    images: list[tuple[str, Path]] = []
    start = time.perf_counter()
    for claim_file in write_claim_files(out / "claims"):
        plots = out / "plots" / claim_file.name.split(".")[0]
        results = load(claim_file).run(plot_dir=plots, plots="all", root=ROOT,
                                       select=args.only)
        for result in results:
            claim_id, word = result.claim_id, result.judgement.verdict.value
            if result.plot is None:
                print(f"{claim_id}: no plot ({word}; {result.error or ''})")
                continue
            images.append((f"{claim_id} [{word}]", Path(result.plot)))
    sheet = tile(images, out / "contact_sheet.png", args.columns)
    if args.colors:
        quantize(sheet, args.colors)
    print(f"{len(images)} plots tiled into {sheet} in {time.perf_counter() - start:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
