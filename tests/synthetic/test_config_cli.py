"""Arguments of the generator (``parse_signal``, ``SynthConfig``) and ``gliotype synth``."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from pydantic import ValidationError
from typer.testing import CliRunner

from gliotype.cli import app
from gliotype.errors import GliotypeError
from gliotype.synthetic import SIGNALS, SynthConfig, SynthConfigError, expected_auc, parse_signal


# --------------------------------------------------------------------------- parse_signal

def test_parse_signal_merges_over_the_defaults():
    assert parse_signal("") == {k: 1.0 for k in SIGNALS}
    assert parse_signal("image=0.5") == {"image": 0.5, "shape": 1.0, "location": 1.0, "network": 1.0}
    assert parse_signal(" shape = 0 , network=2,") == {"image": 1.0, "shape": 0.0, "location": 1.0, "network": 2.0}
    assert parse_signal("location=2")["location"] == 2.0


@pytest.mark.parametrize("text,named", [
    ("imag=1", "imag"),  # unknown key
    ("image=1,texture=0.3", "texture"),
    ("image=abc", "abc"),  # not a number
    ("shape=", "shape"),
    ("network", "network"),  # no '='
    ("image=-0.5", "image"),  # negative
    ("shape=nan", "shape"),
    ("network=inf", "network"),
    ("location=2.5", "location"),  # would leave the probabilities
])
def test_parse_signal_rejects_bad_items_naming_them(text, named):
    with pytest.raises(ValueError) as exc:
        parse_signal(text)
    assert named in str(exc.value)


# --------------------------------------------------------------------------- SynthConfig

@pytest.mark.parametrize("field,value", [
    ("patients", 0), ("seed", -1), ("prevalence", 0.0), ("prevalence", 1.0), ("prevalence", 1.5),
    ("sites", 0), ("fa_cases", -1), ("resolution", 3), ("workers", 0), ("space", "talairach"),
    ("id_prefix", "bad prefix"), ("id_prefix", ""), ("id_prefix", "-x"), ("id_prefix", "a" * 33),
    ("signal", {"texture": 1.0}), ("signal", {"image": -1}), ("signal", {"image": "x"}),
    ("signal", "image=abc"), ("signal", [1, 2]), ("unknown_field", 1),
])
def test_synth_config_rejects_bad_values(field, value):
    with pytest.raises(SynthConfigError) as exc:
        SynthConfig(**{field: value})
    # one line naming the field; a ValueError for Python callers, a GliotypeError for the CLI
    message = str(exc.value)
    assert message.startswith(f"synth: {field}:"), message
    assert "\n" not in message
    assert isinstance(exc.value, ValueError) and isinstance(exc.value, GliotypeError)


def test_synth_config_accepts_and_normalises():
    cfg = SynthConfig(patients=3, signal="network=0,image=0.5")
    assert cfg.signal == {"image": 0.5, "shape": 1.0, "location": 1.0, "network": 0.0}
    assert list(cfg.signal) == list(SIGNALS)  # fixed order: part of the written config
    assert SynthConfig(signal={"network": 0, "image": 0.5}).signal == cfg.signal
    assert cfg.patient_ids() == ["SYN-0000", "SYN-0001", "SYN-0002"]
    assert SynthConfig(patients=12345, id_prefix="X").patient_ids()[-1] == "X-12344"
    assert SynthConfig(patients=3, fa_cases=20).n_fa == 3
    assert "workers" not in cfg.output_fields()
    assert SynthConfig(workers=1).output_fields() == SynthConfig(workers=2).output_fields()
    with pytest.raises(ValidationError):
        cfg.patients = 5  # frozen


# --------------------------------------------------------------------------- CLI

def test_cli_synth_writes_a_cohort(tmp_path):
    out = tmp_path / "cohort"
    result = CliRunner().invoke(app, ["synth", "--out", str(out), "--patients", "3", "--seed", "1", "--fa-cases", "1"])
    assert result.exit_code == 0, result.output
    assert "Bayes-optimal AUC" in result.output
    assert "3 patients" in result.output
    labels = pd.read_csv(out / "labels.csv")
    assert len(labels) == 3
    assert len(list(out.glob("*/*_fa.nii.gz"))) == 1
    assert len(list(out.glob("*/*_seg.nii.gz"))) == 3
    doc = json.loads((out / "synth_config.json").read_text())
    assert doc["config"]["seed"] == 1 and doc["config"]["patients"] == 3
    assert doc["expected_auc"] == pytest.approx(expected_auc(doc["config"]["signal"]))

    # the same command again: nothing rendered, same answer
    again = CliRunner().invoke(app, ["synth", "--out", str(out), "--patients", "3", "--seed", "1", "--fa-cases", "1"])
    assert again.exit_code == 0, again.output
    # other arguments into the same folder: one-line user error, no traceback
    other = CliRunner().invoke(app, ["synth", "--out", str(out), "--patients", "3", "--seed", "2", "--fa-cases", "1"])
    assert other.exit_code == 2
    assert "overwrite" in other.output and "Traceback" not in other.output


@pytest.mark.parametrize("signal,named", [("texture=1", "texture"), ("image=abc", "abc"), ("image", "image"),
                                          ("location=3", "location")])
def test_cli_synth_bad_signal_is_a_one_line_error(tmp_path, signal, named):
    result = CliRunner().invoke(app, ["synth", "--out", str(tmp_path / "c"), "--patients", "2", "--signal", signal])
    assert result.exit_code == 2
    assert named in result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "c").exists()


def test_cli_synth_bad_space_is_a_one_line_error(tmp_path):
    result = CliRunner().invoke(app, ["synth", "--out", str(tmp_path / "c"), "--patients", "2", "--space", "tal"])
    assert len(result.output.strip().splitlines()) == 1
    assert result.exit_code == 2
    assert "space" in result.output and "'mni' or 'native'" in result.output
    assert not (tmp_path / "c").exists()
