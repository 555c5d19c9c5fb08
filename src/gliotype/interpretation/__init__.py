"""Interpretation of the multi-modal network (paper section 4.5, results in section 5.4, Figs. 7-8).

- :func:`tumor_gradcam`: Grad-CAM of the image encoder f_I on the tumor crop (Fig. 7D),
  :func:`gradcam_nifti` places it on the 2 mm template grid, :func:`cam_to_native` in
  the patient's native space.
- :func:`project_to_points`: a voxel map sampled at the tumor surface points (Fig. 7E);
  :func:`point_attention`: the geometric attention of f_P on every point (Fig. 7F);
  :func:`agreement`: their Spearman correlation.
- :func:`explain_edges`: GNNExplainer importance probability of every tract of the
  brain network; :func:`important_edges` keeps those above 50%;
  :func:`cohort_edge_summary` compares their density between IDH groups (section 5.4).
- :func:`figure7`, :func:`figure8`, :func:`region_centroids`: the figures; :func:`connectome_matrix`
  the region-by-region matrix Fig. 8 draws.

See ``docs/interpretation.md``.
"""

from gliotype.interpretation._common import as_batch, load_case_batch
from gliotype.interpretation.edges import (
    BrainNetworkScore,
    CohortEdgeSummary,
    cohort_edge_summary,
    edge_density,
    explain_edges,
    explain_graph_edges,
    important_edges,
)
from gliotype.interpretation.figures import connectome_matrix, figure7, figure8, region_centroids
from gliotype.interpretation.gradcam import (
    ImageScore,
    cam_to_native,
    gradcam_nifti,
    target_layer_name,
    tumor_gradcam,
)
from gliotype.interpretation.points import agreement, point_attention, project_to_points

__all__ = [
    "BrainNetworkScore",
    "CohortEdgeSummary",
    "ImageScore",
    "agreement",
    "as_batch",
    "cam_to_native",
    "cohort_edge_summary",
    "edge_density",
    "explain_edges",
    "explain_graph_edges",
    "figure7",
    "connectome_matrix",
    "figure8",
    "gradcam_nifti",
    "important_edges",
    "load_case_batch",
    "point_attention",
    "project_to_points",
    "region_centroids",
    "target_layer_name",
    "tumor_gradcam",
]
