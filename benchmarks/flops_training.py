"""FLOPs of one training step per sample of the paper-preset networks, and the GPU time per epoch
they imply (docs/scale-out.md, "Training on several GPUs or nodes").

    python benchmarks/flops_training.py [--preset paper] [--models multimodal,resnet34,densenet121]

Counts with ``torch.utils.flop_counter.FlopCounterMode`` on the CPU: the forward, the loss and
the backward of the multi-modal network (a batch of 2 synthetic patients at the preset's sizes:
eq. 7 needs two; halved) and of each CNN baseline (one patient). FlopCounterMode counts the
matrix products and convolutions (2 FLOPs a multiply-add), not element-wise operations,
scatters or the farthest-point sampling. Then epoch time = FLOPs per sample x samples per
epoch / (peak x utilisation), for the paper's cohort (section 4.1: the multi-modal network
trains on half A, 135 patients; the CNNs on A + B, 270). Not a test.
"""

from __future__ import annotations

import argparse
import time

import torch

# dense bf16/fp16 tensor-core peaks (TFLOPS) from the vendors' data sheets
GPUS = {"A100 (bf16, 312 TFLOPS)": 312.0, "V100 (fp16, 125 TFLOPS)": 125.0}
UTILISATION = 0.40
PER_EPOCH = {"multimodal": 135, "resnet34": 270, "densenet121": 270}


def patients(config, n: int, seed: int = 0) -> list[dict]:
    """``n`` synthetic items at the config's sizes: x_I, x_P (with pose), x_B with crossings."""
    from gliotype.modalities.tumor_image import image_channels

    g = torch.Generator().manual_seed(seed)
    m, ssl, atlas = config.modalities, config.ssl, config.atlas
    regions, tracts = atlas.n_regions, atlas.n_tracts
    pairs = torch.combinations(torch.arange(regions), 2)[:tracts].T.contiguous()
    channels = image_channels(m.image_ring_channel, m.image_label_channels)
    items = []
    for i in range(n):
        points = torch.nn.functional.normalize(torch.randn(m.n_points, 3, generator=g), dim=1)
        items.append({
            "patient_id": f"P{i}", "label": torch.tensor(float(i % 2)),
            "tumor_image": torch.randn(channels, *m.crop_size, generator=g),
            "points": points, "pose": torch.zeros(4),
            "crossing": torch.stack([torch.arange(m.n_points), torch.randint(0, tracts, (m.n_points,), generator=g)]),
            "node_x": torch.randn(regions, ssl.node.latent, generator=g),
            "edge_index": pairs, "edge_attr": torch.randn(tracts, ssl.edge.latent, generator=g),
        })
    return items


def count(step) -> tuple[int, float]:
    """FLOPs of ``step()`` and its seconds on this CPU."""
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    t0 = time.perf_counter()
    with counter:
        step()
    return counter.get_total_flops(), time.perf_counter() - t0


def multimodal_flops(config) -> tuple[float, float, int]:
    from gliotype.multimodal.data import collate
    from gliotype.multimodal.model import multimodal_loss
    from gliotype.multimodal.stage import build_model

    model = build_model(config).train()
    batch = collate(patients(config, 2))

    def step():
        loss, _ = multimodal_loss(model, model(batch), batch.label)
        loss.backward()

    flops, seconds = count(step)
    return flops / 2, seconds / 2, sum(p.numel() for p in model.parameters())


def cnn_flops(config, name: str) -> tuple[float, float, int]:
    from gliotype.evaluation.baselines import cnn_model
    from gliotype.modalities.tumor_image import image_channels

    m = config.modalities
    model = cnn_model(name, image_channels(m.image_ring_channel, m.image_label_channels), config.baselines.width).train()
    x = torch.randn(1, image_channels(m.image_ring_channel, m.image_label_channels), *m.crop_size)

    def step():
        torch.nn.functional.binary_cross_entropy_with_logits(model(x).squeeze(-1), torch.ones(1)).backward()

    flops, seconds = count(step)
    return flops, seconds, sum(p.numel() for p in model.parameters())


def main() -> None:
    from gliotype.config import load_config

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="paper")
    ap.add_argument("--models", default="multimodal,resnet34,densenet121")
    args = ap.parse_args()
    config = load_config(args.preset)
    torch.manual_seed(0)
    print(f"preset {args.preset}: crop {tuple(config.modalities.crop_size)}, {config.modalities.n_points} points, "
          f"{config.atlas.n_regions} regions, {config.atlas.n_tracts} tracts; {torch.get_num_threads()} CPU threads")
    header = "| network | parameters | GFLOPs / sample (fwd + bwd) | CPU s / sample | samples / epoch | " + \
        " | ".join(f"s / epoch, {g} at {UTILISATION:.0%}" for g in GPUS) + " |"
    print(header)
    print("|" + "---|" * (5 + len(GPUS)))
    for name in args.models.split(","):
        flops, seconds, params = multimodal_flops(config) if name == "multimodal" else cnn_flops(config, name)
        n = PER_EPOCH[name]
        epoch = [flops * n / (peak * 1e12 * UTILISATION) for peak in GPUS.values()]
        print(f"| {name} | {params / 1e6:.2f} M | {flops / 1e9:.1f} | {seconds:.1f} | {n} | "
              + " | ".join(f"{e:.3f}" for e in epoch) + " |", flush=True)


if __name__ == "__main__":
    main()
