"""What circuit hypothesis tests need for circuits of edges (``edges: [L0H1 -> L1H2.k]``):
the model's every edge (the universe that random circuits are drawn from and that faithfulness
ablates outside the circuit) and the edge ablation's passes
(:mod:`interp_assert.evaluate.circuit_edges`)."""

from __future__ import annotations

from interp_assert.claims.base import Context
from interp_assert.evaluate.circuit_edges import EdgeAblation, check_edges, edge_universe
from interp_assert.evaluate.circuit_layout import Layout
from interp_assert.evaluate.interventions import component_pool
from interp_assert.loading.circuits import Circuit
from interp_assert.loading.data import DatasetSpec


def circuit_edge_universe(ctx: Context, circuit: Circuit) -> list[str]:
    """Every edge of the model; an edge naming a head the model lacks is an error."""
    heads = component_pool(ctx, "head")
    check_edges(circuit.edges, heads, circuit.name)
    return edge_universe(heads)


def edge_ablation(ctx: Context, circuit: Circuit, reference: DatasetSpec, target: DatasetSpec,
                  layout: Layout) -> EdgeAblation | None:
    """The edge ablation of an edge circuit (None for a circuit of heads and neurons)."""
    if not circuit.edges:
        return None
    return EdgeAblation(ctx, component_pool(ctx, "head"), reference, target, layout)
