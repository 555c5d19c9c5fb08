"""Kill-and-resume of the multi-modal training equals an uninterrupted run, byte for byte,
with the augmentation on (issue 14, case 2: its rotations were one stream seeded once, so a
resumed epoch replayed the first epoch's rotations).

Uses the shared tiny work folder of ``conftest.py`` (modalities and brain networks built).
"""

import pandas as pd
import torch
from killing import killed_after
from safetensors.torch import load_file

from gliotype.config import load_config
from gliotype.multimodal.stage import train_multimodal


def _split(tiny_run):
    splits = pd.read_csv(tiny_run / "run" / "splits.csv", dtype={"patient_id": str})
    ids = splits.loc[splits["split"].isin(["A", "B"]), "patient_id"].tolist()
    return ids, dict(zip(splits["patient_id"], splits["idh"]))


def test_killed_and_resumed_multimodal_training_equals_uninterrupted(tiny_run, tmp_path, monkeypatch, caplog):
    config = load_config("tiny", overrides=["multimodal.epochs=4", "multimodal.augment_rotation_deg=30"])
    work = tiny_run / "run" / "work"
    ids, labels = _split(tiny_run)
    train_multimodal(work, tmp_path / "a", ids, labels, config)
    killed_after(monkeypatch, 2, "multi-modal", lambda: train_multimodal(work, tmp_path / "b", ids, labels, config))
    with caplog.at_level("INFO"):
        train_multimodal(work, tmp_path / "b", ids, labels, config)
    assert "resuming after epoch 2 of 4" in caplog.text
    wa, wb = load_file(str(tmp_path / "a" / "model.safetensors")), load_file(str(tmp_path / "b" / "model.safetensors"))
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)
    ha = pd.read_csv(tmp_path / "a" / "checkpoints" / "history.csv")
    hb = pd.read_csv(tmp_path / "b" / "checkpoints" / "history.csv")
    pd.testing.assert_series_equal(ha["loss"], hb["loss"])

    # a cached network whose weights file is unreadable is a cache miss: one warning naming the
    # file, and the (sound, finished) checkpoint gives the same network back without training
    weights = tmp_path / "a" / "model.safetensors"
    expected = {k: v.clone() for k, v in wa.items()}  # load_file maps the file: copy before truncating it
    weights.write_bytes(weights.read_bytes()[:64])
    caplog.clear()
    with caplog.at_level("INFO"):
        train_multimodal(work, tmp_path / "a", ids, labels, config)
    assert "model a: cached file model.safetensors changed since it was written" in caplog.text
    assert "resuming" not in caplog.text
    again = load_file(str(weights))
    assert again.keys() == expected.keys() and all(torch.equal(expected[k], again[k]) for k in expected)


def test_weight_averaged_multimodal_training_resumes_to_the_same_average(tiny_run, tmp_path, monkeypatch):
    """``multimodal.average_from_epoch`` (design.md point 56) reaches the training: the saved network
    is the average of epochs 2-4, not the last weights, and a training killed after epoch 3 (the
    average holding epochs 2 and 3) resumes to the same bytes."""
    work = tiny_run / "run" / "work"
    ids, labels = _split(tiny_run)
    last = load_config("tiny", overrides=["multimodal.epochs=4"])
    averaged = load_config("tiny", overrides=["multimodal.epochs=4", "multimodal.average_from_epoch=2"])
    train_multimodal(work, tmp_path / "last", ids, labels, last)
    train_multimodal(work, tmp_path / "a", ids, labels, averaged)
    killed_after(monkeypatch, 3, "multi-modal", lambda: train_multimodal(work, tmp_path / "b", ids, labels, averaged))
    train_multimodal(work, tmp_path / "b", ids, labels, averaged)
    w = {d: load_file(str(tmp_path / d / "model.safetensors")) for d in ("last", "a", "b")}
    assert w["a"].keys() == w["last"].keys()  # the network's own weights, not the average's wrapper
    assert all(torch.equal(w["a"][k], w["b"][k]) for k in w["a"])
    assert not all(torch.equal(w["a"][k], w["last"][k]) for k in w["a"])


def test_each_epoch_draws_other_rotations():
    """The augmentation stream differs from epoch to epoch (reseeding must not repeat one epoch)."""
    from gliotype.utils.training import epoch_seed

    seeds = [epoch_seed(7, e) for e in range(20)]
    assert len(set(seeds)) == 20 and epoch_seed(7, 3) == epoch_seed(7, 3) and epoch_seed(8, 3) != epoch_seed(7, 3)


def test_a_network_of_an_earlier_training_version_is_not_reused(monkeypatch, tmp_path):
    """The augmentation change trains other networks from the same config: the key names the
    training version, so a cached network or checkpoint of the old stream is never reused."""
    from gliotype.multimodal import stage

    config = load_config("tiny")
    key = stage.model_key(tmp_path, config, ["P1", "P2"])
    monkeypatch.setattr(stage, "TRAINING_VERSION", stage.TRAINING_VERSION - 1)
    assert stage.model_key(tmp_path, config, ["P1", "P2"]) != key
