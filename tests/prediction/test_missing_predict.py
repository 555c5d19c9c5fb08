"""A patient without a sequence, from training to prediction (issue 15), on the shared tiny model:
the export's sequence spread, ``gliotype predict`` with a missing sequence (the model's rule,
``--allow-missing``, ``missing_sequences`` in prediction.json, an interval widened by the stored
spread and the report saying so), ``multimodal.sequence_dropout`` in the stage (variants,
reproducible, resume-exact) and ``benchmarks/missing_sequences.py``."""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from killing import killed_after
from pred_helpers import case_inputs, split_ids
from safetensors.torch import load_file
from typer.testing import CliRunner

from gliotype.cli import app
from gliotype.errors import CaseError, GliotypeError
from gliotype.prediction import ModelError, load_model, predict_patient

SEQUENCES = ("t1", "t1c", "t2", "flair")
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def predictions(tiny_run, tiny_model, tmp_path_factory):
    """One test patient predicted complete, without t1c, and without t1c by the model with its stored
    spread set to 0 and with none stored."""
    tmp = tmp_path_factory.mktemp("missing-predict")
    pid = split_ids(tiny_run / "run")[0]
    inputs = case_inputs(tiny_run / "cohort", pid)
    without = {k: v for k, v in inputs.items() if k != "t1c"}
    zero = dataclasses.replace(tiny_model, sequence_spread={**tiny_model.sequence_spread,
                                                            "sd_logit": {s: 0.0 for s in SEQUENCES}})
    older = dataclasses.replace(tiny_model, sequence_spread=None)
    kw = dict(draws=20, explain=False)
    return {
        "pid": pid,
        "full": predict_patient(tiny_model, inputs, pid, tmp / "full", **kw),
        "missing": predict_patient(tiny_model, without, pid, tmp / "missing", allow_missing=1, **kw),
        "zero": predict_patient(zero, without, pid, tmp / "zero", allow_missing=1, **kw),
        "older": predict_patient(older, without, pid, tmp / "older", allow_missing=1, **kw),
    }


def _width(pred) -> float:
    lo, hi = pred.interval
    return hi - lo


def test_the_model_folder_holds_the_sequence_spread_measured_at_export(tiny_run, tiny_model):
    from gliotype.prediction.missing import measure_sequence_spread

    spread = tiny_model.sequence_spread
    b = split_ids(tiny_run / "run", "B")
    assert set(spread["sd_logit"]) == set(SEQUENCES) and all(v > 0 for v in spread["sd_logit"].values())
    assert spread["patients"] == {s: len(b) for s in SEQUENCES}  # the classifier-training patients
    manifest = json.loads((tiny_model.folder / "manifest.json").read_text())
    assert "sequence_spread.json" in manifest["files"]  # listed and hashed like every model file
    again = measure_sequence_spread(tiny_model, tiny_run / "run" / "work", b)
    assert again["sd_logit"] == spread["sd_logit"]


def test_features_without_a_sequence_are_the_network_on_the_zeroed_channel_and_imputed_x_b(tiny_run, tiny_model):
    from gliotype.multimodal.data import collate
    from gliotype.multimodal.stage import MultiModalDataset, extract_features, features_without
    from gliotype.self_supervised.encode import encode_patient, patient_inputs_for

    work = tiny_run / "run" / "work"
    pid = split_ids(tiny_run / "run", "B")[0]
    cfg = tiny_model.config.multimodal
    got = features_without(work, tiny_model.multimodal, tiny_model.self_supervised, [pid], "t2", cfg)
    item = dict(MultiModalDataset(work, [pid], None, cfg.encoders).load(0))
    item["tumor_image"] = item["tumor_image"].clone()
    item["tumor_image"][2] = 0
    item["node_x"], item["edge_attr"] = encode_patient(tiny_model.self_supervised,
                                                       patient_inputs_for(tiny_model.self_supervised, work, pid), ["t2"])
    with torch.no_grad():
        out = tiny_model.multimodal(collate([item]))
    np.testing.assert_allclose(got.filter(like="u_T_").to_numpy()[0], out.features["u_T"].numpy()[0], rtol=0, atol=0)
    np.testing.assert_allclose(got.filter(like="u_B_").to_numpy()[0], out.features["u_B"].numpy()[0], rtol=0, atol=0)
    full = extract_features(work, tiny_model.multimodal, [pid], cfg)
    assert not np.allclose(full.filter(like="u_T_").to_numpy(), got.filter(like="u_T_").to_numpy())


def test_predict_without_t1c_records_it_and_widens_the_interval(predictions):
    full, missing, zero = predictions["full"], predictions["missing"], predictions["zero"]
    assert full.record["missing_sequences"] == [] and missing.record["missing_sequences"] == ["t1c"]
    rec = json.loads((missing.out_dir / "prediction.json").read_text())
    assert rec["missing_sequences"] == ["t1c"]
    spread = rec["uncertainty"]["missing_sequence_spread"]
    assert spread["included"] and list(spread["sd_logit"]) == ["t1c"] and spread["sd_logit"]["t1c"] > 0
    # the point prediction is the model's on the patient as given; the interval widens by the spread
    assert missing.probability == zero.probability
    assert _width(missing) > _width(zero) + 0.01
    assert spread["interval_95_without"] == pytest.approx(list(zero.interval), abs=1e-6)
    assert missing.probability != full.probability  # losing t1c changes the features
    text = (missing.out_dir / "report.html").read_text()
    assert "Missing: post-contrast T1 (T1c)" in text and "widened by the spread" in text
    assert text.index("Missing: post-contrast T1") < text.index("Population graph:")  # near the probability
    assert "Missing:" not in (full.out_dir / "report.html").read_text()
    rows = {c["check"]: c for c in rec["input_checks"]}
    assert "t1 grid" in rows and rows["missing sequences"]["ok"] is False


def test_an_older_model_without_the_spread_still_predicts_and_says_so(predictions):
    older = predictions["older"]
    spread = older.record["uncertainty"]["missing_sequence_spread"]
    assert spread["included"] is False and "does not include the missing-sequence spread" in spread["reason"]
    assert older.interval == predictions["zero"].interval
    assert "does not include the missing-sequence spread" in (older.out_dir / "report.html").read_text()


def test_the_models_rule_decides_and_allow_missing_overrides(tiny_run, tiny_model, tmp_path):
    pid = split_ids(tiny_run / "run")[0]
    without = {k: v for k, v in case_inputs(tiny_run / "cohort", pid).items() if k != "flair"}
    with pytest.raises(CaseError) as err:
        predict_patient(tiny_model, without, pid, tmp_path / "o", draws=0, explain=False)
    assert str(err.value) == (f"patient {pid}: no flair file given (input.missing_sequences allows 0 missing "
                              "sequences; the model's setting, --allow-missing N overrides it)")
    assert not (tmp_path / "o").exists()
    args = ["predict", "--model", str(tiny_run / "run" / "model"), "--out", str(tmp_path / "cli"), "--no-explain",
            "--draws", "5", "--patient-id", pid] + [a for r, p in without.items() for a in (f"--{r}", str(p))]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 2 and "no flair file given" in res.output and len(res.output.strip().splitlines()) == 1
    res = CliRunner().invoke(app, args + ["--allow-missing", "1"])
    assert res.exit_code == 0, res.output
    assert "predicted without flair" in res.output
    assert json.loads((tmp_path / "cli" / "prediction.json").read_text())["missing_sequences"] == ["flair"]


def test_an_unlisted_spread_file_is_refused_and_a_folder_without_one_loads(tiny_run, tmp_path):
    from gliotype.bundle import write_manifest

    model = tmp_path / "model"
    shutil.copytree(tiny_run / "run" / "model", model)
    manifest = json.loads((model / "manifest.json").read_text())
    spread = (model / "sequence_spread.json").read_text()
    (model / "sequence_spread.json").unlink()
    write_manifest(model, manifest["config_hash"])  # as exported before the spread existed
    assert load_model(model).sequence_spread is None
    (model / "sequence_spread.json").write_text(spread)  # added afterwards, not in the manifest
    with pytest.raises(ModelError, match="sequence_spread.json is not listed in manifest.json"):
        load_model(model)


def _ids(tiny_run):
    splits = pd.read_csv(tiny_run / "run" / "splits.csv", dtype={"patient_id": str})
    ids = splits.loc[splits["split"].isin(["A", "B"]), "patient_id"].tolist()
    return ids, dict(zip(splits["patient_id"], splits["idh"]))


def test_multimodal_sequence_dropout_trains_on_the_variants_and_resumes_exactly(tiny_run, tmp_path, monkeypatch):
    from gliotype.config import load_config
    from gliotype.multimodal.stage import model_key, train_multimodal
    from gliotype.self_supervised import encode_brain_networks, load_brain_network_variants

    work = tmp_path / "work"
    shutil.copytree(tiny_run / "run" / "work", work)  # the shared folder is read only
    ids, labels = _ids(tiny_run)
    config = load_config("tiny", overrides=["multimodal.epochs=4", "multimodal.sequence_dropout=0.5"])
    with pytest.raises(GliotypeError, match="no brain network without"):
        train_multimodal(work, tmp_path / "none", ids, labels, config)
    before = model_key(work, config, ids)
    encode_brain_networks(work, ids, variants=True)
    assert model_key(work, config, ids) != before  # the variants are the network's data
    assert sorted(load_brain_network_variants(work, ids[0])) == sorted(SEQUENCES)
    train_multimodal(work, tmp_path / "a", ids, labels, config)
    killed_after(monkeypatch, 2, "multi-modal", lambda: train_multimodal(work, tmp_path / "b", ids, labels, config))
    train_multimodal(work, tmp_path / "b", ids, labels, config)
    plain = load_config("tiny", overrides=["multimodal.epochs=4"])
    train_multimodal(work, tmp_path / "c", ids, labels, plain)
    w = {k: load_file(str(tmp_path / k / "model.safetensors")) for k in "abc"}
    assert all(torch.equal(w["a"][k], w["b"][k]) for k in w["a"])
    assert not all(torch.equal(w["a"][k], w["c"][k]) for k in w["a"])


def test_the_benchmark_script_writes_the_auc_of_each_dropped_sequence(tiny_run, tmp_path):
    spec = importlib.util.spec_from_file_location("missing_bench", ROOT / "benchmarks" / "missing_sequences.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    out = tmp_path / "missing.csv"
    table = bench.main([str(tiny_run / "run"), "--out", str(out)])
    assert list(table["dropped"]) == ["none", *SEQUENCES]
    assert table["auc"].between(0, 1).all() and (table["test_patients"] == len(split_ids(tiny_run / "run"))).all()
    assert out.exists() and out.with_suffix(".md").read_text().startswith("| dropped")
    assert (table.loc[table["dropped"] != "none", "mean_abs_logit_change"] > 0).all()
