"""A model folder of an ann population graph (docs/scale-out.md): ``population_graph/neighbours.faiss``
is listed in the manifest, read without unpickling, gives the training graph back, and links a new
patient through the index. Uses the session's tiny trained model (conftest.py), copied, with its
config switched to ``neighbours: ann`` (the GNN was trained on the exact graph; only the graph and the
insertion are checked here)."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import yaml

from gliotype.bundle import write_manifest
from gliotype.config import GliotypeConfig, config_hash, save_config
from gliotype.errors import GliotypeError
from gliotype.layout import ModelDir
from gliotype.prediction import load_model
from gliotype.prediction.insertion import graph_predict


def _ann_folder(tiny_run, tmp_path, write_index: bool = True) -> ModelDir:
    from gliotype.experiment.export import _save_neighbours

    model = ModelDir(tmp_path / "model")
    shutil.copytree(tiny_run / "run" / "model", model.root)
    raw = yaml.safe_load(model.config.read_text())
    raw["population_graph"].update(neighbours="ann", max_neighbours=2)
    config = GliotypeConfig.model_validate(raw)
    save_config(config, model.config)
    pg = model.population_graph
    if write_index:
        with np.load(pg.nodes) as nodes, np.load(pg.standardisation) as st:
            edge = json.loads(pg.meta.read_text())["edge_weight"]
            _save_neighbours(pg.neighbours, nodes["u_t"], nodes["u_b"], edge, dict(st), "ann")
    write_manifest(model, config_hash(config))
    return model


def test_an_ann_model_folder_lists_its_index_and_links_new_patients_through_it(tiny_run, tmp_path):
    from gliotype.population_graph.neighbours import neighbour_edges

    folder = _ann_folder(tiny_run, tmp_path / "stored")
    rel = folder.population_graph.neighbours.relative_to(folder.root).as_posix()
    assert rel in json.loads(folder.manifest.read_text())["files"]
    model = load_model(folder.root)
    assert model.neighbours is not None and model.neighbours.index is not None
    assert model.neighbours.index.ntotal == model.graph.num_nodes
    ei, w = neighbour_edges(model.edge_features, model.theta, "ann", 2)
    assert np.array_equal(model.graph.edge_index.numpy(), ei) and np.array_equal(model.graph.edge_weight.numpy(), w)
    # without the file the index is built again at load: the same graph, the same prediction
    rebuilt = load_model(_ann_folder(tiny_run, tmp_path / "built", write_index=False).root)
    assert rebuilt.neighbours.index is not None
    assert np.array_equal(rebuilt.graph.edge_index.numpy(), ei)
    # leave out the stored patient with the most edges and insert it again through the index
    i = int(np.argmax(np.bincount(ei[0], minlength=model.graph.num_nodes)))
    pid = model.patient_ids[i]
    with np.load(folder.population_graph.nodes) as nodes:
        u_t, u_b = nodes["u_t"][i : i + 1], nodes["u_b"][i : i + 1]
    a = graph_predict(model.without([pid]), u_t, u_b, pid, draws=4)
    b = graph_predict(rebuilt.without([pid]), u_t, u_b, pid, draws=4)
    assert a["probability"] == b["probability"] and np.array_equal(a["draws"], b["draws"])
    assert 1 <= a["neighbours"] < model.graph.num_nodes
    # the probability comes from the new node's block: that of the GNN on the whole inserted graph
    from gliotype.population_graph import insert_nodes, predict_proba, select_features

    loo = model.without([pid])
    node_x, edge_x = loo.standardise(select_features(u_t, u_b, model.meta["node_weight"]),
                                     select_features(u_t, u_b, model.meta["edge_weight"]))
    full = insert_nodes(loo.graph, node_x, edge_x, None, model.theta, [pid], neighbours=loo.neighbours)
    assert a["probability"] == pytest.approx(float(predict_proba(model.gnn, full)[-1]), abs=1e-6)


def test_a_changed_or_unlisted_index_is_refused(tiny_run, tmp_path):
    folder = _ann_folder(tiny_run, tmp_path / "changed")
    index = folder.population_graph.neighbours
    index.write_bytes(index.read_bytes()[:-8] + b"\0" * 8)
    with pytest.raises(GliotypeError, match="neighbours.faiss"):
        load_model(folder.root)
    unlisted = _ann_folder(tiny_run, tmp_path / "unlisted", write_index=False)
    shutil.copy2(folder.population_graph.neighbours, unlisted.population_graph.neighbours)
    with pytest.raises(GliotypeError, match="neighbours.faiss is not listed"):
        load_model(unlisted.root)
