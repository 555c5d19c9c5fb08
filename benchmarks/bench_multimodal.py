"""One training epoch of the multi-modal network vs a MONAI DenseNet121 3D epoch (issue 5).

    python benchmarks/bench_multimodal.py [--patients 100] [--preset cpu] [--batch 20]

Both see the same tumor images (the preset's crop and channels), batch size and SGD
step; the multi-modal network (built as the run builds it) also encodes the point cloud
with its pose and the 90-node brain network with the preset's tract count. Target: the
multi-modal epoch costs at most 1.5 times the DenseNet epoch. Random tensors of the right
shapes: this measures compute, not learning. Not a test.
"""

from __future__ import annotations

import argparse
import time

import torch


def items(n, crop, n_points, n_tracts, channels=4, node_dim=16, edge_dim=16, regions=90, seed=0):
    g = torch.Generator().manual_seed(seed)
    iu = torch.triu_indices(regions, regions, 1)
    pick = torch.randperm(iu.shape[1], generator=g)[:n_tracts]
    pairs = iu[:, pick]
    out = []
    for i in range(n):
        pts = torch.nn.functional.normalize(torch.randn(n_points, 3, generator=g), dim=1)
        crossing = torch.stack([torch.arange(n_points), torch.randint(0, n_tracts, (n_points,), generator=g)])
        pose = torch.cat([20 * torch.randn(3, generator=g), 10 + 20 * torch.rand(1, generator=g)])
        out.append({"patient_id": f"P{i}", "tumor_image": torch.randn(channels, *crop, generator=g), "points": pts,
                    "pose": pose,
                    "crossing": crossing, "node_x": torch.randn(regions, node_dim, generator=g), "edge_index": pairs,
                    "edge_attr": torch.randn(n_tracts, edge_dim, generator=g), "label": torch.tensor(float(i % 2))})
    return out


def epoch(step, batches) -> float:
    t0 = time.perf_counter()
    for b in batches:
        step(b)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--patients", type=int, default=100)
    ap.add_argument("--preset", default="cpu")
    ap.add_argument("--batch", type=int, default=20)
    args = ap.parse_args()

    from gliotype.config import load_config
    from gliotype.evaluation.baselines import cnn_model
    from gliotype.modalities.tumor_image import image_channels
    from gliotype.multimodal import multimodal_loss
    from gliotype.multimodal.data import collate
    from gliotype.multimodal.stage import build_model

    cfg = load_config(args.preset)
    torch.manual_seed(0)
    crop = tuple(cfg.modalities.crop_size)
    channels = image_channels(cfg.modalities.image_ring_channel, cfg.modalities.image_label_channels)
    data = items(args.patients, crop, cfg.modalities.n_points, cfg.atlas.n_tracts, channels, cfg.ssl.node.latent,
                 cfg.ssl.edge.latent)
    chunks = [data[i:i + args.batch] for i in range(0, len(data), args.batch)]

    model = build_model(cfg)
    opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    mm_batches = [collate(c) for c in chunks]

    def mm_step(batch):
        opt.zero_grad()
        loss, _ = multimodal_loss(model, model(batch), batch.label)
        loss.backward()
        opt.step()

    cnn = cnn_model("densenet121", in_channels=channels)
    opt2 = torch.optim.SGD(cnn.parameters(), lr=1e-3, momentum=0.9)
    cnn_batches = [(torch.stack([x["tumor_image"] for x in c]), torch.stack([x["label"] for x in c])) for c in chunks]
    bce = torch.nn.BCEWithLogitsLoss()

    def cnn_step(batch):
        x, y = batch
        opt2.zero_grad()
        bce(cnn(x).squeeze(1), y).backward()
        opt2.step()

    model.train()
    cnn.train()
    mm_step(mm_batches[0])  # warm-up
    cnn_step(cnn_batches[0])
    t_mm = epoch(mm_step, mm_batches)
    t_cnn = epoch(cnn_step, cnn_batches)
    print(f"preset={args.preset} patients={args.patients} batch={args.batch} crop={crop} "
          f"points={cfg.modalities.n_points} tracts={cfg.atlas.n_tracts} threads={torch.get_num_threads()}")
    print(f"multi-modal epoch: {t_mm:.1f} s; DenseNet121 3D epoch: {t_cnn:.1f} s; ratio {t_mm / t_cnn:.2f} "
          f"(target <= 1.5)")


if __name__ == "__main__":
    main()
