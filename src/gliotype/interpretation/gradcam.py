"""Grad-CAM of the image encoder f_I (paper section 4.5; Fig. 7D).

"We employed the Grad-CAM to visualize the critical regions on the tumor images."
The class score is the IDH-mutant logit of the multi-modal network's BCE head (the
classifier on <u_T, u_B>, section 4.4), computed through the *whole* network, since
u_I also reaches the prediction through g_T and the node attention (eq. 3). The other
modalities of the patient are held fixed. The target layer is the rectified output of
the last convolutional block of f_I, before its max pooling (``image.features[-1][2]``,
the ReLU), i.e. the last convolutional feature maps at 1/2^(n_blocks - 1) of the crop
resolution. MONAI's :class:`monai.visualize.GradCAM` computes the map on a deep copy of
the network wrapped as ``image -> score`` (MONAI's hooks are never removed, so the
caller's model is left untouched); the map is upsampled trilinearly to the crop size
and divided by its maximum (values in [0, 1]).
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Literal

import nibabel as nib
import numpy as np
import torch
from scipy import ndimage as ndi
from torch import nn

from gliotype.interpretation._common import as_batch, require_classifier
from gliotype.multimodal.model import MultiModalBatch, MultiModalNet

Target = Literal["mutant", "wildtype", "predicted"]


def target_layer_name(model: MultiModalNet, prefix: str = "") -> str:
    """Name of the Grad-CAM target layer: the ReLU of the image encoder's last conv block."""
    if model.image is None:
        raise ValueError("the model has no image encoder (multimodal.encoders lacks 'image')")
    last = len(model.image.features) - 1
    return f"{prefix}image.features.{last}.2"


class ImageScore(nn.Module):
    """``tumor image (B, 4, D, H, W) -> score (B, 1)`` with every other input of ``batch`` fixed.

    The score is ``sign * logit`` of the BCE head: ``sign`` +1 explains IDH mutant,
    -1 wild-type (one sign per patient).
    """

    def __init__(self, model: MultiModalNet, batch: MultiModalBatch, sign: torch.Tensor):
        super().__init__()
        require_classifier(model)
        self.net = model
        self.batch = batch
        self.register_buffer("sign", sign.float())

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        out = self.net(dataclasses.replace(self.batch, tumor_image=image))
        return (self.sign * out.logit).unsqueeze(-1)


def _normalise(cam: torch.Tensor) -> torch.Tensor:
    """Divide every map (B, 1, ...) by its maximum; an all-zero map stays zero."""
    flat = cam.flatten(1)
    peak = flat.max(dim=1).values.clamp_min(torch.finfo(cam.dtype).tiny)
    return (flat / peak[:, None]).clamp(0, 1).view_as(cam)


def tumor_gradcam(
    model: MultiModalNet,
    batch_or_case: MultiModalBatch | Mapping,
    target: Target = "mutant",
    layer: str | None = None,
) -> np.ndarray:
    """Grad-CAM of the tumor image on the crop grid (section 4.5, Fig. 7D).

    Args:
        model: a trained :class:`MultiModalNet` with an image encoder and the BCE head.
        batch_or_case: a :class:`MultiModalBatch` or one patient's item dict (see
            :func:`gliotype.interpretation.as_batch`) holding every modality the model uses.
        target: the class explained: ``mutant`` (the IDH-mutant logit, default),
            ``wildtype`` (its negative) or ``predicted`` (each patient's predicted class).
        layer: target layer name inside ``model`` (default: :func:`target_layer_name`).

    Returns: ``(D, H, W)`` float32 in [0, 1] for one patient, ``(B, D, H, W)`` for a batch
    of B > 1 patients. Deterministic (eval mode); the model is not modified.
    """
    from monai.visualize import GradCAM

    batch = as_batch(batch_or_case)
    require_classifier(model)
    layer = target_layer_name(model) if layer is None else layer
    if batch.tumor_image is None:
        raise ValueError("the batch has no tumor image")
    net = copy.deepcopy(model).eval()
    for p in net.parameters():
        p.requires_grad_(True)
    with torch.no_grad():
        logit = net(batch).logit
    if target == "mutant":
        sign = torch.ones_like(logit)
    elif target == "wildtype":
        sign = -torch.ones_like(logit)
    elif target == "predicted":
        sign = torch.where(logit > 0, 1.0, -1.0)
    else:
        raise ValueError(f"target must be 'mutant', 'wildtype' or 'predicted', got {target!r}")
    wrapper = ImageScore(net, batch, sign).eval()
    names = {n for n, _ in wrapper.named_modules()}
    if f"net.{layer}" not in names:
        raise ValueError(f"no layer {layer!r} in the model")
    cam = GradCAM(nn_module=wrapper, target_layers=f"net.{layer}", postprocessing=_normalise)
    image = batch.tumor_image.detach().float()
    with torch.enable_grad():
        out = cam(x=image, class_idx=0)
    out = out.detach().cpu().numpy()[:, 0].astype(np.float32)
    return out[0] if out.shape[0] == 1 else out


def _same_axes(a: np.ndarray, b: np.ndarray) -> np.ndarray | None:
    """Integer voxel shift from grid ``a`` to grid ``b`` if they share voxel axes, else None."""
    m = np.linalg.inv(b) @ a
    shift = m[:3, 3]
    if np.allclose(m[:3, :3], np.eye(3), atol=1e-4) and np.allclose(shift, np.round(shift), atol=1e-3):
        return np.round(shift).astype(int)
    return None


def gradcam_nifti(
    cam: np.ndarray,
    tumor_image_affine: np.ndarray,
    template_shape: Sequence[int],
    template_affine: np.ndarray,
) -> nib.Nifti1Image:
    """Place a crop-grid map back on the 2 mm template grid (zeros elsewhere).

    ``tumor_image_affine`` is the crop's voxel -> MNI mm affine (``tumor_image.nii.gz``).
    When the crop and the template share voxel axes (the crop is a sub-grid of the
    template, as built by :mod:`gliotype.modalities`) the values are copied exactly;
    otherwise the map is resampled trilinearly.
    """
    cam = np.asarray(cam, dtype=np.float32)
    if cam.ndim != 3:
        raise ValueError(f"cam must be 3D (D, H, W), got shape {cam.shape}")
    shape = tuple(int(s) for s in template_shape)
    crop_aff = np.asarray(tumor_image_affine, dtype=np.float64)
    tpl_aff = np.asarray(template_affine, dtype=np.float64)
    origin = _same_axes(crop_aff, tpl_aff)
    if origin is not None:
        out = np.zeros(shape, dtype=np.float32)
        src, dst = [], []
        for o, c, s in zip(origin, cam.shape, shape):
            lo, hi = max(o, 0), min(o + c, s)
            hi = max(hi, lo)
            dst.append(slice(lo, hi))
            src.append(slice(lo - o, hi - o))
        out[tuple(dst)] = cam[tuple(src)]
    else:
        vox = np.linalg.inv(crop_aff) @ tpl_aff
        coords = np.indices(shape, dtype=np.float64).reshape(3, -1)
        src = vox[:3, :3] @ coords + vox[:3, 3:4]
        out = ndi.map_coordinates(cam, src, order=1, mode="constant", cval=0.0).reshape(shape).astype(np.float32)
    img = nib.Nifti1Image(out, tpl_aff)
    img.header.set_xyzt_units("mm")
    return img


def cam_to_native(cam_img: nib.Nifti1Image | str | Path, workdir: str | Path, patient_id: str,
                  reference_path: str | Path | None = None) -> nib.Nifti1Image:
    """Map a template-grid Grad-CAM (from :func:`gradcam_nifti`) to the patient's native T1c space.

    Uses the registration stored by the preprocessing stage
    (:func:`gliotype.preprocessing.to_native`, linear interpolation).
    """
    from gliotype.preprocessing import to_native

    return to_native(cam_img, workdir, patient_id, reference_path)
