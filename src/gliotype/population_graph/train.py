"""Train the population-graph GNN on labelled nodes and predict every node (section 3.4).

Transductive as in the paper: the graph holds the labelled classifier-training
patients (half B) and the unlabelled test patients; BCE on labelled nodes only, Adam,
lr 1e-3 x 0.9 every 50 epochs, 200 epochs, mini-batches of 20 labelled nodes
(``batch_size: 0`` takes one full-graph step per epoch, for cohorts of thousands). New
patients are inserted inductively (:func:`insert_nodes`): eq. 8 edges to the stored
nodes, no retraining.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from gliotype.config.schema import PopulationGraphConfig
from gliotype.population_graph.gnn import PopulationGNN
from gliotype.population_graph.graph import PopulationGraph, correlation_edges
from gliotype.utils.training import make_optimizer, make_scheduler, seed_everything


def train_population_gnn(
    graph: PopulationGraph, config: PopulationGraphConfig, seed: int = 0
) -> tuple[PopulationGNN, list[dict]]:
    """Fit a :class:`PopulationGNN` on the nodes with a known label (``y >= 0``)."""
    labelled = torch.nonzero(graph.y >= 0).flatten()
    if len(labelled) < 2 or len(torch.unique(graph.y[labelled])) < 2:
        raise ValueError("the population graph needs labelled patients of both classes")
    generator = seed_everything(seed)
    model = PopulationGNN(graph.x.shape[1], config.gat, config.dropout)
    optimizer = make_optimizer(model.parameters(), config)
    scheduler = make_scheduler(optimizer, config)
    history = []
    step = config.batch_size or len(labelled)  # every step runs the GNN on the whole graph
    for epoch in range(config.epochs):
        model.train()
        perm = labelled[torch.randperm(len(labelled), generator=generator)]
        total = 0.0
        for start in range(0, len(perm), step):
            nodes = perm[start : start + step]
            optimizer.zero_grad(set_to_none=True)
            logit = model(graph.x, graph.edge_index, graph.edge_weight)
            loss = F.binary_cross_entropy_with_logits(logit[nodes], graph.y[nodes])
            loss.backward()
            optimizer.step()
            total += float(loss.detach()) * len(nodes)
        scheduler.step()
        history.append({"epoch": epoch + 1, "loss": total / len(labelled)})
    model.eval()
    return model, history


@torch.no_grad()
def predict_proba(model: PopulationGNN, graph: PopulationGraph) -> np.ndarray:
    """P(IDH mutant) of every node."""
    model.eval()
    return torch.sigmoid(model(graph.x, graph.edge_index, graph.edge_weight)).numpy()


def insert_nodes(
    graph: PopulationGraph,
    node_x: np.ndarray,
    edge_features_new: np.ndarray,
    edge_features_stored: np.ndarray,
    theta: float,
    patient_ids: list[str],
) -> PopulationGraph:
    """Add new patients as nodes with eq. 8 edges (both directions) to the stored nodes.

    ``node_x`` and the edge features must already be standardised like the stored ones.
    New patients are not linked to each other, so each prediction depends on the
    stored cohort only.
    """
    n = graph.num_nodes
    ei, w = correlation_edges(edge_features_new, theta, others=edge_features_stored)
    new_rows = torch.as_tensor(ei[0] + n)
    stored = torch.as_tensor(ei[1])
    edge_index = torch.cat([graph.edge_index, torch.stack([new_rows, stored]), torch.stack([stored, new_rows])], dim=1)
    weight = torch.as_tensor(w)
    return PopulationGraph(
        x=torch.cat([graph.x, torch.as_tensor(node_x, dtype=torch.float32)]),
        edge_index=edge_index,
        edge_weight=torch.cat([graph.edge_weight, weight, weight]),
        y=torch.cat([graph.y, torch.full((len(node_x),), -1.0)]),
        patient_id=graph.patient_id + [str(p) for p in patient_ids],
    )
