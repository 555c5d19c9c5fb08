"""The three data modalities generated from MRI (paper section 3.2, Fig. 1A).

- ``tumor_image``: x_I, the four sequences multiplied by the tumor mask, cropped.
- ``point_cloud``: x_P, farthest-point samples of the tumor surface mesh.
- the brain network x_B is built from atlas voxel samples (``gliotype.atlases``)
  by the self-supervised models.
"""

from gliotype.modalities.point_cloud import PointCloud, tumor_point_cloud
from gliotype.modalities.tumor_image import TumorImage, tumor_binary_mask, tumor_image

__all__ = ["PointCloud", "TumorImage", "tumor_binary_mask", "tumor_image", "tumor_point_cloud"]
