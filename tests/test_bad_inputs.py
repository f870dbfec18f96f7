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

import os
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
    TimeLimitError,
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
    make: Callable[[Path], None] | None = None  # replaces the claim file (FIFO, bytes...)


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
        "- id: bad\n  claim: \"norm(N0 >> 1\"",
        ("claim 'bad': unexpected '>'", "a number"), ClaimSyntaxError, at="> 1\""),
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


# ---- hostile inputs (issue 14): every one a clear error, the good claim still running ----------
posix = os.name == "posix"


def fifo(name: str) -> Callable[[Path], None]:
    """A named pipe called ``name`` next to the claim file (reading it would block)."""
    return lambda folder: os.mkfifo(folder / name)


def loop(name: str) -> Callable[[Path], None]:
    """A symbolic link ``name`` that points at itself."""
    return lambda folder: os.symlink(name, folder / name)


def device(name: str) -> Callable[[Path], None]:
    """``name`` as a link to /dev/zero (a device that never ends)."""
    return lambda folder: os.symlink("/dev/zero", folder / name)


def claim_file_as(kind: str) -> Callable[[Path], None]:
    def make(path: Path) -> None:
        text = path.read_text(encoding="utf-8")
        path.unlink()
        if kind == "fifo":
            os.mkfifo(path)
        elif kind == "loop":
            os.symlink(path.name, path)
        elif kind == "device":
            os.symlink("/dev/zero", path)
        elif kind == "folder":
            path.mkdir()
        elif kind == "utf16":
            path.write_bytes(text.encode("utf-16"))
        elif kind == "utf32":
            path.write_bytes(text.encode("utf-32"))
        elif kind == "latin1":
            path.write_bytes(text.replace("why: ''", "why: café").encode("utf-8")
                             + "# café\n".encode("latin-1"))
        elif kind == "binary":
            path.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)))
        elif kind == "nul":
            path.write_bytes(text.encode("utf-8") + b"\x00\n")
        elif kind == "huge":
            path.write_bytes(text.encode("utf-8") + b"#" * (5 * 2**20) + b"\n")
        elif kind == "utf8-bom":
            path.write_bytes(b"\xef\xbb\xbf" + text.encode("utf-8"))
    return make


def empty_weight(folder: Path) -> None:
    state = tiny_state_dict()
    state["empty"] = torch.zeros(0)
    save_checkpoint(folder / "model.pt", state)


def laughs(levels: int = 9, anchor: str = "a") -> str:
    """A "billion laughs": each alias level ten times the one before."""
    lines = [f"  - &{anchor}0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    for i in range(1, levels):
        lines.append(f"  - &{anchor}{i} [" + ", ".join([f"*{anchor}{i - 1}"] * 10) + "]")
    return "\n".join(lines) + "\n"


SLOW_CODE = '''
import time


def sleepy(state_dict):
    time.sleep(60)
    return 1.0


def spinning(state_dict):
    while True:
        pass


def stubborn(state_dict):
    while True:
        try:
            time.sleep(60)
        except Exception:
            pass


def boom(model, a):
    raise ValueError("the predicate broke")
'''

DEEP = "[" * 10000 + "]" * 10000
HOSTILE_ROWS = [
    # -- the parser's nesting limit: no RecursionError, a clear error at the place --
    Row("nesting-500-unary-minuses",
        "- id: bad\n  claim: norm(N0) > " + "-" * 500 + "1",
        ("claim 'bad': the expression is nested too deeply: more than 100 operators, brackets "
         "and signs", "split it into quantities"), ClaimSyntaxError, at=("-" * 500, 99)),
    Row("nesting-500-indexings",
        "- id: bad\n  claim: norm(neurons" + "[N0]" * 500 + ") > 0",
        ("the expression is nested too deeply",), ClaimSyntaxError),
    Row("nesting-800-term-sum",
        "- id: bad\n  claim: " + " + ".join(["1"] * 800) + " > 0",
        ("the expression is nested too deeply",), ClaimSyntaxError),
    Row("nesting-200-parentheses",
        "- id: bad\n  claim: " + "(" * 200 + "1" + ")" * 200 + " > 0",
        ("the expression is nested too deeply",), ClaimSyntaxError),
    Row("nesting-150-calls",
        "- id: bad\n  claim: " + "norm(" * 150 + "N0" + ")" * 150 + " > 0",
        ("the expression is nested too deeply",), ClaimSyntaxError),
    Row("nesting-150-transposes",
        "- id: bad\n  claim: norm(neurons" + ".T" * 150 + ") > 0",
        ("the expression is nested too deeply",), ClaimSyntaxError),
    Row("nesting-150-powers",
        "- id: bad\n  claim: " + "^".join(["2"] * 150) + " > 0",
        ("the expression is nested too deeply",), ClaimSyntaxError),
    Row("nesting-in-a-quantity-expression",
        "- id: bad\n  claim: deep > 0",
        ("claim 'bad': in quantity 'deep': the expression is nested too deeply",),
        ClaimSyntaxError, quantities=q("deep: '" + "-" * 300 + "1'"), at="deep: '"),
    Row("sentence-over-5000-characters",
        "- id: bad\n  claim: all of " + ", ".join(["N0"] * 1500) + " norm > 0",
        ("claim 'bad': the sentence is 6,014 characters long, over the limit of 5,000",
         "all of N0, N0"), ClaimSyntaxError),

    # -- numbers past Python's 4,300-digit limit: clear errors --
    Row("template-end-with-4400-digits",
        "- id: bad\n  claim: norm(N{i}) > 0 for i in 0.." + "9" * 4400,
        ("claim 'bad': a number of 4,400 digits, over the limit of 300", "1e300"),
        ClaimSyntaxError, at="9999"),
    Row("number-with-unit-4500-digits",
        "- id: bad\n  claim: max(A·V) > " + "9" * 4500 + "%",
        ("a number of 4,500 digits, over the limit of 300",), ClaimSyntaxError, at="9999"),
    Row("top-n-with-400-digits",
        "- id: bad\n  claim: N0 in top " + "9" * 400 + " of norm(neurons)",
        ("a number of 400 digits, over the limit of 300",), ClaimSyntaxError, at="9999"),
    Row("yaml-number-5000-digits-as-sentence",
        "- id: bad\n  claim: " + "9" * 5000,
        ("claim 'bad': a number of 5,000 digits, over the limit of 300",), SpecError,
        at="9999"),
    Row("yaml-number-5000-digits-in-an-option",
        "- id: bad\n  claim: norm(N0) > 0\n  holds_from: " + "7" * 5000,
        ("claim 'bad': a number of 5,000 digits, over the limit of 300",), SpecError,
        at="7777"),
    Row("yaml-number-5000-digits-in-a-quantity",
        "- id: bad\n  claim: norm(w) > 0",
        ("claim 'bad': a number of 5,000 digits, over the limit of 300",), SpecError,
        quantities=q("w: {weight: readout, transpose: " + "1" * 5000 + "}"), at="1111"),
    Row("yaml-number-5000-digits-in-data",
        level="file", error=SpecError, data="data:\n  sums: {generate: m:f, n: " + "5" * 5000
        + "}\n", expect=("a number of 5,000 digits, over the limit of 300",), at="5555"),

    # -- ranges: backwards, and more than the limits --
    Row("template-range-backwards",
        "- id: bad\n  claim: norm(N{i}) > 0 for i in 9..0",
        ("claim 'bad': the template range 9..0 runs backwards", "write 'for i in 0..9'"),
        ClaimSyntaxError, at="9..0"),
    Row("template-range-over-the-limit",
        "- id: bad\n  claim: norm(N0) > 0 for i in 0..99999999",
        ("the template range 0..99999999 has 100,000,000 instances, over the limit of 10,000",),
        ClaimSyntaxError, at="0..99999999"),
    Row("label-range-over-the-limit-in-a-sentence",
        "- id: bad\n  claim: N0..N999999999 cluster with cos > 0.5",
        ("label spec 'N0..N999999999' has 1,000,000,000 labels, over the limit of 1,000,000",),
        ClaimSyntaxError, at="N0..N999999999"),
    Row("label-range-over-the-limit-in-labels",
        "- id: bad\n  claim: norm(m) > 0",
        ("claim 'bad': label spec 'N0..N999999999' has 1,000,000,000 labels, over the limit "
         "of 1,000,000",), SpecError,
        quantities=q("m: {weight: readout, labels: N0..N999999999}"), at="m: {weight"),
    Row("label-range-with-a-5000-digit-end",
        "- id: bad\n  claim: norm(m) > 0",
        ("has a number of 5000 digits", "at most 1,000,000 labels"), SpecError,
        quantities=q("m: {weight: readout, labels: 'N0..N" + "9" * 5000 + "'}"),
        at="m: {weight"),
    Row("brace-label-range-backwards",
        "- id: bad\n  claim: norm(m) > 0",
        ("label range {3..1} in 'L{3..1}H{0..3}' runs backwards", "write {1..3}"), SpecError,
        quantities=q("m: {weight: readout, labels: 'L{3..1}H{0..3}'}"), at="m: {weight"),
    Row("brace-label-product-over-the-limit",
        "- id: bad\n  claim: norm(m) > 0",
        ("has 1,000,000,000,000 labels, over the limit",), SpecError,
        quantities=q("m: {weight: readout, labels: 'L{0..999999}N{0..999999}'}"),
        at="m: {weight"),
    Row("label-that-is-a-list",
        "- id: bad\n  claim: norm(m) > 0",
        ("a label must be a name or a number, not ['a', 'b']",), SpecError,
        quantities=q("m: {weight: readout, labels: [[a, b], c]}"), at="m: {weight"),

    # -- reductions, indexing and slicing: clear errors, never "may be a bug" --
    Row("norm-of-a-single-number",
        "- id: bad\n  claim: norm(-1) > 0",
        ("claim 'bad': norm() of a single number ('-1' has shape ()): it needs a value with "
         "an axis",), QuantityError, at="norm(-1)"),
    Row("cos-of-single-numbers",
        "- id: bad\n  claim: cos(1, 2) > 0",
        ("cos() of a single number",), QuantityError, at="cos(1"),
    Row("unit-of-a-single-number",
        "- id: bad\n  claim: max(unit(2)) > 0",
        ("unit() of a single number",), QuantityError, at="max(unit"),
    Row("max-of-an-empty-value",
        "- id: bad\n  claim: max(e) > 0",
        ("claim 'bad': max() of an empty value ('e' has shape (0,)): there is nothing to "
         "reduce",), QuantityError, quantities=q("e: {weight: empty}"), setup=empty_weight,
        at="max(e)"),
    Row("min-of-an-empty-value",
        "- id: bad\n  claim: min(e) < 1",
        ("min() of an empty value",), QuantityError, quantities=q("e: {weight: empty}"),
        setup=empty_weight, at="min(e)"),
    Row("slice-to-minus-1e309",
        "- id: bad\n  claim: norm(neurons[:, 0:-1e309]) > 0",
        ("claim 'bad': index '-1e309' is not a finite number",), QuantityError,
        at="norm(neurons[:"),
    Row("slice-bound-is-an-expression",
        "- id: bad\n  claim: norm(neurons[:, 0:(1 + 1)]) > 0",
        ("'(1 + 1)' is not a label or a position", "write the bounds as labels"),
        QuantityError, at="norm(neurons[:"),
    Row("more-indices-than-axes",
        "- id: bad\n  claim: norm(neurons[0, 1, 2]) > 0",
        ("'neurons[0, 1, 2]' has 3 indices, but 'neurons' has 2 axes (shape (16, 4))",),
        QuantityError, at="norm(neurons[0"),
    Row("position-outside-an-unlabelled-axis",
        "- id: bad\n  claim: norm(neurons[N0, 99]) > 0",
        ("position 99 in 'neurons[N0, 99]' is outside axis 'd_model' (4 positions: 0..3)",),
        QuantityError, at="norm(neurons[N0"),
    Row("member-position-outside-its-axis",
        "- id: bad\n  claim: 0, 5 of neurons cluster with cos > 0.5",
        ("position 5 is outside axis 'd_model' of 'neurons' (4 positions: 0..3)",),
        UnknownNameError, at="0, 5 of"),

    # -- YAML: deep nesting, complex keys, alias bombs, wrong types --
    Row("yaml-10000-deep-flow-list-as-sentence",
        "- id: bad\n  claim: " + DEEP,
        ("claim 'bad': the YAML is nested more than 100 levels deep", "flatten this value"),
        SpecError, at=("[[[", 97)),
    Row("yaml-10000-deep-flow-list-in-tags",
        "- id: bad\n  claim: norm(N0) > 0\n  tags: " + DEEP,
        ("claim 'bad': the YAML is nested more than 100 levels deep",), SpecError),
    Row("yaml-10000-deep-flow-mapping",
        "- id: bad\n  claim: norm(N0) > 0\n  data: " + "{a: " * 10000 + "1" + "}" * 10000,
        ("the YAML is nested more than 100 levels deep",), SpecError),
    Row("yaml-10000-deep-in-a-quantity",
        "- id: bad\n  claim: norm(deep) > 0",
        ("claim 'bad': the YAML is nested more than 100 levels deep",), SpecError,
        quantities=q("deep: {weight: readout, labels: " + DEEP + "}")),
    Row("yaml-10000-deep-in-the-description",
        level="file", error=SpecError, text="description: " + DEEP + "\nsubject: model.pt\n"
        + QUANTITIES + f"claims:\n  - {GOOD}\n",
        expect=("the YAML is nested more than 100 levels deep",)),
    Row("yaml-complex-key-in-a-claim",
        "- id: bad\n  claim: norm(N0) > 0\n  ? [a, b]\n  : 1",
        ("claim 'bad': a mapping key must be a name, not a list", "remove the '?'"),
        SpecError, at="[a, b]"),
    Row("yaml-complex-mapping-key-in-a-claim",
        "- id: bad\n  claim: norm(N0) > 0\n  ? {a: 1}\n  : 1",
        ("claim 'bad': a mapping key must be a name, not a mapping",), SpecError,
        at="{a: 1}"),
    Row("yaml-complex-key-in-quantities",
        level="validate", error=SpecError,
        quantities="  ? [w, v]\n  : {weight: readout}\n",
        expect=("a mapping key must be a name, not a list",), good=GOOD, at="[w, v]"),
    Row("yaml-complex-key-at-the-top",
        level="file", error=SpecError, text="? [subject, claims]\n: 1\nsubject: model.pt\n"
        + QUANTITIES + f"claims:\n  - {GOOD}\n",
        expect=("a mapping key must be a name, not a list",), at="[subject"),
    Row("yaml-billion-laughs-in-the-description",
        level="file", error=SpecError,
        text="description:\n" + laughs() + "subject: model.pt\n" + QUANTITIES
        + f"claims:\n  - {GOOD}\n",
        expect=("the YAML expands to more than 1,000,000 values (aliases count each time "
                "they are used)", "use fewer aliases")),
    Row("yaml-billion-laughs-in-a-label-spec",
        level="file", error=SpecError,
        text="subject: model.pt\n" + QUANTITIES + "  m:\n    weight: readout\n    labels:\n"
        + textwrap.indent(laughs(anchor="b"), "    ") + f"claims:\n  - {GOOD}\n",
        expect=("the YAML expands to more than 1,000,000 values",)),
    Row("yaml-aliases-within-the-limit-are-fine",
        "- id: bad\n  claim: norm(N0) > 0\n  tags: &t [x, y]\n- id: bad2\n  claim: norm(N1) > 0"
        "\n  tags: *t\n  status: hold",
        ("claim 'bad2': status must be one of ('holds', 'open')",), SpecError, concerns="bad2"),
    Row("yaml-description-is-a-list",
        level="file", error=SpecError, text="description: [a, b]\nsubject: model.pt\n"
        + QUANTITIES + f"claims:\n  - {GOOD}\n",
        expect=("'description' must be text, not a list",), at="description:"),
    Row("yaml-nul-character",
        level="file", error=SpecError, make=claim_file_as("nul"),
        expect=("invalid YAML", "unacceptable character #x0000")),
    Row("yaml-claim-id-is-a-huge-number",
        "- id: " + "1" * 5000 + "\n  claim: norm(N0) > 0",
        ("a number of 5,000 digits",), SpecError, concerns="claim-1", at="1111"),

    # -- text that is not UTF-8, and files that are not regular files: refused by name --
    Row("claim-file-utf16",
        level="file", error=SpecError, make=claim_file_as("utf16"),
        expect=("claim file ", "model.claims.yaml is UTF-16 text, not UTF-8", "save it as UTF-8"),
        at=None),
    Row("claim-file-utf32",
        level="file", error=SpecError, make=claim_file_as("utf32"),
        expect=("is UTF-32 text, not UTF-8",)),
    Row("claim-file-latin1",
        level="file", error=SpecError, make=claim_file_as("latin1"),
        expect=("is text that is not UTF-8: byte 0xe9 at line 15, column 6 is not UTF-8",
                "model.claims.yaml:15:6:")),
    Row("claim-file-binary",
        level="file", error=SpecError, make=claim_file_as("binary"),
        expect=("model.claims.yaml is a binary file: byte 0x89 at line 1, column 1",)),
    Row("claim-file-over-the-size-limit",
        level="file", error=SpecError, make=claim_file_as("huge"),
        expect=("model.claims.yaml is 5.0 MiB, over the limit of 4.0 MiB",
                "split it into several files")),
    Row("claim-file-is-a-fifo",
        level="file", error=SpecError, make=claim_file_as("fifo"),
        expect=("model.claims.yaml is a FIFO (named pipe), not a regular file",
                "must be a regular file")),
    Row("claim-file-is-a-symlink-loop",
        level="file", error=SpecError, make=claim_file_as("loop"),
        expect=("model.claims.yaml is a symbolic link loop",)),
    Row("claim-file-is-a-device",
        level="file", error=SpecError, make=claim_file_as("device"),
        expect=("model.claims.yaml is a device, not a regular file",)),
    Row("claim-file-is-a-folder",
        level="file", error=SpecError, make=claim_file_as("folder"),
        expect=("model.claims.yaml is a folder, not a file",)),
    Row("checkpoint-is-a-fifo",
        "- id: bad\n  claim: norm(N0) > 0", checkpoint="pipe.pt", setup=fifo("pipe.pt"),
        others="error", error=CheckpointError, at="subject:",
        expect=("pipe.pt is a FIFO (named pipe), not a regular file; reading it could block",
                "name a checkpoint file")),
    Row("checkpoint-is-a-symlink-loop",
        "- id: bad\n  claim: norm(N0) > 0", checkpoint="loop.pt", setup=loop("loop.pt"),
        others="error", error=CheckpointError, at="subject:",
        expect=("loop.pt is a symbolic link loop (it links back to itself)",)),
    Row("checkpoint-is-a-device",
        "- id: bad\n  claim: norm(N0) > 0", checkpoint="zero.pt", setup=device("zero.pt"),
        others="error", error=CheckpointError, at="subject:",
        expect=("checkpoint /dev/zero is a device, not a regular file",)),
    Row("checkpoint-is-a-folder",
        "- id: bad\n  claim: norm(N0) > 0", checkpoint="ckpt.pt",
        setup=lambda folder: (folder / "ckpt.pt").mkdir(), others="error",
        error=CheckpointError, at="subject:",
        expect=("ckpt.pt is not a Hugging Face model folder: it has no config.json and "
                "model.safetensors or pytorch_model.bin (it is empty)",
                "or a folder holding config.json and model.safetensors")),
    Row("data-file-is-a-fifo",
        "- id: bad\n  claim: acc > 0.5", ("claim 'bad': data file ", "pipe.npz is a FIFO"),
        SpecError, data="data:\n  sums: {file: pipe.npz}\n", setup=fifo("pipe.npz"),
        quantities=q("acc: {metric: exact_match, answer: A0}"), at="acc: {metric"),
    Row("table-file-is-a-fifo",
        "- id: bad\n  claim: max(s) > 0", ("table file ", "pipe.csv is a FIFO"), SpecError,
        quantities=q("s: {table: pipe.csv, column: score}"), setup=fifo("pipe.csv"),
        at="s: {table"),
    Row("sweep-glob-from-the-filesystem-root",
        level="file", error=SpecError, text="subject:\n  checkpoints: /**/*.pt\n" + QUANTITIES
        + f"claims:\n  - {GOOD}\n",
        expect=("'subject: checkpoints' pattern '/**/*.pt' searches from the filesystem root",
                "name the folder the checkpoints are in"), at="checkpoints:"),
    Row("sweep-glob-matching-only-a-fifo",
        level="file", error=SpecError, setup=fifo("step_1.pt"),
        text="subject:\n  checkpoints: step_*.pt\n" + QUANTITIES + f"claims:\n  - {GOOD}\n",
        expect=("'subject: checkpoints' pattern 'step_*.pt' matches no files",),
        at="checkpoints:"),

    # -- user code past its time limit, and claim options --
    Row("callable-sleeps-past-the-time-limit",
        "- id: bad\n  claim: slow > 0\n  timeout: 0.5",
        ("claim 'bad': quantity 'slow' (usermod_sleep:sleepy) was stopped: the claim's user "
         "code ran 0.5 s, over its time limit of 0.5 s", "'timeout:' on the claim"),
        TimeLimitError,
        quantities=q("slow: {call: usermod_sleep:sleepy}"),
        files={"usermod_sleep.py": SLOW_CODE}, at="slow: {call"),
    Row("callable-spins-past-the-time-limit",
        "- id: bad\n  claim: slow > 0\n  timeout: 0.3",
        ("was stopped: the claim's user code ran 0.3 s, over its time limit of 0.3 s",),
        TimeLimitError, quantities=q("slow: {call: usermod_spin:spinning}"),
        files={"usermod_spin.py": SLOW_CODE}, at="slow: {call"),
    Row("callable-swallowing-exceptions-is-still-stopped",
        "- id: bad\n  claim: slow > 0\n  timeout: 0.3",
        ("was stopped: the claim's user code ran 0.3 s",), TimeLimitError,
        quantities=q("slow: {call: usermod_stub:stubborn}"),
        files={"usermod_stub.py": SLOW_CODE}, at="slow: {call"),
    Row("timeout-not-a-number",
        "- id: bad\n  claim: norm(N0) > 0\n  timeout: soon",
        ("claim 'bad': 'timeout' must be a number of seconds above 0, not 'soon'",),
        SpecError, at="norm(N0) > 0\n    timeout"),
    Row("timeout-negative",
        "- id: bad\n  claim: norm(N0) > 0\n  timeout: -5",
        ("'timeout' must be a number of seconds above 0, not -5",), SpecError,
        at="norm(N0) > 0\n    timeout"),
    Row("predicate-of-for-all-raises",
        "- id: bad\n  claim: 'for all a in integers(0, 3): usermod_forall:boom(a)'",
        ("claim 'bad': ", "ValueError: the predicate broke"), UserCodeError,
        files={"usermod_forall.py": SLOW_CODE}),

    # -- odd characters in sentences --
    Row("zero-width-space-in-a-sentence",
        "- id: bad\n  claim: \"norm(N0)\\u200b > 0\"",
        ("claim 'bad': unexpected", "hint: expected"), ClaimSyntaxError),
    Row("nul-escape-in-a-sentence",
        "- id: bad\n  claim: \"norm(N0) \\0> 0\"",
        ("claim 'bad': unexpected",), ClaimSyntaxError),
    Row("emoji-as-a-label",
        "- id: bad\n  claim: 😀, N1 cluster with cos > 0.5",
        ("claim 'bad': unexpected '😀,'",), ClaimSyntaxError),

    # -- through pytest: files pytest would skip without a word --
    Row("pytest-fifo-claim-file-is-a-collection-error",
        level="pytest", error=None, setup=fifo("pipe.claims.yaml"),
        expect=("ERROR collecting pipe.claims.yaml", "pipe.claims.yaml is a FIFO (named pipe)"),
        outcomes={"passed": 2, "errors": 1}),
    Row("pytest-symlink-loop-claim-file-is-a-collection-error",
        level="pytest", error=None, setup=loop("loop.claims.yaml"),
        expect=("ERROR collecting loop.claims.yaml", "is a symbolic link loop"),
        outcomes={"passed": 2, "errors": 1}),
    Row("pytest-binary-claim-file-is-a-collection-error",
        level="pytest", error=None,
        setup=lambda folder: (folder / "blob.claims.yaml").write_bytes(b"\x00\xff" * 64),
        expect=("ERROR collecting blob.claims.yaml", "is a binary file"),
        outcomes={"passed": 2, "errors": 1}),
    Row("pytest-timeout-is-an-error-the-others-run",
        "- id: bad\n  claim: slow > 0\n  timeout: 0.3", level="pytest", error=None,
        quantities=q("slow: {call: usermod_sleep_pt:sleepy}"),
        files={"usermod_sleep_pt.py": SLOW_CODE},
        expect=("ERROR model.claims.yaml::bad", "over its time limit of 0.3 s"),
        outcomes={"passed": 2, "errors": 1}, at="slow: {call"),
]
if posix:
    ROWS += HOSTILE_ROWS
else:  # FIFOs, links and signals: POSIX only
    ROWS += [row for row in HOSTILE_ROWS if not any(
        word in row.id for word in ("fifo", "loop", "device", "time-limit", "timeout"))]


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
    if row.make is not None:
        row.make(path)
    return path


def file_text(path: Path) -> str:
    """The claim file's text, when it is a regular UTF-8 file (else empty)."""
    try:
        return path.read_text(encoding="utf-8") if path.is_file() else ""
    except (OSError, UnicodeDecodeError):
        return ""


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
    text = file_text(path)
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
    assert_clear(result.stdout.str(), row, file_text(path), pytester.path)


def test_the_table_is_large_and_its_ids_unique() -> None:
    ids = [row.id for row in ROWS]
    assert len(ids) == len(set(ids))
    assert len(ROWS) >= 40
    assert len(HOSTILE_ROWS) >= 60
    assert all(row.expect for row in ROWS)  # every row asserts a message


def test_a_shared_checkpoint_error_names_each_claim_once(tmp_path: Path) -> None:
    path = write_claims(tmp_path / FILE, claim_file_text(
        f"- id: bad\n  claim: norm(N0) > 0\n- id: good\n  claim: {GOOD}\n", "nope.pt"))
    results = results_by_id(path)
    assert "claim 'good'" not in str(results["bad"].error)
    assert "claim 'bad'" not in str(results["good"].error)
