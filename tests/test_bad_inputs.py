"""Bad inputs and the message each one gets: one table, readable as documentation.

Every row is a claim file (or a few files next to it) with one bad input. The bad claim has the
id ``bad``; a good claim (``good``) follows it in the same file. For each row the test checks:

* the message names the problem (``expect``) and, where it is about a place in the claim file,
  that place as ``model.claims.yaml:LINE:COLUMN:`` (``at``: the text found at that place);
* the error is interp-assert's own (``error``: a subclass of ``InterpAssertError``), with no
  traceback of the library's internals (only the user's own frames, for user code errors);
* the other claims of the file still run: the good claim passes (``others="pass"``), or, when
  the bad input is the subject itself (a broken checkpoint), it reports the same error.

``level`` says where the bad input surfaces:

* ``claim``: an ERROR result for that claim (``load(path).run()``), the others evaluated;
* ``file``: the whole file is refused (``load`` raises ``SpecError``; pytest: collection error);
* ``validate``: reported by ``validate(path)`` (a quantity no claim uses), claims still run;
* ``fails``: the claim is evaluated and FAILS (NaN and inf never pass);
* ``check``: ``interp_assert.check(sentence, load(path))`` raises the error;
* ``pytest``: the file is run by pytest (``pytester``), for the outcome pytest reports.

The messages in README.md's "Errors you may see" each appear in some row (marked ``README``).
"""

from __future__ import annotations

import re
import textwrap
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import torch
from conftest import QUANTITIES, claim_file_text, save_checkpoint, tiny_state_dict, write_claims

import interp_assert as ia
from interp_assert.errors import (
    CheckpointError,
    ClaimSyntaxError,
    InterpAssertError,
    QuantityError,
    SpecError,
    UnknownNameError,
    UserCodeError,
)

FILE = "model.claims.yaml"
GOOD = "N0, N1, N3 cluster with cos > 0.9"


@dataclass(frozen=True)
class Row:
    id: str
    claims: str = ""                        # YAML list items; the bad claim has id 'bad'
    expect: tuple[str, ...] = ()            # fragments of the message
    error: type[Exception] | None = InterpAssertError
    at: str | tuple[str, int] | None = None  # the message names FILE:line:column of this
    #                                         text, or of (text, so many characters on)
    level: str = "claim"
    quantities: str = ""                    # more quantities (after QUANTITIES)
    data: str = ""                          # a top-level 'data:' section
    subject: str = ""                       # more keys under 'subject:'
    checkpoint: str = "model.pt"
    files: Mapping[str, str | bytes] = field(default_factory=dict)  # next to the claim file
    setup: Callable[[Path], None] | None = None
    text: str | None = None                 # the whole claim file instead
    concerns: str = "bad"                   # id of the claim the message is about
    good: str = GOOD                        # the good claim that still runs
    others: str = "pass"                    # what the good claim does: pass / error
    outcomes: Mapping[str, int] = field(default_factory=dict)  # level 'pytest'


# ---- files the rows need -----------------------------------------------------------------------
def truncated_checkpoint(folder: Path) -> None:
    save_checkpoint(folder / "full.pt")
    data = (folder / "full.pt").read_bytes()
    (folder / "cut.pt").write_bytes(data[: len(data) // 2])


def pickled_checkpoint(folder: Path) -> None:
    import argparse

    torch.save({"model_state_dict": tiny_state_dict(), "args": argparse.Namespace(lr=0.1)},
               folder / "pickled.pt")


def checkpoint_without_state_dict(folder: Path) -> None:
    torch.save({"epoch": 3, "step": 1200}, folder / "meta.pt")


def checkpoint_with_nan_and_inf(folder: Path) -> None:
    state = tiny_state_dict()
    state["blocks.0.mlp.W_out"][2, 1] = float("nan")
    state["readout"][4] = float("inf")
    save_checkpoint(folder / "model.pt", state)


USER_CODE = '''
import numpy as np


def _helper(x):
    return 1 / 0


def exploding(state_dict):
    return _helper(state_dict)


def text(state_dict):
    return "hello"


def generate(n, seed):
    raise ValueError("the generator broke")


def load(checkpoint):
    return _helper(checkpoint)
'''

TABLE = "head,score\nL0H0,0.5\nL0H1,0.7\n"


def user_files(module: str) -> dict[str, str]:
    return {f"{module}.py": USER_CODE}


def q(text: str) -> str:
    """Quantity definitions, one per line, indented under 'quantities:'."""
    return textwrap.indent(textwrap.dedent(text).strip("\n") + "\n", "  ")


# ---- the table -----------------------------------------------------------------------------------
ROWS = [
    # -- the claim language: the sentence does not parse (line and column of the culprit) --
    Row("syntax-doubled-operator",  # README (the second '≥' is the one reported)
        "- id: bad\n  claim: N0, N1 cluster with cos ≥≥ 0.5",
        ("claim 'bad': unexpected '≥'", "\n    N0, N1 cluster with cos ≥≥ 0.5\n    "
         + " " * 25 + "^\n", "hint: expected"),
        ClaimSyntaxError, at="≥ 0.5"),
    Row("syntax-ends-too-early",
        "- id: bad\n  claim: N0, N1 cluster with cos >",
        ("claim 'bad': the claim ends too early", "hint: expected", "a number"),
        ClaimSyntaxError, at=("cos >\n", 5)),
    Row("syntax-stray-character",
        "- id: bad\n  claim: norm(N0) $ 1",
        ("claim 'bad': unexpected '$'",), ClaimSyntaxError, at="$ 1"),
    Row("syntax-in-quoted-sentence",
        "- id: bad\n  claim: \"norm(N0 > 1\"",
        ("claim 'bad': unexpected '>'", "')'"), ClaimSyntaxError, at="> 1\""),
    Row("syntax-in-block-scalar-second-line",
        "- id: bad\n  claim: >\n    all of N0, N1\n    norm >> 1",
        ("claim 'bad': unexpected '>'", "    all of N0, N1 norm >> 1\n"), ClaimSyntaxError,
        at="> 1"),
    Row("syntax-in-mapping-form",
        text="subject: model.pt\n" + QUANTITIES + "claims:\n  bad: N0,, N1 cluster with cos > 0.5\n"
             f"  good: {GOOD}\n",
        expect=("claim 'bad': unexpected ','",), error=ClaimSyntaxError, at=", N1 cluster"),
    Row("syntax-empty-sentence",
        "- id: bad\n  claim: ''",
        ("claim 'bad': empty claim", "hint: write a sentence"), ClaimSyntaxError,
        at=("''", 1)),
    Row("syntax-backwards-label-range",
        "- id: bad\n  claim: N3..N1 cluster with cos > 0.5",
        ("claim 'bad': label range 'N3..N1' runs backwards",), ClaimSyntaxError,
        at="N3..N1"),
    Row("syntax-confidence-over-100-percent",
        "- id: bad\n  claim: norm(N0) > 1 with 150% confidence",
        ("confidence level '150%' is not a percentage between 0% and 100%",
         "hint: write e.g. 'with 95% confidence'"), ClaimSyntaxError, at="150%"),
    Row("syntax-in-a-quantity-expression",
        "- id: bad\n  claim: broken > 0",
        ("claim 'bad': in quantity 'broken': the claim ends too early", "norm(neurons"),
        ClaimSyntaxError, quantities=q("broken: 'norm(neurons'"), at="broken: 'norm"),

    # -- broken YAML: the whole file is refused, at the place YAML gave up --
    Row("yaml-unclosed-quote",
        "- id: bad\n  claim: \"norm(N0) > 0\n", level="file", error=SpecError,
        expect=("invalid YAML: found unexpected end of stream (while scanning a quoted scalar "
                "that starts at line 14, column 12)", "hint: check indentation and quoting"),
        at="\"norm(N0)"),
    Row("yaml-colon-in-plain-sentence",
        "- id: bad\n  claim: norm(N0): > 0", level="file", error=SpecError,
        expect=("invalid YAML: mapping values are not allowed here",), at=": > 0"),
    Row("yaml-tab-indentation",
        text="subject: model.pt\nclaims:\n\t- norm(N0) > 0\n", level="file", error=SpecError,
        expect=("invalid YAML: found character '\\t' that cannot start any token",),
        at="\t- norm"),
    Row("yaml-duplicate-quantity-name",
        level="file", error=SpecError, quantities=q("neurons: {weight: readout}"),
        expect=("duplicate key 'neurons'", "each key may appear once"),
        at="neurons: {weight: readout}"),
    Row("yaml-not-a-mapping",
        text="- norm(N0) > 0\n", level="file", error=SpecError,
        expect=("a claim file must be a mapping with 'subject', 'quantities' and 'claims'",),
        at="- norm"),

    # -- unknown YAML keys: did you mean --
    Row("unknown-top-level-key",
        text="subject: model.pt\n" + QUANTITIES.replace("quantities:", "quantites:")
             + f"claims:\n  - {GOOD}\n",
        level="file", error=SpecError, at="quantites:",
        expect=("unknown key 'quantites' in the claim file; did you mean 'quantities'?",
                "allowed keys: ")),
    Row("unknown-subject-key",
        level="file", error=SpecError, subject="  alow_pickle: true\n", at="alow_pickle",
        expect=("unknown key 'alow_pickle' in 'subject'; did you mean 'allow_pickle'?",)),
    Row("unknown-claim-key-instead-of-claim",  # README
        "- id: bad\n  clam: norm(N0) > 0", ("unknown key 'clam' in claim 'bad'; did you mean "
                                             "'claim'?", "allowed keys: "),
        SpecError, at="clam:"),
    Row("unknown-claim-key-beside-claim",
        "- id: bad\n  claim: norm(N0) > 0\n  wyh: because",
        ("unknown key 'wyh' in claim 'bad'; did you mean 'why'?",), SpecError, at="wyh:"),
    Row("unknown-quantity-option",
        "- id: bad\n  claim: norm(w) > 0",
        ("claim 'bad': unknown key 'transpos' in quantity 'w'; did you mean 'transpose'?",),
        SpecError, quantities=q("w: {weight: readout, transpos: true}"), at="transpos"),
    Row("unknown-dataset-key",
        level="file", error=SpecError, data="data:\n  sums: {generat: m:f}\n", at="generat",
        expect=("unknown key 'generat' in dataset 'sums'; did you mean 'generate'?",)),
    Row("misspelt-quantity-kind",
        "- id: bad\n  claim: norm(w) > 0",
        ("claim 'bad': quantity 'w' needs exactly one of", "(found none); did you mean 'weight'?"),
        SpecError, quantities=q("w: {weigth: readout}"), at="w: {weigth"),

    # -- YAML values of the wrong type --
    Row("tags-not-a-list",
        "- id: bad\n  claim: norm(N0) > 0\n  tags: {weights: 1}",
        ("claim 'bad': 'tags' must be a name or a list of names",), SpecError,
        at="norm(N0) > 0\n    tags"),
    Row("holds-from-not-a-step",
        "- id: bad\n  claim: norm(N0) > 0\n  holds_from: soon",
        ("claim 'bad': 'holds_from' must be a step number",), SpecError,
        at="norm(N0) > 0\n    holds"),
    Row("status-misspelt",
        "- id: bad\n  claim: norm(N0) > 0\n  status: hold",
        ("claim 'bad': status must be one of ('holds', 'open'); did you mean 'holds'?",),
        SpecError, at="norm(N0) > 0\n    status"),
    Row("sentence-is-a-number",
        "- id: bad\n  claim: 42", ("claim 'bad': the sentence must be text",), SpecError,
        at="42"),
    Row("allow-pickle-not-boolean",
        level="file", error=SpecError, subject="  allow_pickle: 'yes'\n", at="subject:",
        expect=("'subject: allow_pickle' must be true or false",)),
    Row("claims-not-a-list",
        text="subject: model.pt\nclaims: all of them\n", level="file", error=SpecError,
        expect=("'claims' must be a list",), at="claims:"),
    Row("weight-not-a-name",
        "- id: bad\n  claim: norm(w) > 0",
        ("claim 'bad': quantity 'w': 'weight' must be a dotted name",), SpecError,
        quantities=q("w: {weight: [readout]}"), at="w: {weight: ["),
    Row("axes-not-a-list",
        level="validate", error=SpecError, quantities=q("w: {weight: readout, axes: digit}"),
        expect=("quantity 'w': 'axes' must be a list of axis names",), at="w: {weight"),
    Row("dataset-size-not-a-number",
        level="file", error=SpecError, data="data:\n  sums: {generate: m:f, n: lots}\n",
        expect=("dataset 'sums': 'n' must be a whole number, not 'lots'",), at="sums:"),

    # -- duplicate claim ids: the second one is the error, the first still runs --
    Row("duplicate-claim-id",
        "- id: bad\n  claim: norm(N0) > 0\n- id: bad\n  claim: norm(N1) > 0",
        ("duplicate claim id 'bad' (first at ", "give every claim a unique"),
        SpecError, concerns="bad~1", at="norm(N1)"),

    # -- circular quantity definitions (reported at the quantity) --
    Row("circular-definition",  # README
        "- id: bad\n  claim: a > 0", ("claim 'bad': circular quantity definition: a -> b -> a",
                                      "define one of them without referring back"),
        SpecError, quantities=q("a: b + 1\nb: 2 * a"), at="a: b + 1"),
    Row("circular-definition-of-itself",
        "- id: bad\n  claim: a > 0", ("circular quantity definition: a -> a",), SpecError,
        quantities=q("a: a + 1"), at="a: a"),
    Row("circular-definition-reached-through-another",
        "- id: bad\n  claim: c > 0", ("claim 'bad': circular quantity definition: a -> b -> a",),
        SpecError, quantities=q("a: b + 1\nb: 2 * a\nc: norm(a)"), at="a: b + 1"),

    # -- shapes: a quantity and its labels or axes disagree --
    Row("labels-do-not-match-the-shape",  # README
        "- id: bad\n  claim: norm(M0) > 0",
        ("claim 'bad': quantity 'm': axis 'neuron' has 16 entries but 15 labels (M0..M14)",
         "fix the label range in the quantity's 'labels' so it matches the shape (16, 4)"),
        QuantityError, at="m: {weight",
        quantities=q("m: {weight: blocks.0.mlp.W_out, axes: [neuron, d_model], "
                     "labels: {neuron: M0..M14}}")),
    Row("axes-do-not-match-the-shape",
        "- id: bad\n  claim: norm(m) > 0",
        ("quantity 'm' has 2 axes (shape (16, 4)) but 'axes' names 1: ['neuron']",),
        QuantityError, quantities=q("m: {weight: blocks.0.mlp.W_out, axes: [neuron]}"),
        at="m: {weight"),
    Row("matrix-product-shape-mismatch",
        "- id: bad\n  claim: norm(neurons @ neurons) > 0",
        ("cannot multiply shapes (16, 4) @ (16, 4) in '(neurons @ neurons)'",
         "transpose one side with .T"), QuantityError, at="norm(neurons @"),
    Row("not-a-single-number",
        "- id: bad\n  claim: norm(neurons) > 0",
        ("'norm(neurons)' has shape (16,), expected a single number",
         "reduce it with all/any/mean/max/min of"), QuantityError, at="norm(neurons)"),

    # -- labels: unknown, out of range, duplicated, ambiguous --
    Row("unknown-label",  # README
        "- id: bad\n  claim: N1, N150 cluster with cos > 0.5",
        ("claim 'bad': unknown label 'N150'; did you mean 'N15'",
         "declared labels: neurons: N0..N15; A·V: 0..9"), UnknownNameError,
        at="N1, N150"),
    Row("label-out-of-range",
        "- id: bad\n  claim: norm(neurons[N16]) > 0",
        ("claim 'bad': unknown label 'N16' in 'neurons'; did you mean", "'N15'",
         "its labels: neuron: N0..N15"),
        UnknownNameError, at="norm(neurons[N16]"),
    Row("label-for-an-unknown-axis",
        "- id: bad\n  claim: m[3] > 0",
        ("claim 'bad': quantity 'm': labels for unknown axis 'digits'; did you mean 'digit'?",),
        SpecError, quantities=q("m: {weight: readout, axes: [digit], labels: {digits: 0..9}}"),
        at="m: {weight"),
    Row("duplicate-labels-in-a-label-spec",
        "- id: bad\n  claim: norm(m) > 0",
        ("claim 'bad': duplicate labels ['a'] in label spec 'a, a'",), SpecError,
        quantities=q("m: {weight: readout, labels: 'a, a'}"), at="m: {weight"),
    Row("label-declared-by-two-quantities",
        "- id: bad\n  claim: norm(N0) > 0",
        ("claim 'bad': label 'N0' is declared by several quantities (neurons, copy)",
         "set 'on: neurons' on the claim"), UnknownNameError,
        quantities=q("copy: {weight: blocks.0.mlp.W_out, axes: [neuron, d_model], "
                     "labels: {neuron: N0..N15}}"),
        good="N0, N1, N3 of neurons cluster with cos > 0.9", at="norm(N0)"),
    Row("unknown-axis",
        "- id: bad\n  claim: A·V monotone over digitz",
        ("claim 'bad': 'A·V' has no axis 'digitz'; did you mean 'digit'?",), UnknownNameError,
        at="A·V monotone"),

    # -- empty clusters, repeated members --
    Row("cluster-member-listed-twice",  # N0 with itself has cos 1: it must not pass on that
        "- id: bad\n  claim: N0, N0 cluster with cos > 0.5",
        ("claim 'bad': cluster member 'N0' is listed twice", "list each member once"),
        QuantityError, at="N0, N0"),
    Row("cluster-of-one",
        "- id: bad\n  claim: N0 cluster with cos > 0.5",
        ("claim 'bad': a cluster needs at least two members",
         "list two or more labels before 'cluster'"), QuantityError, at="N0 cluster"),
    Row("cluster-of-a-one-label-range",
        "- id: bad\n  claim: N4..N4 of neurons cluster with cos > 0.5",
        ("claim 'bad': a cluster needs at least two members",), QuantityError,
        at="N4..N4"),

    # -- unknown names in expressions --
    Row("unknown-quantity-name",  # README
        "- id: bad\n  claim: norm(nuerons) > 0",
        ("claim 'bad': unknown name 'nuerons' (not a quantity, label or weight); "
         "did you mean 'neurons'?",), UnknownNameError, at="norm(nuerons)"),
    Row("unknown-function",
        "- id: bad\n  claim: nrom(N0) > 0",
        ("claim 'bad': unknown function 'nrom'; did you mean 'norm'?",), UnknownNameError,
        at="nrom(N0)"),
    Row("unknown-weight-in-an-expression",
        "- id: bad\n  claim: norm(blocks.0.mlp.W_ot[0]) > 0",
        ("claim 'bad': model.pt has no weight 'blocks.0.mlp.W_ot'; did you mean "
         "'blocks.0.mlp.W_out'?",), CheckpointError, at="norm(blocks"),
    Row("unknown-name-through-check",
        "", ("unknown name 'nuerons' (not a quantity, label or weight); did you mean 'neurons'",
             "<check>:1:1:"), UnknownNameError, level="check"),

    # -- checkpoints: every claim on a broken subject reports it --
    Row("checkpoint-missing",  # README
        "- id: bad\n  claim: norm(N0) > 0", checkpoint="nope.pt", others="error",
        expect=("checkpoint not found: ", "nope.pt",
                "paths are relative to the claim file"), error=CheckpointError, at="subject:"),
    Row("checkpoint-truncated",  # README
        "- id: bad\n  claim: norm(N0) > 0", checkpoint="cut.pt", setup=truncated_checkpoint,
        others="error", error=CheckpointError, at="subject:",
        expect=("cut.pt is not a readable checkpoint (truncated or corrupt?): RuntimeError: "
                "PytorchStreamReader failed reading zip archive",)),
    Row("checkpoint-not-a-checkpoint",
        "- id: bad\n  claim: norm(N0) > 0", checkpoint="notes.pt",
        files={"notes.pt": "hello, this is not a checkpoint"}, others="error",
        error=CheckpointError, at="subject:",
        expect=("notes.pt is not a readable checkpoint (truncated or corrupt?): neither a zip "
                "archive nor a pickle",)),
    Row("checkpoint-needs-full-unpickling",  # README
        "- id: bad\n  claim: norm(N0) > 0", checkpoint="pickled.pt", setup=pickled_checkpoint,
        others="error", error=CheckpointError, at="subject:",
        expect=("pickled.pt needs full unpickling, which can run arbitrary code; refused "
                "(Unsupported global: GLOBAL argparse.Namespace",
                "set 'allow_pickle: true' under 'subject:'")),
    Row("checkpoint-without-a-state-dict",
        "- id: bad\n  claim: norm(N0) > 0", checkpoint="meta.pt",
        setup=checkpoint_without_state_dict, others="error", error=CheckpointError,
        at="subject:",
        expect=("meta.pt holds no state dict (a dict with keys ['epoch', 'step'])",
                "'model_state_dict'")),
    Row("checkpoint-broken-safetensors",
        "- id: bad\n  claim: norm(N0) > 0", checkpoint="model.safetensors",
        files={"model.safetensors": b"\x08\x00\x00\x00\x00\x00\x00\x00{}"}, others="error",
        error=CheckpointError, at="subject:",
        expect=("model.safetensors is not a readable safetensors file",)),
    Row("checkpoint-missing-tensor",  # README (spelt 'has no weight' through a claim file)
        "- id: bad\n  claim: norm(w) > 0",
        ("claim 'bad': model.pt has no weight 'blocks.0.mlp.W_ot'; did you mean "
         "'blocks.0.mlp.W_out'?",), CheckpointError,
        quantities=q("w: {weight: blocks.0.mlp.W_ot}"), at="w: {weight"),

    # -- NaN and inf: the claim is evaluated and fails, never passes --
    Row("nan-weight",  # README
        "- id: bad\n  claim: norm(N2) > 0", ("does not hold: measured nan; expected > 0",),
        None, level="fails", setup=checkpoint_with_nan_and_inf, at="norm(N2)"),
    Row("inf-weight",
        "- id: bad\n  claim: max(A·V) < 1e9",
        ("does not hold: measured inf; expected < 1.000e+09",),
        None, level="fails", setup=checkpoint_with_nan_and_inf, at="max(A·V)"),
    Row("nan-in-a-cluster",
        "- id: bad\n  claim: N0, N2 cluster with cos > -2",
        ("does not hold: measured min pairwise cos nan (N0, N2)",), None, level="fails",
        setup=checkpoint_with_nan_and_inf, at="N0, N2"),

    # -- user code: errors in loaders and callables, traceback trimmed to the user's frames --
    Row("callable-raises",  # README
        "- id: bad\n  claim: av > 0",
        ("claim 'bad': quantity 'av' (usermod_raise:exploding) raised: ZeroDivisionError: "
         "division by zero", "user traceback (most recent call last):",
         "usermod_raise.py\", line 6, in _helper", "in exploding"),
        UserCodeError, quantities=q("av: {call: usermod_raise:exploding}"),
        files=user_files("usermod_raise"), at="av: {call"),
    Row("callable-module-missing",
        "- id: bad\n  claim: av > 0",
        ("quantity 'av' 'usermod_nowhere:f': module 'usermod_nowhere' not found",
         "put it next to the claim file"), SpecError,
        quantities=q("av: {call: usermod_nowhere:f}"), at="av: {call"),
    Row("callable-dependency-missing",
        "- id: bad\n  claim: av > 0",
        ("module 'usermod_dep' imports 'usermod_not_installed', which is not installed",
         "pip install the package that provides 'usermod_not_installed'"), SpecError,
        quantities=q("av: {call: usermod_dep:f}"),
        files={"usermod_dep.py": "import usermod_not_installed\n"}, at="av: {call"),
    Row("callable-import-raises",
        "- id: bad\n  claim: av > 0",
        ("importing quantity 'av' 'usermod_boom:f' failed: RuntimeError: boom at import",
         "usermod_boom.py\", line 1, in <module>"), UserCodeError,
        quantities=q("av: {call: usermod_boom:f}"),
        files={"usermod_boom.py": "raise RuntimeError('boom at import')\n"}, at="av: {call"),
    Row("callable-name-misspelt",
        "- id: bad\n  claim: av > 0",
        ("'usermod_attr' has no 'explodng'; did you mean 'exploding'?",), SpecError,
        quantities=q("av: {call: usermod_attr:explodng}"), files=user_files("usermod_attr"),
        at="av: {call"),
    Row("callable-reference-malformed",
        "- id: bad\n  claim: av > 0",
        ("'usermod_x.exploding' must look like 'package.module:function'",), SpecError,
        quantities=q("av: {call: usermod_x.exploding}"), at="av: {call"),
    Row("callable-returns-text",
        "- id: bad\n  claim: words > 0",
        ("quantity 'words' returned a str, which is not numeric",), QuantityError,
        quantities=q("words: {call: usermod_text:text}"), files=user_files("usermod_text"),
        at="words: {call"),
    Row("loader-raises",
        "- id: bad\n  claim: norm(layer.weight) > 0",
        ("claim 'bad': loader 'usermod_loader:load' raised: ZeroDivisionError",
         "usermod_loader.py\", line 6, in _helper"), UserCodeError,
        subject="  loader: usermod_loader:load\n", files=user_files("usermod_loader"),
        at="norm(layer"),

    # -- data sections --
    Row("unknown-dataset",
        "- id: bad\n  claim: acc > 0.5\n  data: sumz",
        ("claim 'bad': unknown dataset 'sumz'; did you mean 'sums'?",), UnknownNameError,
        data="data:\n  sums: {generate: usermod_data:generate, n: 4}\n",
        quantities=q("acc: {metric: exact_match, answer: A0}"), at="acc: {metric"),
    Row("no-data-section",
        "- id: bad\n  claim: acc > 0.5",
        ("this claim needs data, but the claim file has no 'data:' section",), SpecError,
        quantities=q("acc: {metric: exact_match, answer: A0}"), at="acc: {metric"),
    Row("data-file-missing",
        "- id: bad\n  claim: acc > 0.5", ("claim 'bad': data file not found: ", "nope.npz"),
        SpecError, data="data:\n  sums: {file: nope.npz}\n",
        quantities=q("acc: {metric: exact_match, answer: A0}"), at="sums:"),
    Row("data-generator-raises",
        "- id: bad\n  claim: acc > 0.5",
        ("dataset 'sums' (usermod_gen:generate) raised: ValueError: the generator broke",
         "usermod_gen.py\", line 18, in generate"), UserCodeError,
        data="data:\n  sums: {generate: usermod_gen:generate, n: 4}\n",
        files=user_files("usermod_gen"), quantities=q("acc: {metric: exact_match, answer: A0}"),
        at="acc: {metric"),

    # -- table files --
    Row("table-file-missing",
        "- id: bad\n  claim: max(s) > 0",
        ("quantity 's': table file not found: ", "nope.csv",
         "'table:' paths are relative to the claim file"), SpecError,
        quantities=q("s: {table: nope.csv, column: score}"), at="s: {table"),
    Row("table-file-unreadable",
        "- id: bad\n  claim: max(s) > 0",
        ("quantity 's': cannot read heads.jsonl: ",), SpecError,
        quantities=q("s: {table: heads.jsonl, column: score}"),
        files={"heads.jsonl": '{"head": "L0H0", "score": 1}\n{oops\n'}, at="s: {table"),
    Row("table-column-misspelt",
        "- id: bad\n  claim: max(s) > 0",
        ("quantity 's': heads.csv has no column 'scor'; did you mean 'score'?",
         "columns: head, score"), QuantityError,
        quantities=q("s: {table: heads.csv, column: scor, group_by: head}"),
        files={"heads.csv": TABLE}, at="s: {table"),
    Row("table-option-misspelt",
        "- id: bad\n  claim: max(s) > 0",
        ("quantity 's': 'per_row: meen' is not one of", "did you mean 'mean'"), SpecError,
        quantities=q("s: {table: heads.csv, column: score, per_row: meen}"),
        files={"heads.csv": TABLE}, at="s: {table"),
    Row("table-type-unsupported",
        "- id: bad\n  claim: max(s) > 0", ("unsupported table type '.xlsx' (heads.xlsx)",),
        SpecError, quantities=q("s: {table: heads.xlsx, column: score}"),
        files={"heads.xlsx": "not a spreadsheet"}, at="s: {table"),

    # -- through pytest: what the run reports --
    Row("pytest-invalid-yaml-is-a-collection-error",
        "- id: bad\n  claim: [norm(N0) > 0\n", level="pytest", error=None,
        expect=("ERROR collecting model.claims.yaml", "invalid YAML: ",
                "while parsing a flow sequence that starts at line 14, column 12"),
        outcomes={"passed": 1, "errors": 1}, at=("- id: good", 4)),
    Row("pytest-bad-claims-are-errors-the-others-run",
        "- id: bad\n  claim: N0, N1 cluster with cos >\n- id: typo\n  claim: norm(nuerons) > 0\n"
        "- id: broken\n  claim: norm(w) > 0", level="pytest", error=None,
        quantities=q("w: {weight: readout, transpos: true}"),
        expect=("ERROR model.claims.yaml::bad", "ERROR model.claims.yaml::typo",
                "ERROR model.claims.yaml::broken", "the claim ends too early",
                "unknown name 'nuerons'", "did you mean 'transpose'?"),
        outcomes={"passed": 2, "errors": 3}, at=("cos >\n", 5)),
    Row("pytest-garbage-checkpoint",
        "- id: bad\n  claim: norm(N0) > 0", level="pytest", error=None, checkpoint="notes.pt",
        files={"notes.pt": b"\x00\x01 not a checkpoint"},
        expect=("ERROR model.claims.yaml::bad", "ERROR model.claims.yaml::good",
                "notes.pt is not a readable checkpoint (truncated or corrupt?)"),
        outcomes={"passed": 1, "errors": 2}),
    Row("pytest-user-code-error",
        "- id: bad\n  claim: av > 0", level="pytest", error=None,
        quantities=q("av: {call: usermod_pytest:exploding}"), files=user_files("usermod_pytest"),
        expect=("ERROR model.claims.yaml::bad", "ZeroDivisionError: division by zero",
                "usermod_pytest.py\", line 6, in _helper"),
        outcomes={"passed": 2, "errors": 1}, at="av: {call"),
]


# ---- running a row -------------------------------------------------------------------------------
def place(text: str, at: str | tuple[str, int]) -> str:
    """``FILE:line:column:`` of the first occurrence of ``at`` in ``text`` (``(needle,
    shift)``: that many characters further along the line)."""
    needle, shift = (at, 0) if isinstance(at, str) else at
    offset = text.index(needle) + shift
    line = text.count("\n", 0, offset) + 1
    column = offset - (text.rfind("\n", 0, offset) + 1) + 1
    return f"{FILE}:{line}:{column}:"


def claim_text(row: Row) -> str:
    if row.text is not None:
        return row.text
    claims = row.claims.rstrip("\n") + "\n" if row.claims else ""
    claims += f"- id: good\n  claim: {row.good}\n"
    quantities = row.data + QUANTITIES + row.quantities
    return claim_file_text(claims, row.checkpoint, quantities, row.subject)


def write_row(row: Row, folder: Path) -> Path:
    save_checkpoint(folder / "model.pt")
    for name, content in row.files.items():
        if isinstance(content, bytes):
            (folder / name).write_bytes(content)
        else:
            (folder / name).write_text(content, encoding="utf-8")
    if row.setup is not None:
        row.setup(folder)
    path = folder / FILE
    path.write_text(claim_text(row), encoding="utf-8")
    return path


def assert_clear(message: str, row: Row, text: str, folder: Path) -> None:
    """The expected fragments and place, and no traceback but the user's own frames."""
    for fragment in row.expect:
        assert fragment in message, f"{fragment!r} not in:\n{message}"
    if row.at is not None:
        assert place(text, row.at) in message, f"{place(text, row.at)} not in:\n{message}"
    assert "Traceback (most recent call last)" not in message, message
    for frame in re.findall(r'File "([^"]+)"', message):
        assert Path(frame).resolve().is_relative_to(folder.resolve()), message


def results_by_id(path: Path) -> dict[str, ia.ClaimResult]:
    return {result.claim_id: result for result in ia.load(path).run()}


@pytest.mark.parametrize("row", [pytest.param(row, id=row.id) for row in ROWS])
def test_bad_input(row: Row, tmp_path: Path, request: pytest.FixtureRequest,
                   isolated_imports: None) -> None:
    if row.level == "pytest":
        request.getfixturevalue("heavy_modules_loaded")  # before pytester snapshots modules
        pytester: pytest.Pytester = request.getfixturevalue("pytester")
        run_with_pytest(row, pytester)
        return
    path = write_row(row, tmp_path)
    text = path.read_text(encoding="utf-8")
    if row.level == "file":
        with pytest.raises(SpecError) as info:
            ia.load(path)
        assert isinstance(info.value, row.error)
        assert_clear(str(info.value), row, text, tmp_path)
        assert ia.validate(path) == [str(info.value)]
        return
    if row.level == "check":
        with pytest.raises(InterpAssertError) as info:
            ia.check("norm(nuerons) > 0", ia.load(path))
        assert isinstance(info.value, row.error)
        assert_clear(str(info.value), row, text, tmp_path)
        assert ia.load(path).check(GOOD).passed
        return
    if row.level == "validate":
        problems = ia.validate(path)
        assert len(problems) == 1, problems
        assert_clear(problems[0], row, text, tmp_path)
        assert [r.status for r in ia.load(path).run()] == ["holds"]
        return
    results = results_by_id(path)
    result = results[row.concerns]
    if row.level == "fails":
        assert result.status == "fails" and result.error is None, result.error
        assert_clear(ia.format_result(result), row, text, tmp_path)
    else:
        assert row.level == "claim"
        assert result.status == "error", result.outcome
        assert isinstance(result.error, row.error), repr(result.error)
        assert_clear(str(result.error), row, text, tmp_path)
        report = ia.format_result(result)  # what pytest shows for the ERROR
        assert report.startswith(f"claim '{row.concerns}' at ")
        assert f"  error: {result.error}" in report
    good = results["good"]
    if row.others == "pass":
        assert good.passed, good.error
    else:  # the subject itself is broken: every claim on it says so
        assert good.status == "error" and isinstance(good.error, row.error), good.error
        assert row.expect[0] in str(good.error)


def run_with_pytest(row: Row, pytester: pytest.Pytester) -> None:
    path = write_row(row, pytester.path)
    pytester.makepyfile(test_plain="def test_plain():\n    pass\n")
    result = pytester.runpytest("-p", "no:randomly", "--interp-plots=never", "-rE",
                                "--continue-on-collection-errors")
    outcomes = result.parseoutcomes()
    got = {key: outcomes.get(key, 0) for key in row.outcomes}
    assert got == dict(row.outcomes), result.stdout.str()
    assert_clear(result.stdout.str(), row, path.read_text(encoding="utf-8"), pytester.path)


def test_the_table_is_large_and_its_ids_unique() -> None:
    ids = [row.id for row in ROWS]
    assert len(ids) == len(set(ids))
    assert len(ROWS) >= 40
    assert all(row.expect for row in ROWS)  # every row asserts a message


def test_a_shared_checkpoint_error_names_each_claim_once(tmp_path: Path) -> None:
    path = write_claims(tmp_path / FILE, claim_file_text(
        f"- id: bad\n  claim: norm(N0) > 0\n- id: good\n  claim: {GOOD}\n", "nope.pt"))
    results = results_by_id(path)
    assert "claim 'good'" not in str(results["bad"].error)
    assert "claim 'bad'" not in str(results["good"].error)
