"""Mini-batch logits of a large population graph: the GNN on a batch's neighbourhood only.

A training step needs the logits of its labelled nodes (the seeds) only. With L GAT layers
those depend on the nodes within L hops and on the edges into the nodes within L - 1 hops, so
``population_graph.sampling: neighbour`` runs the GNN on that block instead of the whole
graph: the seeds' logits are those of the full graph (same nodes and edges, in the same
order; :func:`neighbour_block` with no ``fanout``). With ``fanout`` (one count per hop,
nearest hop first, 0 = all) each node of hop h keeps a random ``fanout[h]`` of its in-edges,
GraphSAGE-style: a block of at most ``seeds x prod(fanout)`` nodes whatever N, and the
logits an estimate. The samples are drawn from a generator of their own (seeded), so the
training's other draws do not move.

PyG's ``NeighborLoader`` needs ``pyg-lib`` or ``torch-sparse`` (neither has a wheel for this
torch on PyPI), so the block is built here from a CSR of the in-edges. :func:`block_proba`
gives a few nodes' probabilities the same way (a new patient inserted into a large stored graph).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from gliotype.population_graph.graph import PopulationGraph


class NeighbourSampler:
    """The blocks of a fixed graph: in-edges grouped by target (CSR), original order kept."""

    def __init__(self, graph: PopulationGraph, hops: int, fanout: Sequence[int] = (), seed: int = 0):
        if fanout and len(fanout) != hops:
            raise ValueError(f"fanout needs one count per hop ({hops}), got {list(fanout)}")
        self.graph, self.hops, self.fanout = graph, int(hops), [int(f) for f in fanout]
        n = graph.num_nodes
        target = graph.edge_index[1]
        self.order = torch.argsort(target, stable=True)  # edge ids grouped by target
        self.source = graph.edge_index[0][self.order]
        self.indptr = torch.zeros(n + 1, dtype=torch.long)
        self.indptr[1:] = torch.cumsum(torch.bincount(target, minlength=n), 0)
        self.generator = torch.Generator().manual_seed(int(seed))

    def _in_edges(self, targets: torch.Tensor, fanout: int) -> torch.Tensor:
        """Positions (in ``self.order``) of the in-edges of ``targets``, at most ``fanout`` each (0: all)."""
        start, count = self.indptr[targets], self.indptr[targets + 1] - self.indptr[targets]
        total = int(count.sum())
        offset = torch.repeat_interleave(torch.cumsum(count, 0) - count, count)
        pos = torch.repeat_interleave(start, count) + torch.arange(total) - offset
        if not fanout or total == 0:
            return pos
        group = torch.repeat_interleave(torch.arange(len(targets)), count)
        key = torch.rand(total, generator=self.generator, dtype=torch.float64)
        order = torch.argsort(group.double() + key)  # random order within each target's edges
        rank = torch.arange(total) - offset
        return pos[order][rank < fanout]

    def block(self, seeds: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(nodes, edge_index, edge_weight, seed_rows)``: the sorted nodes the seeds' logits depend on,
        the block's edges renumbered to rows of ``nodes`` (original edge order), their weights and the
        seeds' rows."""
        g = self.graph
        seen = torch.zeros(g.num_nodes, dtype=torch.bool)
        frontier = torch.unique(seeds)
        seen[frontier] = True
        picked = []
        for hop in range(self.hops):
            if len(frontier) == 0:
                break
            pos = self._in_edges(frontier, self.fanout[hop] if self.fanout else 0)
            picked.append(self.order[pos])
            sources = torch.unique(self.source[pos])
            frontier = sources[~seen[sources]]
            seen[frontier] = True
        edges = torch.sort(torch.cat(picked))[0] if picked else torch.zeros(0, dtype=torch.long)
        nodes = torch.nonzero(seen).flatten()
        row = torch.full((g.num_nodes,), -1, dtype=torch.long)
        row[nodes] = torch.arange(len(nodes))
        return nodes, row[g.edge_index[:, edges]], g.edge_weight[edges], row[seeds]

    def logits(self, model: torch.nn.Module, seeds: torch.Tensor) -> torch.Tensor:
        """The model's logits of ``seeds`` computed on their block."""
        nodes, edge_index, weight, rows = self.block(seeds)
        return model(self.graph.x[nodes], edge_index, weight)[rows]


@torch.no_grad()
def block_proba(model: torch.nn.Module, graph: PopulationGraph, nodes) -> torch.Tensor:
    """P(IDH mutant) of ``nodes`` from the GNN (evaluation mode) on their block: the full graph's
    values (within float rounding) at the cost of their ``len(gat)``-hop neighbourhood."""
    model.eval()
    nodes = torch.as_tensor(nodes, dtype=torch.long)
    return torch.sigmoid(NeighbourSampler(graph, len(model.hidden)).logits(model, nodes))


def batch_forward(model: torch.nn.Module, graph: PopulationGraph, config, seed: int = 0
                  ) -> Callable[[torch.Tensor], torch.Tensor]:
    """What a training step calls for the logits: ``forward(nodes)`` -> (N,) logits of which the rows
    ``nodes`` are the batch's. ``config.sampling``: ``full`` runs the GNN on the whole graph (every
    row filled), ``neighbour`` on the batch's block (:class:`NeighbourSampler`; other rows 0)."""
    if config.sampling == "full":
        return lambda nodes: model(graph.x, graph.edge_index, graph.edge_weight)
    sampler = NeighbourSampler(graph, len(config.gat), config.fanout, seed)

    def forward(nodes: torch.Tensor) -> torch.Tensor:
        out = sampler.logits(model, nodes)
        return out.new_zeros(graph.num_nodes).index_copy(0, nodes, out)

    return forward


__all__ = ["NeighbourSampler", "batch_forward", "block_proba"]
