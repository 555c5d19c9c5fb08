"""MODEL_CARD.md's text (gliotype.experiment.model_card) for the cases a tiny run does not show: a real
cohort, a folder exported outside `gliotype run`, the calibration columns, missing sequences, cross-fitting.
The card of a real run is tested on the tiny run (tests/experiment/test_run.py)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from gliotype.config import load_config
from gliotype.experiment.model_card import SYNTHETIC_WARNING, CardFacts, model_card

META = {"node_weight": "uT_uB", "edge_weight": "uB", "theta": 0.5, "threshold": 0.42, "nodes": 20,
        "labelled_nodes": 12}


def _facts(synthetic, table3=None, **summary) -> CardFacts:
    splits = pd.DataFrame({"patient_id": [f"P{i:03d}" for i in range(12)],
                           "split": ["ssl"] * 2 + ["A"] * 4 + ["B"] * 3 + ["test"] * 3,
                           "idh": [1, np.nan, 1, 0, 0, 0, 1, 0, 1, 1, 0, 0]})
    cohort = splits.assign(site=["north"] * 5 + ["south"] * 7)
    return CardFacts.of_run(splits, cohort, synthetic=synthetic, table3=table3, summary=summary)


def _table3(**extra) -> pd.DataFrame:
    return pd.DataFrame({"model": ["Multi-modal + MLP", "Multi-modal + GNN"], "auc": [0.7, 0.8],
                         "auc_low": [0.5, 0.6], "auc_high": [0.9, 0.95], "acc": [0.6, 0.7], "sen": [0.5, 0.8],
                         "spe": [0.7, 0.6], "delong_p": [0.0004, np.nan], **extra})


def test_a_real_cohort_has_no_warning_and_counts_but_no_id():
    facts = _facts(False, _table3(), split_seed=7, protocol="paper", bayes_auc_test=None, observable_auc_test=0.9,
                   ceiling_ratio={"model": "Multi-modal + GNN", "auc": 0.8, "bayes": None, "observable": 0.8 / 0.9})
    text = model_card(load_config("tiny"), META, facts, own_test_auc=0.8)
    assert text.splitlines()[0].startswith("# Model card") and "WARNING" not in text
    assert "| ssl: " in text and "| 2 | 1 | 0 | 1 |" in text and "| all | 12 | 5 | 6 | 1 |" in text
    assert "IDH balance: 45% mutant of the 11 patients with a label." in text
    assert "Acquisition sites: 2." in text and "| north | 5 |" in text and "| south | 7 |" in text
    assert "| Multi-modal + MLP | 0.700 (0.500-0.900) | 0.600 | 0.500 | 0.700 | <0.001 |" in text
    assert "split seed 7" in text and "Brier" not in text and "ECE" not in text
    assert "| observable (hand-made descriptors, docs/audit.md) | 0.900 | 0.89 |" in text and "Bayes" not in text
    assert "P0" not in text  # counts only: no patient ID
    assert "None allowed (`input.missing_sequences: 0`)" in text and "own AUC on its test nodes: 0.800" in text


def test_synthetic_and_unrecorded_cohorts_warn_on_the_first_line():
    config = load_config("tiny")
    assert model_card(config, META, _facts(True)).splitlines()[0] == f"**WARNING: {SYNTHETIC_WARNING}.**"
    unknown = model_card(config, META)  # exported outside `gliotype run` (no facts)
    assert unknown.splitlines()[0].startswith("**WARNING: The training cohort of this model was not recorded")
    assert "Not recorded: the folder was exported outside `gliotype run` (no Table 3)." in unknown
    assert "own AUC on its test nodes: n/a" in unknown


def test_calibration_columns_missing_sequences_and_crossfit_are_shown_when_there():
    config = load_config("tiny", overrides=["input.missing_sequences=1", "split.protocol=crossfit"])
    text = model_card(config, META, _facts(True, _table3(brier=[0.2, 0.15], ece=[0.1, 0.05]), protocol="crossfit"))
    assert "| model | AUC (95% CI) | ACC | SEN | SPE | Brier | ECE | DeLong p vs GNN |" in text
    assert "| Multi-modal + GNN | 0.800 (0.600-0.950) | 0.700 | 0.800 | 0.600 | 0.150 | 0.050 |  |" in text
    assert "Up to 1 of the four may be missing" in text and "one fold exported" in text


def test_the_card_says_how_a_capped_graph_links_a_new_patient():
    plain = model_card(load_config("tiny"), META)
    capped = model_card(load_config("tiny", overrides=["population_graph.max_neighbours=10"]), META)
    assert "linked by eq. 8 (r >= theta = 0.50) to these stored patients" in plain and "most similar" not in plain
    assert ("(r >= theta = 0.50; an edge is kept when the stored patient is among the new patient's 10 most similar, "
            "or the new patient among the stored one's 10) to these stored patients") in capped
