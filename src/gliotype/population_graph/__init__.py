"""Population graph of patients and the GNN node classifier (paper section 3.4)."""

from gliotype.population_graph.gnn import PopulationGNN
from gliotype.population_graph.graph import (
    TABLE1,
    TABLE1_NAMES,
    PopulationGraph,
    build_population_graph,
    correlation_edges,
    select_features,
    table1_graph,
)
from gliotype.population_graph.train import (
    insert_nodes,
    out_of_fold_predictions,
    predict_proba,
    train_population_gnn,
    validation_nodes,
)

__all__ = [
    "TABLE1",
    "TABLE1_NAMES",
    "PopulationGNN",
    "PopulationGraph",
    "build_population_graph",
    "correlation_edges",
    "insert_nodes",
    "out_of_fold_predictions",
    "predict_proba",
    "select_features",
    "table1_graph",
    "train_population_gnn",
    "validation_nodes",
]
