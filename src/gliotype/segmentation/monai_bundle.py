"""A MONAI bundle as a segmenter: its network, weights, preprocessing and sliding window.

The folder (MONAI's bundle layout)::

    configs/inference.json   (or .yaml): network_def, and optionally preprocessing and inferer
    configs/metadata.json    network_data_format: the input and output channel_def
    models/model.pt          the weights: a state dict (or {"model": state dict}), read with
                             torch.load(weights_only=True), never unpickled
    models/model.safetensors or the weights as safetensors
    models/model.ts          or a TorchScript network (used when there is no network_def)
    gliotype_segmenter.json  optional: what the metadata does not say (gliotype.segmentation.spec)

The config is read with MONAI's :class:`monai.bundle.ConfigParser`; only three of its items
are built: ``network_def``, ``preprocessing`` and the ``inferer``'s window (never the
bundle's datasets, handlers or workflows). A bundle config is Python as much as data
(``_target_`` components, ``$`` expressions): use bundles from people you trust, as MONAI
itself says of :func:`monai.bundle.load`.

Inference (:meth:`MonaiBundle.segment`), on the CPU, on the patient's T1c grid:

1. preprocessing: the bundle's own ``preprocessing`` without its file-loading transforms
   (``LoadImaged``, ``EnsureChannelFirstd``) when the config declares one (``preprocessing:
   auto``), else each channel z-scored over its non-zero voxels
   (:class:`monai.transforms.NormalizeIntensity`, ``nonzero``, ``channel_wise``, as the BraTS bundle does);
2. :func:`monai.inferers.sliding_window_inference` with the bundle's window (its
   ``SlidingWindowInferer``: ``roi_size``, ``overlap``, ``sw_batch_size``), else 128^3, 0.25;
3. sigmoid (``regions``) or softmax (``labels``); spatial preprocessing (``Orientationd``,
   ``Spacingd``...) inverted as the bundle's ``Invertd`` does, back onto the T1c grid;
4. BraTS labels (:mod:`gliotype.segmentation.labels`).

MONAI's BraTS bundle (``brats_mri_segmentation``) declares channels T1c, T1, T2, FLAIR in
its metadata and outputs TC, WT, ET: it needs no ``gliotype_segmenter.json``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from gliotype.errors import one_line
from gliotype.segmentation.labels import argmax_to_brats, class_label, probabilities_to_brats, region_of
from gliotype.segmentation.segmenter import Segmenter, SegmenterError
from gliotype.segmentation.spec import SPEC_FILES, SegmenterSpec, make_spec, read_spec, role_of
from gliotype.utils.logging import get_logger

log = get_logger(__name__)

CONFIG_NAMES = ("inference.json", "inference.yaml", "inference.yml")
METADATA_NAME = "metadata.json"
WEIGHT_NAMES = ("model.pt", "model.safetensors", "model.ts")
#: The sliding window when neither the spec nor the bundle's inferer gives one.
DEFAULT_ROI = (128, 128, 128)
DEFAULT_OVERLAP = 0.25
#: Transforms of a bundle's preprocessing that read files: left out (gliotype gives the array).
_LOADERS = ("LoadImage", "LoadImaged", "EnsureChannelFirst", "EnsureChannelFirstd", "AddChannel", "AddChanneld")


def _first(folder: Path, names: tuple[str, ...]) -> Path | None:
    return next((folder / n for n in names if (folder / n).is_file()), None)


def is_monai_bundle(folder: Path) -> bool:
    """``configs/`` with an inference config or metadata, and ``models/`` with weights or TorchScript."""
    folder = Path(folder)
    configs = folder / "configs"
    has_config = _first(configs, CONFIG_NAMES + (METADATA_NAME,)) is not None
    return has_config and _first(folder / "models", WEIGHT_NAMES) is not None


def _channel_names(fmt: dict, side: str) -> list[str] | None:
    """The ``channel_def`` names of the first input or output of ``network_data_format``, in channel order."""
    entries = fmt.get(side) or {}
    if not isinstance(entries, dict) or not entries:
        return None
    first = next(iter(entries.values()))
    defs = first.get("channel_def") if isinstance(first, dict) else None
    if not isinstance(defs, dict) or not defs:
        return None
    try:
        return [str(defs[k]) for k in sorted(defs, key=lambda k: int(k))]
    except (TypeError, ValueError):
        return None


def spec_from_metadata(meta: dict) -> dict:
    """What a bundle's ``network_data_format`` says: ``inputs``, ``output``, ``channels`` or ``labels``."""
    fmt = meta.get("network_data_format") or {}
    out: dict = {}
    ins = _channel_names(fmt, "inputs")
    if ins and all(role_of(n) for n in ins):
        out["inputs"] = [role_of(n) for n in ins]
    outs = _channel_names(fmt, "outputs")
    if outs:
        regions = [region_of(n) for n in outs]
        classes = [class_label(n) for n in outs]
        if len(outs) == 3 and all(regions) and len(set(regions)) == 3 and "background" not in outs[0].lower():
            out.update(output="regions", channels=regions)
        elif all(c is not None for c in classes):
            out.update(output="labels", labels=classes)
    return out


class MonaiBundle(Segmenter):
    """A MONAI bundle folder as a segmenter (module doc)."""

    kind = "monai-bundle"

    def __init__(self, folder: str | Path):
        folder = Path(folder)
        self.label = folder.resolve().name
        configs = folder / "configs"
        meta_path = configs / METADATA_NAME
        meta = (self._read_json(meta_path, f"configs/{meta_path.name}", object_only=False)
                if meta_path.is_file() else {})
        self.config_file = _first(configs, CONFIG_NAMES)
        self.parser = self._parser(meta_path if meta_path.is_file() else None)
        values = {**spec_from_metadata(meta), **(read_spec(folder) or {})}
        if "inputs" not in values or "output" not in values:
            what = "input channels" if "inputs" not in values else "output channels"
            raise SegmenterError(f"segmenter {self.label}: its metadata does not say its {what}; write "
                                 "gliotype_segmenter.json beside configs/ (docs/real-data.md, 'No tumour mask')")
        spec: SegmenterSpec = make_spec(values, f"segmenter {self.label}")
        super().__init__(folder, spec)
        self.network = self._network(folder)
        self.image_key, self.preprocessing = self._preprocessing()
        self.roi_size, self.overlap, self.sw_batch_size, self.mode = self._window()

    # ------------------------------------------------------------------ reading the folder

    def _parser(self, meta_path: Path | None):
        from monai.bundle import ConfigParser

        parser = ConfigParser()
        try:
            if self.config_file is not None:
                parser.read_config(str(self.config_file))
            if meta_path is not None:
                parser.read_meta(str(meta_path))
        except Exception as exc:
            name = self.config_file.name if self.config_file is not None else METADATA_NAME
            raise self._fail(f"configs/{name} is not readable ({type(exc).__name__}: {one_line(exc, 100)})") from None
        if self.config_file is not None:
            parser["bundle_root"] = str(self._root)  # expressions of the config name files of the folder
        return parser

    @property
    def _root(self) -> Path:
        return self.config_file.parent.parent if self.config_file is not None else Path(".")

    def _has(self, key: str) -> bool:
        return self.config_file is not None and key in self.parser

    def _build(self, key: str):
        try:
            return self.parser.get_parsed_content(key)
        except Exception as exc:
            raise self._fail(f"{self.config_file.name}: {key} cannot be built ({type(exc).__name__}: "
                             f"{one_line(exc, 120)})") from None

    def _network(self, folder: Path) -> torch.nn.Module:
        models = folder / "models"
        weights = _first(models, ("model.pt", "model.safetensors"))
        if self._has("network_def") and weights is not None:
            net = self._build("network_def")
            if not isinstance(net, torch.nn.Module):
                raise self._fail(f"{self.config_file.name}: network_def is not a torch network")
            state = self._state_dict(weights)
            try:
                net.load_state_dict(state, strict=True)
            except RuntimeError as exc:
                raise self._fail(f"models/{weights.name} does not fit network_def ({one_line(exc, 160)})") from None
            self.weights_file = weights
        elif (models / "model.ts").is_file():
            try:
                net = torch.jit.load(str(models / "model.ts"), map_location="cpu")
            except Exception as exc:
                raise self._fail(f"models/model.ts is not a TorchScript network ({type(exc).__name__})") from None
            self.weights_file = models / "model.ts"
        elif weights is not None:
            raise self._fail(f"models/{weights.name} holds weights only, and no configs/inference.json "
                             "declares network_def (the network they belong to)")
        else:
            raise self._fail("no models/model.pt, models/model.safetensors or models/model.ts")
        return net.eval()

    def _state_dict(self, path: Path) -> dict[str, torch.Tensor]:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            try:
                return load_file(str(path))
            except Exception:
                raise self._fail(f"models/{path.name} is not a readable safetensors file") from None
        try:
            obj = torch.load(str(path), map_location="cpu", weights_only=True)
        except Exception as exc:
            if "weights_only" in str(exc) or "Unpickler" in type(exc).__name__ or "pickle" in str(exc).lower():
                raise self._fail(f"models/{path.name} holds more than tensors and would need unpickling, which "
                                 "gliotype refuses; save the state dict (torch.save(net.state_dict(), ...))") from None
            raise self._fail(f"models/{path.name} is not readable ({type(exc).__name__})") from None
        for key in ("model", "state_dict", "network", "net"):
            if isinstance(obj, dict) and isinstance(obj.get(key), dict):
                obj = obj[key]
                break
        if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
            raise self._fail(f"models/{path.name} is not a state dict (names -> tensors)")
        return {k.removeprefix("module."): v for k, v in obj.items()}

    def _preprocessing(self):
        """(the image key, the bundle's preprocessing without its loaders) or (None, None): z-score."""
        mode = self.spec.preprocessing
        if mode == "zscore" or (mode == "auto" and not self._has("preprocessing")):
            return None, None
        if not self._has("preprocessing"):
            raise self._fail("gliotype_segmenter.json asks for the bundle's preprocessing, and its config "
                             "declares none")
        from monai.transforms import Compose, MapTransform

        pre = self._build("preprocessing")
        steps = list(pre.transforms) if isinstance(pre, Compose) else [pre]
        kept = [t for t in steps if type(t).__name__ not in _LOADERS]
        keys = [k for t in steps if isinstance(t, MapTransform) for k in t.keys]
        key = keys[0] if keys else "image"
        if any(not isinstance(t, MapTransform) for t in kept):
            raise self._fail(f"{self.config_file.name}: preprocessing mixes array and dictionary transforms; "
                             "set \"preprocessing\": \"zscore\" in gliotype_segmenter.json")
        return key, Compose(kept)

    def _window(self):
        roi, overlap, batch, mode = self.spec.roi_size, self.spec.overlap, self.spec.sw_batch_size, "constant"
        if self._has("inferer"):
            raw = self.parser["inferer"]
            if isinstance(raw, dict) and str(raw.get("_target_", "")).endswith("SlidingWindowInferer"):
                got = {k: self._build(f"inferer::{k}") for k in ("roi_size", "overlap", "sw_batch_size", "mode")
                       if k in raw}
                roi = roi or (tuple(int(v) for v in got["roi_size"]) if "roi_size" in got else None)
                overlap = overlap if overlap is not None else got.get("overlap")
                batch = batch or got.get("sw_batch_size")
                mode = str(got.get("mode", mode))
        return (tuple(roi or DEFAULT_ROI), float(DEFAULT_OVERLAP if overlap is None else overlap),
                int(batch or 1), mode)

    def model_files(self) -> list[Path]:
        files = [self.config_file, self.folder / "configs" / METADATA_NAME, self.weights_file,
                 *(self.folder / n for n in SPEC_FILES)]
        return [f for f in files if f is not None and f.is_file()]

    # ------------------------------------------------------------------ inference

    def segment(self, image: np.ndarray, affine: np.ndarray) -> np.ndarray:
        from monai.data import MetaTensor
        from monai.inferers import sliding_window_inference
        from monai.transforms import Invertd, NormalizeIntensity

        image = np.ascontiguousarray(image, dtype=np.float32)
        if image.shape[0] != len(self.inputs):
            raise self._fail(f"expects {len(self.inputs)} channels, got {image.shape[0]}")
        x = MetaTensor(torch.from_numpy(image), affine=torch.as_tensor(np.asarray(affine, dtype=np.float64)))
        if self.preprocessing is not None:
            data = self.preprocessing({self.image_key: x})
            x = data[self.image_key]
        else:
            x = NormalizeIntensity(nonzero=True, channel_wise=True)(x)
        if not isinstance(x, MetaTensor):
            x = MetaTensor(torch.as_tensor(x), affine=torch.as_tensor(np.asarray(affine, dtype=np.float64)))
        batch = x.as_tensor().float()[None]
        with torch.no_grad():
            logits = sliding_window_inference(batch, self.roi_size, self.sw_batch_size, self.network,
                                              overlap=self.overlap, mode=self.mode)
        logits = torch.as_tensor(logits)[0].float()
        if logits.shape[0] != self.spec.out_channels:
            raise self._fail(f"the network gives {logits.shape[0]} output channels, its spec says "
                             f"{self.spec.out_channels}")
        probs = torch.sigmoid(logits) if self.spec.output == "regions" else torch.softmax(logits, dim=0)
        if x.applied_operations:  # spatial preprocessing: back onto the T1c grid as the bundle's Invertd does
            pred = MetaTensor(probs, meta=x.meta)
            pred.applied_operations = list(x.applied_operations)
            inv = Invertd(keys="pred", transform=self.preprocessing, orig_keys=self.image_key, nearest_interp=False)
            probs = torch.as_tensor(inv({self.image_key: x, "pred": pred})["pred"])
        probs = probs.numpy()
        if probs.shape[1:] != image.shape[1:]:
            raise self._fail(f"the output grid {probs.shape[1:]} is not the input's {image.shape[1:]} after "
                             "inverting the preprocessing")
        if self.spec.output == "regions":
            return probabilities_to_brats(probs, self.spec.channels, self.spec.threshold, self.spec.enhancing_label)
        labels = [self.spec.enhancing_label if v in (3, 4) else v for v in self.spec.labels]
        return argmax_to_brats(probs, labels)


__all__ = ["MonaiBundle", "is_monai_bundle", "spec_from_metadata"]
