"""Train the population-graph GNN on labelled nodes and predict every node (section 3.4).

Transductive as in the paper: the graph holds the labelled classifier-training
patients (half B) and the unlabelled test patients; BCE on labelled nodes only, Adam,
lr 1e-3 x 0.9 every 50 epochs, 200 epochs, mini-batches of 20 labelled nodes
(``batch_size: 0`` takes one full-graph step per epoch, for cohorts of thousands). New
patients are inserted inductively (:func:`insert_nodes`): eq. 8 edges to the stored
nodes, no retraining.

Validation (not in the paper, ``val_fraction > 0``): a stratified, seeded part of the
labelled nodes is left out of the loss; after every epoch their BCE (or AUC, ties
broken by the BCE) is measured, training stops after ``patience`` epochs without
improvement and the best epoch's weights are kept. Their predictions are out-of-fit, so
the decision threshold can be chosen on them (:mod:`gliotype.experiment.tables`).
Without giving up labelled nodes, :func:`out_of_fold_predictions` (``threshold_folds``)
gives every labelled node an out-of-fit prediction from k extra GNNs, like
``cross_val_predict``.
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import train_test_split

from gliotype.config.schema import PopulationGraphConfig, TrainConfig
from gliotype.population_graph.gnn import PopulationGNN
from gliotype.population_graph.graph import PopulationGraph, correlation_edges
from gliotype.population_graph.minibatch import batch_forward
from gliotype.utils import distributed
from gliotype.utils.training import make_optimizer, make_scheduler, seed_everything

if TYPE_CHECKING:
    from gliotype.population_graph.neighbours import StoredNeighbours


def validation_nodes(graph: PopulationGraph, fraction: float, seed: int = 0) -> np.ndarray:
    """Indices of a stratified, seeded ``fraction`` of the labelled nodes (sorted; empty when 0)."""
    labelled = np.flatnonzero(graph.y.numpy() >= 0)
    if fraction <= 0:
        return np.zeros(0, dtype=np.int64)
    y = graph.y.numpy()[labelled].astype(int)
    counts = np.bincount(y, minlength=2)
    n_val = int(np.ceil(fraction * len(labelled)))
    if counts.min() < 2 or n_val < 2 or len(labelled) - n_val < 2:
        raise ValueError(f"population_graph.val_fraction={fraction} needs at least 2 labelled patients of each "
                         f"class and leaves 2 in each part; there are {counts[0]} wild-type and {counts[1]} mutant")
    _, val = train_test_split(labelled, test_size=n_val, stratify=y, random_state=seed)
    return np.sort(val).astype(np.int64)


def train_population_gnn(
    graph: PopulationGraph, config: PopulationGraphConfig, seed: int = 0, val_nodes: np.ndarray | None = None,
    train: TrainConfig | None = None,
) -> tuple[PopulationGNN, list[dict]]:
    """Fit a :class:`PopulationGNN` on the nodes with a known label (``y >= 0``).

    ``val_nodes`` (labelled nodes left out of the loss) default to
    :func:`validation_nodes` of ``config.val_fraction``. With validation nodes every
    history row also has ``val_loss`` and ``val_auc``, the returned model has the weights
    of the best epoch and its row ``best: True``.

    ``train.processes`` > 1: that many processes each take a slice of every step's labelled
    nodes (the forward stays the whole graph in each) and average their gradients: the history
    of one process within float rounding (CPU, float32; docs/scale-out.md).
    """
    from gliotype.utils.launch import launch, spans_processes

    if spans_processes(train):
        train = train.model_copy(update={"device": "cpu", "backend": "gloo", "precision": "32"})  # the graph's tensors
        state, history, rng = launch(_train_process, (graph, config, seed, val_nodes, train), train,
                                     "population GNN")
        model = PopulationGNN(graph.x.shape[1], config.gat, config.dropout, config.residual)
        model.load_state_dict(state)
        torch.set_rng_state(rng)
        return model.eval(), history
    group = distributed.worker()
    labelled = torch.nonzero(graph.y >= 0).flatten()
    if len(labelled) < 2 or len(torch.unique(graph.y[labelled])) < 2:
        raise ValueError("the population graph needs labelled patients of both classes")
    if val_nodes is None:
        val_nodes = validation_nodes(graph, config.val_fraction, seed)
    val = torch.as_tensor(np.asarray(val_nodes, dtype=np.int64))
    if len(val) and not bool((graph.y[val] >= 0).all()):
        raise ValueError("validation nodes of the population graph must be labelled")
    if len(val) and config.val_metric == "auc" and len(torch.unique(graph.y[val])) < 2:
        raise ValueError("population_graph.val_metric=auc needs validation nodes of both classes")
    fit_nodes = labelled[~torch.isin(labelled, val)] if len(val) else labelled
    if len(torch.unique(graph.y[fit_nodes])) < 2:
        raise ValueError("the population graph needs fitted patients of both classes besides the validation ones")
    generator = seed_everything(seed)
    model = PopulationGNN(graph.x.shape[1], config.gat, config.dropout, config.residual)
    optimizer = make_optimizer(model.parameters(), config)
    scheduler = make_scheduler(optimizer, config)
    forward = batch_forward(model, graph, config, seed)  # sampling: the whole graph or each batch's block
    history: list[dict] = []
    best, best_state, best_row, waited = (-np.inf,), None, None, 0
    step = config.batch_size or len(fit_nodes)  # every step runs the GNN on the whole graph
    for epoch in range(config.epochs):
        model.train()
        perm = fit_nodes[torch.randperm(len(fit_nodes), generator=generator)]
        total = 0.0
        for start in range(0, len(perm), step):
            nodes = perm[start : start + step]
            optimizer.zero_grad(set_to_none=True)
            logit = forward(nodes)
            loss = F.binary_cross_entropy_with_logits(logit[nodes], graph.y[nodes])
            if group is None:
                loss.backward()
            else:  # this process's slice of the step's nodes, summed and scaled: the mean once averaged
                part = distributed.shard_of(len(nodes), group.rank, group.world)
                mine = nodes[part.start : part.stop]
                scale = 1.0 / len(nodes) if part.sizes is None else group.world / len(nodes)
                (F.binary_cross_entropy_with_logits(logit[mine], graph.y[mine], reduction="sum") * scale).backward()
                distributed.average_gradients(model.parameters())
            optimizer.step()
            total += float(loss.detach()) * len(nodes)
        scheduler.step()
        row = {"epoch": epoch + 1, "loss": total / len(fit_nodes)}
        history.append(row)
        if not len(val):
            continue
        row.update(_validate(model, graph, val))
        current = (-row["val_loss"],) if config.val_metric == "bce" else (row["val_auc"], -row["val_loss"])
        if current > best:
            best, best_state, best_row, waited = current, copy.deepcopy(model.state_dict()), row, 0
        else:
            waited += 1
            if config.patience and waited >= config.patience:
                break
    if best_state is not None:
        model.load_state_dict(best_state)
        best_row["best"] = True
    model.eval()
    return model, history


def _train_process(graph, config, seed, val_nodes, train) -> tuple[dict, list[dict], torch.Tensor]:
    """:func:`train_population_gnn` in one process of a data-parallel training."""
    model, history = train_population_gnn(graph, config, seed, val_nodes, train)
    return model.state_dict(), history, torch.get_rng_state()


def out_of_fold_predictions(graph: PopulationGraph, config: PopulationGraphConfig, folds: int,
                            seed: int = 0, unlabelled: bool = False) -> np.ndarray:
    """P(IDH mutant) of each labelled node from a GNN trained with its fold's labels hidden (NaN elsewhere).

    Seeded stratified ``folds``-fold split of the labelled nodes; each fold's GNN is the
    same configuration trained on the other folds (the fold's nodes stay in the graph,
    unlabelled, as test nodes do), so these predictions are out-of-fit: the threshold
    can be chosen on them while the reported model is trained on every labelled node.
    With ``unlabelled`` the nodes without a label (the test patients) get the mean of the
    fold GNNs' predictions instead of NaN: the same patients on the scale of the threshold
    predictions (``population_graph.threshold_transfer: rank``, design.md point 40).
    """
    from sklearn.model_selection import StratifiedKFold

    labelled = np.flatnonzero(graph.y.numpy() >= 0)
    y = graph.y.numpy()[labelled].astype(int)
    if np.bincount(y, minlength=2).min() < folds:
        raise ValueError(f"population_graph.threshold_folds={folds} needs at least {folds} labelled patients of each "
                         "class")
    out = np.full(graph.num_nodes, np.nan)
    others = np.flatnonzero(graph.y.numpy() < 0)
    fold_mean = np.zeros(len(others))
    split = StratifiedKFold(folds, shuffle=True, random_state=seed).split(labelled, y)
    for _, held in split:
        nodes = labelled[held]
        hidden = graph.y.clone()
        hidden[nodes] = -1.0
        part = PopulationGraph(graph.x, graph.edge_index, graph.edge_weight, hidden, graph.patient_id)
        model, _ = train_population_gnn(part, config, seed, val_nodes=np.zeros(0, dtype=np.int64))
        p = predict_proba(model, part)
        out[nodes] = p[nodes]
        fold_mean += p[others] / folds
    if unlabelled:
        out[others] = fold_mean
    return out


@torch.no_grad()
def _validate(model: PopulationGNN, graph: PopulationGraph, val: torch.Tensor) -> dict:
    """BCE and AUC of the validation nodes (evaluation mode: no dropout)."""
    model.eval()
    logit = model(graph.x, graph.edge_index, graph.edge_weight)[val]
    y = graph.y[val]
    return {"val_loss": float(F.binary_cross_entropy_with_logits(logit, y)),
            "val_auc": float(roc_auc_score(y.numpy(), logit.numpy()))}


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
    neighbours: StoredNeighbours | None = None,
) -> PopulationGraph:
    """Add new patients as nodes with eq. 8 edges (both directions) to the stored nodes.

    ``node_x`` and the edge features must already be standardised like the stored ones.
    New patients are not linked to each other, so each prediction depends on the
    stored cohort only. ``neighbours`` (a capped or ann graph: ``population_graph.neighbours``,
    ``max_neighbours``): the edges come from it (its index is queried, not every stored row
    scanned; ``edge_features_stored`` is not read), else from every stored row.
    """
    n = graph.num_nodes
    if neighbours is not None:
        ei, w = neighbours.link(edge_features_new)
    else:
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
