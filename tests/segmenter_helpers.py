"""Test helper (import as ``segmenter_helpers``): a tiny tumour segmenter trained here, saved as a
real MONAI bundle folder (no weights are downloaded anywhere in the tests).

:func:`train_tiny` trains a tiny :class:`monai.networks.nets.SegResNet` (:func:`make_network`:
init_filters 4, blocks_down (1, 1), blocks_up (1,)) or any network on easy synthetic cases
(:func:`blob_case`) or on cases of gliotype's synthetic cohorts (:func:`load_case`) to output the
BraTS regions (MONAI's ``ConvertToMultiChannelBasedOnBratsClasses``), with the inputs z-scored as
the BraTS bundle's preprocessing does; :func:`write_bundle` saves a SegResNet as MONAI's BraTS
bundle is laid out (configs/metadata.json, configs/inference.json with network_def,
preprocessing and inferer, models/model.pt a state dict).
"""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import torch

#: The BraTS bundle's channel order (its metadata's channel_def).
CHANNELS = ("t1c", "t1", "t2", "flair")
_FILES = {"t1c": "t1ce", "t1": "t1", "t2": "t2", "flair": "flair"}
NETWORK_DEF = {"_target_": "SegResNet", "spatial_dims": 3, "init_filters": 4, "in_channels": 4, "out_channels": 3,
               "blocks_down": [1, 1], "blocks_up": [1], "norm": "BATCH"}
PATCH = 32
ROI = [32, 32, 32]


def case_files(cohort: Path, pid: str) -> dict[str, Path]:
    base = Path(cohort) / pid / pid
    return {**{r: Path(f"{base}_{s}.nii.gz") for r, s in _FILES.items()}, "mask": Path(f"{base}_seg.nii.gz")}


def load_case(cohort: Path, pid: str) -> tuple[np.ndarray, np.ndarray]:
    """(4, X, Y, Z) float32 in the bundle's channel order, and the BraTS labels."""
    files = case_files(cohort, pid)
    image = np.stack([np.asarray(nib.load(files[r]).dataobj, dtype=np.float32) for r in CHANNELS])
    return image, np.asarray(nib.load(files["mask"]).dataobj).astype(np.uint8)


def blob_case(rng: np.random.Generator, shape=(32, 32, 32)) -> tuple[np.ndarray, np.ndarray]:
    """An easy synthetic case, (4, X, Y, Z) in the bundle's channel order and its BraTS labels: a
    noisy ellipsoid "brain" with a "ventricle" (bright T2, dark FLAIR and T1) and a spherical
    tumour at a random place: edema bright in T2 and FLAIR, an enhancing shell bright in T1c
    around a dark necrotic core."""
    grid = np.stack(np.meshgrid(*[np.arange(s, dtype=np.float32) for s in shape], indexing="ij"))
    centre = (np.array(shape, dtype=np.float32) - 1) / 2
    r_brain = np.array(shape, dtype=np.float32) * 0.45
    brain = (((grid - centre[:, None, None, None]) / r_brain[:, None, None, None]) ** 2).sum(0) <= 1
    ventricle = (((grid - centre[:, None, None, None]) / (r_brain[:, None, None, None] * 0.25)) ** 2).sum(0) <= 1
    radius = rng.uniform(4.5, 6.5)
    offset = rng.uniform(-1, 1, 3) * (r_brain - radius - 2) * 0.7
    dist = np.sqrt(((grid - (centre + offset)[:, None, None, None]) ** 2).sum(0))
    wt, tc, core = dist <= radius, dist <= 0.6 * radius, dist <= 0.35 * radius
    labels = np.zeros(shape, np.uint8)
    labels[wt] = 2
    labels[tc] = 4
    labels[core] = 1
    base = {"t1c": 700.0, "t1": 650.0, "t2": 380.0, "flair": 980.0}
    vent = {"t1c": 300.0, "t1": 250.0, "t2": 1400.0, "flair": 400.0}
    edema = {"t1c": 720.0, "t1": 560.0, "t2": 850.0, "flair": 1600.0}
    enh = {"t1c": 1300.0, "t1": 560.0, "t2": 720.0, "flair": 1400.0}
    nec = {"t1c": 350.0, "t1": 450.0, "t2": 1000.0, "flair": 1300.0}
    image = np.zeros((4,) + tuple(shape), np.float32)
    for k, role in enumerate(CHANNELS):
        ch = np.full(shape, base[role], np.float32)
        ch[ventricle & ~wt] = vent[role]
        ch[labels == 2], ch[labels == 4], ch[labels == 1] = edema[role], enh[role], nec[role]
        ch = ch * rng.uniform(0.8, 1.25) + rng.normal(0, 40, shape).astype(np.float32)
        image[k] = np.where(brain, np.clip(ch, 1, None), 0)
    return image, np.where(brain, labels, 0).astype(np.uint8)


def make_network(seed: int = 0) -> torch.nn.Module:
    from monai.networks.nets import SegResNet

    torch.manual_seed(seed)
    kwargs = {k: v for k, v in NETWORK_DEF.items() if k != "_target_"}
    return SegResNet(**kwargs)


def _crop(image: np.ndarray, target: np.ndarray, rng: np.random.Generator, tumour: bool, wt: int = 1):
    shape = np.array(image.shape[1:])
    size = np.minimum(PATCH, shape)
    if tumour:
        centre = np.argwhere(target[wt] > 0)[rng.integers(0, int((target[wt] > 0).sum()))]
        start = np.clip(centre - size // 2 + rng.integers(-8, 9, 3), 0, shape - size)
    else:
        start = np.array([rng.integers(0, s + 1) for s in shape - size])
    sl = tuple(slice(int(a), int(a + b)) for a, b in zip(start, size))
    return image[(slice(None),) + sl], target[(slice(None),) + sl]


def train_tiny(net: torch.nn.Module, cases: list[tuple[np.ndarray, np.ndarray]], regions=("TC", "WT", "ET"),
               steps: int = 60, seed: int = 0, batch: int = 2, lr: float = 1e-2) -> torch.nn.Module:
    """``net`` trained for ``steps`` steps on patches of ``cases`` (mostly around the tumour) to output the
    BraTS ``regions`` in that channel order (sigmoid), the inputs z-scored over their non-zero voxels
    as the BraTS bundle's preprocessing does."""
    from monai.losses import DiceLoss
    from monai.transforms import ConvertToMultiChannelBasedOnBratsClasses, NormalizeIntensity

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    norm = NormalizeIntensity(nonzero=True, channel_wise=True)
    to_regions = ConvertToMultiChannelBasedOnBratsClasses()  # TC, WT, ET
    order = [("TC", "WT", "ET").index(r) for r in regions]
    data = [(np.asarray(norm(img)), np.asarray(to_regions(lab))[order].astype(np.float32)) for img, lab in cases]
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    dice = DiceLoss(sigmoid=True, smooth_nr=1e-5, smooth_dr=1e-5)
    bce = torch.nn.BCEWithLogitsLoss()
    net.train()
    wt = regions.index("WT")
    for _ in range(steps):
        picks = [data[rng.integers(0, len(data))] for _ in range(batch)]
        xs, ys = zip(*(_crop(img, tgt, rng, rng.random() < 0.8, wt) for img, tgt in picks))
        x, y = torch.from_numpy(np.stack(xs)), torch.from_numpy(np.stack(ys))
        opt.zero_grad()
        out = net(x)
        loss = dice(out, y) + bce(out, y)
        loss.backward()
        opt.step()
    return net.eval()


def write_bundle(folder: Path, net: torch.nn.Module, *, metadata: bool = True, spec: dict | None = None,
                 preprocessing: bool = True, roi=ROI, spatial: list[dict] | None = None) -> Path:
    """``net`` as a MONAI bundle folder laid out as MONAI's BraTS bundle (module doc)."""
    folder = Path(folder)
    (folder / "configs").mkdir(parents=True, exist_ok=True)
    (folder / "models").mkdir(exist_ok=True)
    inference = {
        "imports": ["$import glob", "$import os"],
        "bundle_root": ".",
        "device": "$torch.device('cpu')",
        "network_def": NETWORK_DEF,
        "network": "$@network_def.to(@device)",
        "inferer": {"_target_": "SlidingWindowInferer", "roi_size": list(roi), "sw_batch_size": 1, "overlap": 0.25},
    }
    if preprocessing:
        inference["preprocessing"] = {"_target_": "Compose", "transforms": [
            {"_target_": "LoadImaged", "keys": "image"}, *(spatial or []),
            {"_target_": "NormalizeIntensityd", "keys": "image", "nonzero": True, "channel_wise": True}]}
    (folder / "configs" / "inference.json").write_text(json.dumps(inference, indent=2))
    if metadata:
        meta = {"version": "0.0.1", "task": "tiny test segmenter", "network_data_format": {
            "inputs": {"image": {"type": "image", "num_channels": 4,
                                 "channel_def": {"0": "T1c", "1": "T1", "2": "T2", "3": "FLAIR"}}},
            "outputs": {"pred": {"type": "image", "format": "segmentation", "num_channels": 3,
                                 "channel_def": {"0": "Tumor core", "1": "Whole tumor", "2": "Enhancing tumor"}}}}}
        (folder / "configs" / "metadata.json").write_text(json.dumps(meta, indent=2))
    if spec is not None:
        (folder / "gliotype_segmenter.json").write_text(json.dumps(spec))
    torch.save(net.state_dict(), folder / "models" / "model.pt")
    return folder


def write_case(folder: Path, pid: str, image: np.ndarray, labels: np.ndarray | None = None,
               affine: np.ndarray | None = None) -> dict[str, Path]:
    """A blob case as BraTS 2021 files (``<pid>_t1ce.nii.gz``...; the mask only when ``labels`` is given)."""
    affine = np.diag([2.0, 2.0, 2.0, 1.0]) if affine is None else affine
    folder = Path(folder) / pid
    folder.mkdir(parents=True, exist_ok=True)
    files = {}
    for k, role in enumerate(CHANNELS):
        files[role] = folder / f"{pid}_{_FILES[role]}.nii.gz"
        nib.save(nib.Nifti1Image(image[k].astype(np.float32), affine), files[role])
    if labels is not None:
        files["mask"] = folder / f"{pid}_seg.nii.gz"
        nib.save(nib.Nifti1Image(labels.astype(np.uint8), affine), files["mask"])
    return files


def dice(a: np.ndarray, b: np.ndarray) -> float:
    a, b = np.asarray(a, bool), np.asarray(b, bool)
    return float(2 * (a & b).sum() / max(a.sum() + b.sum(), 1))


# --------------------------------------------------------------------------- nnU-Net v2

#: nnU-Net's BraTS 2021 conversion (Dataset137): channels T1, T1ce, T2, Flair; labels 1 edema,
#: 2 necrosis, 3 enhancing, trained on the regions whole tumour, tumour core, enhancing tumour.
NNUNET_DATASET = {"channel_names": {"0": "T1", "1": "T1ce", "2": "T2", "3": "Flair"},
                  "labels": {"background": 0, "whole tumor": [1, 2, 3], "tumor core": [2, 3], "enhancing tumor": [3]},
                  "regions_class_order": [1, 2, 3], "numTraining": 6, "file_ending": ".nii.gz"}
NNUNET_CHANNELS = ("t1", "t1c", "t2", "flair")
#: A tiny PlainConvUNet (dynamic_network_architectures), as plans.json describes an architecture.
NNUNET_ARCH = {
    "network_class_name": "dynamic_network_architectures.architectures.unet.PlainConvUNet",
    "arch_kwargs": {"n_stages": 2, "features_per_stage": [8, 16], "conv_op": "torch.nn.modules.conv.Conv3d",
                    "kernel_sizes": [[3, 3, 3], [3, 3, 3]], "strides": [[1, 1, 1], [2, 2, 2]],
                    "n_conv_per_stage": [2, 2], "n_conv_per_stage_decoder": [2], "conv_bias": True,
                    "norm_op": "torch.nn.modules.instancenorm.InstanceNorm3d",
                    "norm_op_kwargs": {"eps": 1e-05, "affine": True}, "dropout_op": None, "dropout_op_kwargs": None,
                    "nonlin": "torch.nn.LeakyReLU", "nonlin_kwargs": {"inplace": True}},
    "_kw_requires_import": ["conv_op", "norm_op", "dropout_op", "nonlin"]}


def nnunet_plans(reader: str = "NibabelIO") -> dict:
    """plans.json of a tiny 3d_fullres configuration at 2 mm (nnU-Net's keys)."""
    resample = {"is_seg": False, "order": 3, "order_z": 0, "force_separate_z": None}
    return {
        "dataset_name": "Dataset999_TinyBraTS", "plans_name": "nnUNetPlans",
        "original_median_spacing_after_transp": [2.0, 2.0, 2.0], "original_median_shape_after_transp": [32, 32, 32],
        "image_reader_writer": reader, "transpose_forward": [0, 1, 2], "transpose_backward": [0, 1, 2],
        "experiment_planner_used": "ExperimentPlanner", "label_manager": "LabelManager",
        "foreground_intensity_properties_per_channel": {
            str(k): {"max": 2000.0, "mean": 800.0, "median": 800.0, "min": 0.0, "percentile_00_5": 100.0,
                     "percentile_99_5": 1600.0, "std": 300.0} for k in range(4)},
        "configurations": {"3d_fullres": {
            "data_identifier": "nnUNetPlans_3d_fullres", "preprocessor_name": "DefaultPreprocessor", "batch_size": 2,
            "patch_size": [32, 32, 32], "median_image_size_in_voxels": [32, 32, 32], "spacing": [2.0, 2.0, 2.0],
            "normalization_schemes": ["ZScoreNormalization"] * 4, "use_mask_for_norm": [True] * 4,
            "resampling_fn_data": "resample_data_or_seg_to_shape", "resampling_fn_data_kwargs": resample,
            "resampling_fn_seg": "resample_data_or_seg_to_shape",
            "resampling_fn_seg_kwargs": {**resample, "is_seg": True, "order": 1},
            "resampling_fn_probabilities": "resample_data_or_seg_to_shape",
            "resampling_fn_probabilities_kwargs": {**resample, "order": 1},
            "architecture": NNUNET_ARCH, "batch_dice": True}}}


def nnunet_network(seed: int = 0) -> torch.nn.Module:
    """The tiny PlainConvUNet of :data:`NNUNET_ARCH` built by nnU-Net's own code (needs nnunetv2)."""
    from nnunetv2.utilities.get_network_from_plans import get_network_from_plans

    torch.manual_seed(seed)
    return get_network_from_plans(NNUNET_ARCH["network_class_name"], NNUNET_ARCH["arch_kwargs"],
                                  NNUNET_ARCH["_kw_requires_import"], 4, 3, allow_init=True, deep_supervision=False)


def write_nnunet_folder(folder: Path, weights: dict, *, dataset: dict | None = None, plans: dict | None = None,
                        extra: dict | None = None) -> Path:
    """A trained-model folder as nnU-Net writes it: dataset.json, plans.json, fold_0/checkpoint_final.pth
    (network_weights, trainer_name, init_args, inference_allowed_mirroring_axes, a training log of numpy floats)."""
    folder = Path(folder)
    (folder / "fold_0").mkdir(parents=True, exist_ok=True)
    (folder / "dataset.json").write_text(json.dumps(dataset or NNUNET_DATASET, indent=2))
    (folder / "plans.json").write_text(json.dumps(plans or nnunet_plans(), indent=2))
    checkpoint = {"network_weights": weights, "optimizer_state": {}, "grad_scaler_state": None,
                  "logging": {"mean_fg_dice": [np.float64(0.5), np.float64(0.7)], "ema_fg_dice": [np.float32(0.6)]},
                  "_best_ema": np.float64(0.6), "current_epoch": 2, "trainer_name": "nnUNetTrainer",
                  "init_args": {"plans": plans or nnunet_plans(), "configuration": "3d_fullres", "fold": 0,
                                "dataset_json": dataset or NNUNET_DATASET, "device": torch.device("cpu")},
                  "inference_allowed_mirroring_axes": (0, 1, 2), **(extra or {})}
    torch.save(checkpoint, folder / "fold_0" / "checkpoint_final.pth")
    return folder
