"""The ceilings of a run (gliotype.experiment.ceilings) and the repeated splits
(gliotype.experiment.repeats), on hand-made truth tables, summaries and metric tables."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from gliotype.experiment.ceilings import bayes_ceiling, ceiling_lines, ceiling_ratios
from gliotype.experiment.repeats import METRICS, repeats_markdown, summarise_repeats, write_repeats
from gliotype.layout import RunDir

# --------------------------------------------------------------------------- Bayes ceiling

TRUTH = pd.DataFrame({"bayes_posterior": [0.9, 0.2, 0.6, 0.4, 0.7, 0.1]},
                     index=pd.Index(["A", "B", "C", "D", "E", "F"], name="patient_id"))


def test_bayes_ceiling_is_the_auc_of_the_posterior_on_the_test_patients():
    # positives A (0.9), C (0.6), D (0.4); negatives B (0.2), E (0.7): 4 of 6 pairs ordered right
    ids, y = ["A", "B", "C", "D", "E"], np.array([1, 0, 1, 1, 0])
    assert bayes_ceiling(TRUTH, ids, y) == pytest.approx(4 / 6)
    assert isinstance(bayes_ceiling(TRUTH, ids, y), float)
    # the posterior is read by patient id, in the order of test_ids (not the table's order)
    assert bayes_ceiling(TRUTH, ids[::-1], y[::-1]) == pytest.approx(4 / 6)
    assert bayes_ceiling(TRUTH, ["A", "F"], np.array([1, 0])) == 1.0
    assert bayes_ceiling(TRUTH, ["A", "F"], np.array([0, 1])) == 0.0
    assert bayes_ceiling(None, ids, y) is None  # a real cohort has no generator posterior
    with pytest.raises(KeyError):
        bayes_ceiling(TRUTH, ["A", "Z"], np.array([1, 0]))  # a test patient the generator never made


# --------------------------------------------------------------------------- ratios and the printed lines

def test_ceiling_ratios():
    r = ceiling_ratios("Multi-modal + GNN", 0.72, 0.9, 0.8)
    assert r == {"model": "Multi-modal + GNN", "auc": 0.72, "bayes": pytest.approx(0.8), "observable": pytest.approx(0.9)}
    assert ceiling_ratios("m", 0.6, None, 0.75) == {"model": "m", "auc": 0.6, "bayes": None,
                                                    "observable": pytest.approx(0.8)}
    # no usable ceiling (missing or 0): no ratio rather than a division by zero
    assert ceiling_ratios("m", 0.6, 0.0, None) == {"model": "m", "auc": 0.6, "bayes": None, "observable": None}


def _summary(**over) -> dict:
    s = {"bayes_auc_test": 0.9, "observable_auc_test": 0.8,
         "ceiling_ratio": ceiling_ratios("Multi-modal + GNN", 0.72, 0.9, 0.8)}
    s.update(over)
    return s


def test_ceiling_lines_of_one_split():
    assert ceiling_lines(_summary()).splitlines() == [
        "Bayes-optimal AUC (generator latents) of the test patients: 0.900; Multi-modal + GNN reaches 0.80 x it",
        "observable ceiling (hand-made descriptors, docs/audit.md) of the test patients: 0.800; "
        "Multi-modal + GNN reaches 0.90 x it",
    ]


def test_ceiling_lines_of_a_real_cohort_and_without_ratios():
    real = _summary(bayes_auc_test=None, ceiling_ratio=ceiling_ratios("m", 0.6, None, 0.8))
    assert ceiling_lines(real) == ("observable ceiling (hand-made descriptors, docs/audit.md) of the test patients: "
                                   "0.800; m reaches 0.75 x it")
    no_ratio = {"bayes_auc_test": 0.8754, "observable_auc_test": None}
    assert ceiling_lines(no_ratio) == "Bayes-optimal AUC (generator latents) of the test patients: 0.875"
    assert ceiling_lines({}) == ""


def test_ceiling_lines_over_repeated_splits():
    ratios = [ceiling_ratios("m", 0.7, 1.0, 1.4), ceiling_ratios("m", 0.8, 1.0, None), None,
              ceiling_ratios("m", 0.9, 1.0, None)]
    text = ceiling_lines(_summary(repeats={"ceiling_ratio": ratios}))
    lines = text.splitlines()
    assert len(lines) == 4
    # Bayes ratios 0.7, 0.8, 0.9: mean 0.80, SD (ddof 1) 0.10; one observable ratio: SD 0
    assert lines[2] == "over 3 splits, bayes ratio 0.80 +- 0.10"
    assert lines[3] == "over 1 splits, observable ratio 0.50 +- 0.00"
    assert ceiling_lines(_summary(repeats={"ceiling_ratio": []})).count("\n") == 1  # no repeats lines
    assert "over" not in ceiling_lines(_summary(repeats={"split_seeds": [0, 1]}))


# --------------------------------------------------------------------------- repeats

def _table(auc, acc=(0.5, 0.5, 0.5), models=("Multi-modal + GNN", "Tumor image", "Brain network")) -> pd.DataFrame:
    n = len(models)
    return pd.DataFrame({"model": list(models), "auc": list(auc), "acc": list(acc), "sen": [0.5] * n,
                         "spe": [1.0] * n, "extra": ["x"] * n})


def test_summarise_repeats_over_three_splits():
    tables = [_table([0.6, 0.7, 0.5]), _table([0.8, 0.7, 0.6]), _table([0.7, 0.7, 0.7], acc=(0.2, 0.5, 0.8))]
    df = summarise_repeats(tables)
    assert list(df.columns) == ["model", "auc_mean", "auc_sd", "acc_mean", "acc_sd", "sen_mean", "sen_sd",
                                "spe_mean", "spe_sd", "repeats"]
    assert list(df["model"]) == ["Multi-modal + GNN", "Tumor image", "Brain network"]  # first table's order
    row = df.set_index("model").loc["Multi-modal + GNN"]
    assert row["auc_mean"] == pytest.approx(0.7) and row["auc_sd"] == pytest.approx(0.1)
    assert row["acc_mean"] == pytest.approx(0.4) and row["acc_sd"] == pytest.approx(math.sqrt(0.03))
    assert df.set_index("model").loc["Tumor image", "auc_sd"] == pytest.approx(0.0)
    assert df.set_index("model").loc["Brain network", "auc_mean"] == pytest.approx(0.6)
    assert (df["repeats"] == 3).all()
    assert df[[f"{m}_mean" for m in METRICS]].notna().all().all()


def test_summarise_one_split_has_no_sd():
    df = summarise_repeats([_table([0.6, 0.7, 0.5])])
    assert df["auc_sd"].isna().all() and (df["repeats"] == 1).all()


def test_repeats_markdown():
    df = summarise_repeats([_table([0.6, 0.7, 0.5]), _table([0.8, 0.7, 0.6])])
    assert repeats_markdown(df).splitlines() == [
        "| model | AUC | ACC | SEN | SPE |  (mean +- SD over 2 splits)",
        "|---|---|---|---|---|",
        "| Multi-modal + GNN | 0.700 +- 0.141 | 0.500 +- 0.000 | 0.500 +- 0.000 | 1.000 +- 0.000 |",
        "| Tumor image | 0.700 +- 0.000 | 0.500 +- 0.000 | 0.500 +- 0.000 | 1.000 +- 0.000 |",
        "| Brain network | 0.550 +- 0.071 | 0.500 +- 0.000 | 0.500 +- 0.000 | 1.000 +- 0.000 |",
    ]


def test_write_repeats_files_report_and_summary(tmp_path):
    run = RunDir(tmp_path / "run")
    run.results.root.mkdir(parents=True)
    run.results.report.write_text("<html><body><h1>run</h1></body></html>")
    runs = [{"tables": {"table3": _table([0.6, 0.7, 0.5]), "table4": _table([0.5, 0.5, 0.5])},
             "summary": {"bayes_auc_test": 0.9, "observable_auc_test": 0.8,
                         "ceiling_ratio": ceiling_ratios("m", 0.6, 0.9, 0.8), "other": 1}},
            {"tables": {"table3": _table([0.8, 0.7, 0.6]), "table4": _table([0.7, 0.5, 0.5])},
             "summary": {"bayes_auc_test": 0.85, "observable_auc_test": None,
                         "ceiling_ratio": ceiling_ratios("m", 0.8, 0.85, None), "other": 2}}]
    tables, summary = write_repeats(run, runs, [0, 7])

    assert sorted(tables) == ["table3", "table4"]
    assert tables["table3"].set_index("model").loc["Multi-modal + GNN", "auc_mean"] == pytest.approx(0.7)
    assert tables["table4"].set_index("model").loc["Multi-modal + GNN", "auc_sd"] == pytest.approx(math.sqrt(0.02))
    for name in ("table3", "table4"):
        csv = pd.read_csv(run.results.repeats_table(name))
        pd.testing.assert_frame_equal(csv, tables[name], check_dtype=False)
        assert run.results.repeats_table(name, "md").read_text() == repeats_markdown(tables[name]) + "\n"
    assert {p.name for p in run.results.root.iterdir()} == {
        "report.html", "repeats_table3.csv", "repeats_table3.md", "repeats_table4.csv", "repeats_table4.md"}
    report = run.results.report.read_text()
    assert report.startswith("<html><body><h1>run</h1>") and report.endswith("</body></html>")
    assert "mean and SD over 2 draws" in report and "<h3>Table 3</h3>" in report and "<h3>Table 4</h3>" in report

    assert summary == {"split_seeds": [0, 7], "bayes_auc_test": [0.9, 0.85], "observable_auc_test": [0.8, None],
                       "ceiling_ratio": [runs[0]["summary"]["ceiling_ratio"], runs[1]["summary"]["ceiling_ratio"]]}
    # what `gliotype run` prints from it: the two Bayes ratios 0.6 / 0.9 and 0.8 / 0.85
    shares = [0.6 / 0.9, 0.8 / 0.85]
    line = ceiling_lines({"repeats": summary}).splitlines()
    assert line == [f"over 2 splits, bayes ratio {np.mean(shares):.2f} +- {np.std(shares, ddof=1):.2f}",
                    "over 1 splits, observable ratio 0.75 +- 0.00"]
