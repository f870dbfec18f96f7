"""Circuit names in expressions and ``circuit:`` quantities (``W_OV``, ``K-composition``, ...)
and the weight-reading expression functions ``congruence()`` and ``projection()``.

Per-layer weights are stacked over layers as in TransformerLens (``W_Q`` is
``[layer, head, d_model, d_head]``, ``W_O`` ``[layer, head, d_head, d_model]``) and then the
layer axis is merged into the component axis, so that every head has one label ``L{l}H{h}`` and
every MLP neuron one label ``L{l}N{i}``:

=============  =================================  ====================================
name           axes                               from
=============  =================================  ====================================
W_Q W_K W_V    head, d_model, d_head              ``blocks.{l}.attn.W_Q`` ...
W_O            head, d_head, d_model              ``blocks.{l}.attn.W_O``
W_OV           head, d_model, d_model_out         ``W_V @ W_O``
W_QK           head, d_model_q, d_model_k         ``W_Q @ W_Kᵀ``
W_in           d_model, neuron                    ``blocks.{l}.mlp.W_in``
W_out          neuron, d_model                    ``blocks.{l}.mlp.W_out``
W_E W_pos      token / pos, d_model               ``embed.W_E``, ``pos_embed.W_pos``
W_U            d_model, token                     ``unembed.W_U``
Q-composition  writer, reader (heads)             see :func:`.composition_scores`
head-neuron    head, neuron                       see :func:`.head_neuron_scores`
=============  =================================  ====================================

Models with other parameter names describe them in the claim file's ``layout:`` section (see
:class:`~interp_assert.evaluate.circuit_layout.Layout`). The weights are read in
:mod:`~interp_assert.evaluate.circuit_weights`, the scores computed in
:mod:`~interp_assert.evaluate.circuit_scores`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from interp_assert.errors import QuantityError
from interp_assert.evaluate.circuit_layout import CIRCUIT_NAMES
from interp_assert.evaluate.circuit_scores import congruence
from interp_assert.evaluate.circuit_weights import WeightContext, weights_for
from interp_assert.labels import Axis, Labelled

if TYPE_CHECKING:
    from interp_assert.language import ast


class ExpressionContext(WeightContext, Protocol):
    """What the weight-reading expression functions need: the weights and other values."""

    def value(self, node: ast.Node) -> Labelled: ...


def is_circuit_name(name: str) -> bool:
    """Whether the engine resolves ``name`` to a circuit quantity."""
    return name in CIRCUIT_NAMES


def circuit_quantity(ctx: WeightContext, name: str) -> Labelled:
    """A built-in circuit name (``W_OV``, ``K-composition`` ...) as a labelled array."""
    return weights_for(ctx).labelled(name).with_name(name)


CONTEXT_FUNCTIONS = frozenset({"congruence", "projection"})


def call_context_function(ev: ExpressionContext, node: ast.Call) -> Labelled | None:
    """Functions that read the model's weights: ``congruence(target)`` (cosine of every MLP
    neuron's output direction with ``target``), ``congruence(directions, target)``, and
    ``projection(...)`` (the same with unnormalised directions). A number as the target means
    that token's unembedding direction (a column of W_U). None for other functions."""
    from interp_assert.language import ast as language_ast

    if node.func not in CONTEXT_FUNCTIONS:
        return None
    if len(node.args) not in (1, 2):
        raise QuantityError(f"{node.func}() takes (target) or (directions, target)")

    def direction(arg: ast.Node) -> Labelled:
        if isinstance(arg, language_ast.Number):
            w_u = circuit_quantity(ev, "W_U")
            token = int(arg.value)
            if not 0 <= token < w_u.shape[1]:
                raise QuantityError(f"token {token} is outside the vocabulary (0..{w_u.shape[1]})")
            return Labelled(w_u.values[:, token], (Axis("d_model"),), f"W_U[:, {token}]")
        return ev.value(arg)

    if len(node.args) == 1:
        directions, target = circuit_quantity(ev, "W_out"), direction(node.args[0])
    else:
        directions, target = ev.value(node.args[0]), direction(node.args[1])
    return congruence(directions, target, cosine=node.func == "congruence").with_name(str(node))
