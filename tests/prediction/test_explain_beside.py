"""The explanations of one patient run GNNExplainer in a thread beside Grad-CAM (issue 17's faster
predict): the numbers are those of each explanation computed alone."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pandas as pd
from pred_helpers import split_ids

from gliotype.interpretation import explain_edges, load_case_batch, tumor_gradcam
from gliotype.prediction.explain import explain_case
from gliotype.utils.training import torch_threads


def test_edges_and_gradcam_beside_each_other_equal_each_alone(tiny_run, tiny_model, tmp_path):
    model, work = tiny_model.multimodal, tiny_run / "run" / "work"
    pid = split_ids(tiny_run / "run")[0]
    info = explain_case(model, work, pid, tmp_path, tiny_model.region_centroids, tiny_model.region_names,
                        epochs=40, seed=3)
    batch = load_case_batch(work, pid, model.config.encoders)
    with torch_threads(1):
        alone = explain_edges(model, batch, epochs=40, seed=3)
        cam = tumor_gradcam(model, batch, target="predicted")
    np.testing.assert_array_equal(info["edge_probabilities"], alone)
    table = pd.read_csv(tmp_path / "edges.csv")
    np.testing.assert_allclose(table["probability"], np.round(alone, 6))
    saved = np.asarray(nib.load(tmp_path / "gradcam.nii.gz").dataobj)
    assert saved.max() > 0 and np.isclose(saved.max(), cam.max(), rtol=1e-5)
    assert set(info["seconds"]) == {"gradcam", "figure7", "edges"}
