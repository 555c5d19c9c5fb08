"""An nnU-Net v2 trained-model folder as a segmenter.

The folder is the one nnU-Net writes for a trained model
(``nnUNet_results/DatasetXXX_Name/Trainer__Plans__configuration``) or ``nnUNetv2_export_model_to_zip``
exports::

    dataset.json                 channel_names (the input channels), labels (classes or regions),
                                 regions_class_order (region-based training)
    plans.json                   the configurations: spacing, normalisation, patch, architecture;
                                 image_reader_writer (the axis order the model was trained in)
    fold_X/checkpoint_final.pth  per fold: network_weights, trainer_name, init_args.configuration,
                                 inference_allowed_mirroring_axes (fold_X/checkpoint_best.pth if no final)
    gliotype_segmenter.json      optional: inputs / labels where dataset.json's names are not understood

What gliotype does itself, without nnU-Net's code (:class:`NnUNetFolder` on load): reads and checks
the three kinds of file; reads every checkpoint with ``torch.load(weights_only=True)`` (numpy
scalars and dtypes, which nnU-Net's training log holds, are the only classes allowed besides
tensors: nothing else is unpickled); derives the channel order from ``channel_names`` and the
BraTS label of each output value from ``labels`` (class names, or the regions and
``regions_class_order`` of region-based training: nnU-Net paints the regions in that order,
so each value stands for one region, WT -> 2 edema, TC -> 1 necrotic core, ET -> enhancing, as
:mod:`gliotype.segmentation.labels` says). For nnU-Net's BraTS 2021 conversion (labels 1 edema,
2 necrosis, 3 enhancing; regions whole tumor (1, 2, 3), tumor core (2, 3), enhancing tumor (3))
this gives back BraTS' 2, 1 and 4.

What it leaves to nnU-Net's own code (:meth:`NnUNetFolder.segment`): preprocessing
(cropping, the plans' normalisation, resampling to the plans' spacing), the sliding window with
its Gaussian weighting and mirroring, the ensemble of the folds, resampling back and the
regions -> labels step, through ``nnunetv2.inference.predict_from_raw_data.nnUNetPredictor``
(``manual_initialization`` with the weights read above, ``predict_single_npy_array``), on the
CPU. The images are given in the axis order of the model's reader (``SimpleITKIO`` and
``NibabelIO``: the file's voxel order as z, y, x; ``NibabelIOWithReorient``: RAS first).
nnunetv2 is not a dependency of gliotype (its dependencies would replace torch and bring
compiled packages); without it, segmenting stops with one line saying how to install it
(docs/real-data.md, "No tumour mask").
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import torch

from gliotype.errors import one_line
from gliotype.segmentation.labels import EDEMA, NECROTIC, class_label, map_labels, region_of
from gliotype.segmentation.segmenter import Segmenter, SegmenterError
from gliotype.segmentation.spec import SPEC_FILES, make_spec, read_spec, role_of
from gliotype.utils.logging import get_logger

log = get_logger(__name__)

CHECKPOINTS = ("checkpoint_final.pth", "checkpoint_best.pth")
#: The readers whose axis order gliotype reproduces (plans.json ``image_reader_writer``).
READERS = ("SimpleITKIO", "NibabelIO", "NibabelIOWithReorient")
#: How to install nnU-Net's code without replacing torch (docs/real-data.md).
INSTALL_HINT = ("pip install --no-deps nnunetv2==2.8.1 acvl_utils==0.2.6 batchgenerators==0.25.5 "
                "batchgeneratorsv2==0.3.6 dynamic_network_architectures==0.4.4 blosc2 numexpr msgpack ndindex httpx "
                "connected-components-3d seaborn")
_FOLD = re.compile(r"^fold_(\d+|all)$")


def _checkpoints(folder: Path) -> list[Path]:
    """One checkpoint per ``fold_X`` folder (final, else best), in fold order."""
    out = []
    for sub in sorted(Path(folder).glob("fold_*")):
        if sub.is_dir() and _FOLD.match(sub.name):
            found = next((sub / n for n in CHECKPOINTS if (sub / n).is_file()), None)
            if found is not None:
                out.append(found)
    return out


def is_nnunet_folder(folder: Path) -> bool:
    """``dataset.json``, ``plans.json`` and at least one ``fold_X/checkpoint_final.pth``."""
    folder = Path(folder)
    return (folder / "dataset.json").is_file() and (folder / "plans.json").is_file() and bool(_checkpoints(folder))


def _numpy_globals() -> list:
    """The numpy classes a checkpoint's training log may hold (scalars, dtypes), under the names numpy 1
    and 2 pickle them with: rebuilding them runs no code of the file."""
    try:
        from numpy._core import multiarray
    except ImportError:  # numpy 1
        from numpy.core import multiarray
    out: list = [multiarray.scalar, (multiarray.scalar, "numpy.core.multiarray.scalar"),
                 (multiarray.scalar, "numpy._core.multiarray.scalar"), np.dtype]
    for name in ("float64", "float32", "float16", "int64", "int32", "int16", "int8", "uint8", "bool"):
        cls = type(np.dtype(name))
        out += [cls, (cls, f"numpy.dtypes.{cls.__name__}")]
    return out


def read_checkpoint(path: Path) -> dict:
    """An nnU-Net checkpoint read without unpickling anything but tensors, containers and numpy scalars."""
    try:
        with torch.serialization.safe_globals(_numpy_globals()):
            obj = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:
        if "weights_only" in str(exc) or "Unsupported global" in str(exc):
            raise SegmenterError(f"{path.parent.name}/{path.name} holds objects other than tensors and numbers, "
                                 "and would need unpickling, which gliotype refuses") from None
        raise SegmenterError(f"{path.parent.name}/{path.name} is not a readable checkpoint "
                             f"({type(exc).__name__})") from None
    if not isinstance(obj, dict) or not isinstance(obj.get("network_weights"), dict):
        raise SegmenterError(f"{path.parent.name}/{path.name} is not an nnU-Net checkpoint (no network_weights)")
    return obj


def _brats_of_labels(labels: dict, regions_class_order, enhancing: int) -> list[int] | None:
    """BraTS label of each nnU-Net output value (index), from dataset.json's ``labels``; None if not understood."""
    entries = [(str(name), value) for name, value in labels.items()]
    region_based = any(isinstance(v, (list, tuple)) for _, v in entries)
    mapping: dict[int, int] = {0: 0}
    if region_based:
        regions = [(n, v) for n, v in entries if not (isinstance(v, int) and v == 0)]
        order = list(regions_class_order or [])
        if len(order) != len(regions):
            return None
        to_brats = {"WT": EDEMA, "TC": NECROTIC, "ET": enhancing}
        for (name, _), value in zip(regions, order):
            region = region_of(name)
            if region is None:
                return None
            mapping[int(value)] = to_brats[region]
    else:
        for name, value in entries:
            label = class_label(name)
            if label is None or not isinstance(value, int):
                return None
            mapping[int(value)] = enhancing if label == 4 else label
    return [mapping.get(v, 0) for v in range(max(mapping) + 1)]


class NnUNetFolder(Segmenter):
    """An nnU-Net v2 trained-model folder as a segmenter (module doc)."""

    kind = "nnunet"

    def __init__(self, folder: str | Path, folds: tuple[str, ...] | None = None):
        folder = Path(folder)
        self.label = folder.resolve().name
        self.dataset = self._read_json(folder / "dataset.json", "dataset.json")
        self.plans = self._read_json(folder / "plans.json", "plans.json")
        paths = _checkpoints(folder)
        if folds is not None:
            paths = [p for p in paths if p.parent.name.removeprefix("fold_") in {str(f) for f in folds}]
        if not paths:
            raise self._fail("no fold_X/checkpoint_final.pth")
        self.checkpoint_files = paths
        checkpoints = []
        for p in paths:
            try:
                checkpoints.append(read_checkpoint(p))
            except SegmenterError as exc:
                raise self._fail(str(exc)) from None
        first = checkpoints[0]
        init = first.get("init_args") if isinstance(first.get("init_args"), dict) else {}
        self.configuration = str(init.get("configuration") or folder.name.split("__")[-1])
        configs = self.plans.get("configurations") or {}
        if self.configuration not in configs:
            raise self._fail(f"plans.json has no configuration {self.configuration!r} (its checkpoint's); it has "
                             f"{', '.join(configs) or 'none'}")
        self.trainer_name = str(first.get("trainer_name") or folder.name.split("__")[0] or "nnUNetTrainer")
        axes = first.get("inference_allowed_mirroring_axes")
        self.mirror_axes = tuple(int(a) for a in axes) if axes is not None else None
        self.parameters = [c["network_weights"] for c in checkpoints]
        self.reader = str(self.plans.get("image_reader_writer", "SimpleITKIO"))
        if self.reader not in READERS:
            raise self._fail(f"plans.json's image_reader_writer {self.reader} is not one gliotype can reproduce "
                             f"({', '.join(READERS)})")
        values = {**self._derived(), **(read_spec(folder) or {})}
        values.setdefault("output", "labels")
        if "inputs" not in values or "labels" not in values:
            what = "channel_names" if "inputs" not in values else "labels"
            raise self._fail(f"dataset.json's {what} are not understood; write gliotype_segmenter.json beside it "
                             "(docs/real-data.md, 'No tumour mask')")
        if values.get("output") != "labels":
            raise self._fail("an nnU-Net folder gives a label map: gliotype_segmenter.json's output must be 'labels'")
        super().__init__(folder, make_spec(values, f"segmenter {self.label}"))
        self._predictor = None

    def _derived(self) -> dict:
        out: dict = {}
        names = self.dataset.get("channel_names") or self.dataset.get("modality") or {}
        if isinstance(names, dict) and names:
            try:
                ordered = [str(names[k]) for k in sorted(names, key=lambda k: int(k))]
            except (TypeError, ValueError):
                ordered = []
            if ordered and all(role_of(n) for n in ordered):
                out["inputs"] = [role_of(n) for n in ordered]
        labels = self.dataset.get("labels")
        if isinstance(labels, dict) and labels:
            brats = _brats_of_labels(labels, self.dataset.get("regions_class_order"), 4)
            if brats is not None:
                out["labels"] = brats
        return out

    def model_files(self) -> list[Path]:
        files = [self.folder / "dataset.json", self.folder / "plans.json", *self.checkpoint_files,
                 *(self.folder / n for n in SPEC_FILES)]
        return [f for f in files if f.is_file()]

    def describe(self) -> dict:
        return {**super().describe(), "configuration": self.configuration, "folds": len(self.parameters)}

    # ------------------------------------------------------------------ inference through nnunetv2

    def predictor(self):
        """nnU-Net's own predictor, initialised with this folder's plans, network and weights (CPU)."""
        if self._predictor is not None:
            return self._predictor
        try:
            import nnunetv2
            from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor
            from nnunetv2.utilities.find_objects import recursive_find_trainer_class_by_name
            from nnunetv2.utilities.label_handling.label_handling import determine_num_input_channels
            from nnunetv2.utilities.plans_handling.plans_handler import PlansManager
        except ImportError as exc:
            raise self._fail(f"running an nnU-Net model needs the nnunetv2 package ({one_line(exc, 60)}), which "
                             f"gliotype does not install; without replacing torch: {INSTALL_HINT}") from None
        import inspect

        log.info("nnU-Net %s: configuration %s, %d fold(s), trainer %s", nnunetv2.__name__, self.configuration,
                 len(self.parameters), self.trainer_name)
        try:
            plans = PlansManager(self.plans)
            config = plans.get_configuration(self.configuration)
            inputs = determine_num_input_channels(plans, config, self.dataset)
            trainer = recursive_find_trainer_class_by_name(self.trainer_name)
            outputs = plans.get_label_manager(self.dataset).num_segmentation_heads
            if "plans_manager" in inspect.signature(trainer.build_network_architecture).parameters:
                network = trainer.build_network_architecture(plans, config, inputs, outputs,
                                                             enable_deep_supervision=False)
            else:
                network = trainer.build_network_architecture(
                    config.network_arch_class_name, config.network_arch_init_kwargs,
                    config.network_arch_init_kwargs_req_import, inputs, outputs, enable_deep_supervision=False)
            network.load_state_dict(self.parameters[0])
            predictor = nnUNetPredictor(tile_step_size=0.5, use_gaussian=True, use_mirroring=True,
                                        perform_everything_on_device=False, device=torch.device("cpu"),
                                        verbose=False, verbose_preprocessing=False, allow_tqdm=False)
            predictor.manual_initialization(network, plans, config, self.parameters, self.dataset, self.trainer_name,
                                            self.mirror_axes)
        except SegmenterError:
            raise
        except Exception as exc:
            raise self._fail(f"nnU-Net cannot build its network from plans.json and the checkpoint "
                             f"({type(exc).__name__}: {one_line(exc, 120)})") from None
        self._predictor = predictor
        return predictor

    def segment(self, image: np.ndarray, affine: np.ndarray) -> np.ndarray:
        import nibabel as nib

        predictor = self.predictor()
        image = np.asarray(image, dtype=np.float32)
        affine = np.asarray(affine, dtype=np.float64)
        ornt = None
        if self.reader == "NibabelIOWithReorient":  # the reader brings the image to RAS first
            ornt = nib.orientations.io_orientation(affine)
            affine = affine @ nib.orientations.inv_ornt_aff(ornt, image.shape[1:])
            image = np.stack([nib.orientations.apply_orientation(c, ornt) for c in image])
        spacing = [float(s) for s in nib.affines.voxel_sizes(affine)]
        zyx = np.ascontiguousarray(image.transpose(0, 3, 2, 1))  # nnU-Net's axis order: z, y, x
        with torch.no_grad():
            seg = predictor.predict_single_npy_array(zyx, {"spacing": spacing[::-1]}, None, None, False)
        seg = np.asarray(seg).transpose(2, 1, 0)
        if ornt is not None:
            back = nib.orientations.ornt_transform(nib.orientations.axcodes2ornt("RAS"), ornt)
            seg = nib.orientations.apply_orientation(seg, back)
        return map_labels(seg, dict(enumerate(self.spec.labels)))


__all__ = ["CHECKPOINTS", "INSTALL_HINT", "NnUNetFolder", "is_nnunet_folder", "read_checkpoint"]
