"""``multimodal.unlabelled: cohort``: other patients join the encoders' training through L_multi only.

Uses the shared tiny work folder of ``conftest.py`` (modalities and brain networks built).
"""

import pandas as pd
import torch

from gliotype.config import load_config
from gliotype.multimodal.stage import has_contrastive, model_key, train_multimodal


def _split(tiny_run):
    splits = pd.read_csv(tiny_run / "run" / "splits.csv", dtype={"patient_id": str})
    by = {s: splits.loc[splits["split"] == s, "patient_id"].tolist() for s in ("A", "B", "test")}
    return by, dict(zip(splits["patient_id"], splits["idh"]))


def _weights(model):
    return torch.cat([p.detach().flatten() for p in model.parameters()])


def test_unlabelled_patients_train_without_their_labels(tiny_run, tmp_path):
    config = load_config("tiny", overrides=["multimodal.epochs=2"])
    work = tiny_run / "run" / "work"
    by, labels = _split(tiny_run)
    others = by["B"] + by["test"]
    hidden = {p: v for p, v in labels.items() if p in set(by["A"])}
    with_all = train_multimodal(work, tmp_path / "all", by["A"], labels, config, unlabelled_ids=others)
    with_hidden = train_multimodal(work, tmp_path / "hidden", by["A"], hidden, config, unlabelled_ids=others)
    plain = train_multimodal(work, tmp_path / "plain", by["A"], labels, config)
    # the other patients' labels never reach the loss, but the patients do
    torch.testing.assert_close(_weights(with_all), _weights(with_hidden), rtol=0, atol=0)
    assert not torch.equal(_weights(with_all), _weights(plain))
    # the cache key tells the three apart from the patients, not from the labels
    assert model_key(work, config, by["A"], None, others) != model_key(work, config, by["A"])
    assert model_key(work, config, by["A"], None, []) == model_key(work, config, by["A"])


def test_a_network_without_l_multi_ignores_unlabelled_patients(tiny_run, tmp_path):
    config = load_config("tiny", overrides=["multimodal.epochs=1", "multimodal.encoders=[image]"])
    assert not has_contrastive(config.multimodal)
    assert has_contrastive(load_config("tiny").multimodal)
    work = tiny_run / "run" / "work"
    by, labels = _split(tiny_run)
    train_multimodal(work, tmp_path / "img", by["A"], labels, config, unlabelled_ids=by["B"])
    # trained on the labelled half only: the same folder is up to date for the plain call
    stored = (tmp_path / "img" / "model.json").read_text()
    train_multimodal(work, tmp_path / "img", by["A"], labels, config)
    assert (tmp_path / "img" / "model.json").read_text() == stored
    assert model_key(work, config, by["A"]) in stored
