"""Tables 2-4 and the report from features (section 5), on a small separable cohort."""

import numpy as np
import pandas as pd
import pytest

from gliotype.config import load_config
from gliotype.experiment.report import ABLATIONS_SKIPPED, write_report
from gliotype.experiment.tables import (
    GNN_ROW,
    TABLE3_ROWS,
    Scored,
    feature_models,
    graph_row,
    population_graph_models,
    table,
    to_markdown,
)
from gliotype.population_graph import TABLE1


@pytest.fixture(scope="module")
def cohort():
    rng = np.random.default_rng(0)
    n = 90
    y = (rng.random(n) < 0.35).astype(float)
    u_t = rng.normal(size=(n, 6)) + 1.2 * y[:, None] * np.array([1, -1, 1, 0, 0, 0])
    u_b = rng.normal(size=(n, 4)) + 1.2 * y[:, None] * np.array([0, 1, -1, 1])
    train = np.arange(n) < 55
    return u_t, u_b, y, train


def test_table2_has_one_row_per_population_graph(cohort):
    u_t, u_b, y, train = cohort
    cfg = load_config("tiny", overrides=["population_graph.epochs=40", "population_graph.lr=0.01",
                                         "population_graph.gat=[16, 16]", "population_graph.theta=0.2"])
    models = population_graph_models(u_t, u_b, y, train, [str(i) for i in range(90)], cfg.population_graph)
    df = table(models, y[train], y[~train], cfg.evaluation)
    assert len(df) == len(TABLE1) and df["auc"].between(0, 1).all()
    assert (df["auc_low"] <= df["auc"]).all() and (df["auc"] <= df["auc_high"]).all()
    assert df["auc"].max() > 0.75


def test_table_with_reference_and_report(cohort, tmp_path):
    u_t, u_b, y, train = cohort
    x = np.concatenate([u_t, u_b], axis=1)
    models = feature_models(x[train], y[train], x[~train])
    p_oof = np.where(np.arange(train.sum()) % 3 == 0, np.nan, np.clip(models[0].p_train + 0.2, 0, 1))
    models.append(Scored(TABLE3_ROWS[GNN_ROW], models[0].p_train, models[0].p_test, key=GNN_ROW, p_threshold=p_oof))
    cfg = load_config("tiny")
    df = table(models, y[train], y[~train], cfg.evaluation, reference=GNN_ROW)  # rows are selected by key
    assert np.isnan(df.loc[df["model"] == "Multi-modal + GNN", "delong_p"]).all()
    assert df.loc[df["model"] == "Multi-modal + MLP", "delong_p"].item() == pytest.approx(1.0)
    md = to_markdown(df)
    assert md.count("\n") == len(df) + 1 and "DeLong p" in md
    preds = pd.DataFrame({"patient_id": ["P1"], "split": ["test"], "model": ["m"], "probability": [0.3], "label": [0]})
    path = write_report(tmp_path, {"table3": df}, preds, {"patients": {"A": 1}, "seconds": {"x": 1.0}}, cfg,
                        {m.key: m for m in models}, y[~train])
    page = path.read_text()
    assert "Table 3" in page and "Multi-modal + SVM" in page and "data:image/png;base64" in page
    assert ABLATIONS_SKIPPED not in page
    one_row = write_report(tmp_path / "t4", {"table4": df.iloc[:1]}, preds, {"patients": {"A": 1}}, cfg,
                           {m.key: m for m in models}, y[~train]).read_text()
    assert ABLATIONS_SKIPPED in one_row
    assert (tmp_path / "roc.png").stat().st_size > 1000
    assert list(pd.read_csv(tmp_path / "table3.csv").columns[:7]) == ["model", "auc", "auc_low", "auc_high", "acc",
                                                                     "sen", "spe"]
    # issue 16: calibration and conformal columns, the reliability diagrams and the prediction sets
    csv = pd.read_csv(tmp_path / "table3.csv").set_index("model")
    assert {"threshold", "brier", "ece", "coverage", "set_size", "both"} <= set(csv.columns)
    assert csv["ece"].notna().all() and csv["coverage"].notna().tolist() == [False, False, True]
    assert "| Brier | ECE |" in (tmp_path / "table3.md").read_text()
    assert (tmp_path / "reliability.png").stat().st_size > 1000
    figure = page.split("<figure><img alt='reliability diagrams' src='data:image/png;base64,")[1].split("</figure>")[0]
    assert "<figcaption>" in figure and "below</b> the diagonal" in figure  # the caption is the figure's
    assert page.count("data:image/png;base64,") == 2
    assert "Conformal prediction sets of the Table 3 models (nominal coverage 90%)" in page
    gnn = df.set_index("model").loc["Multi-modal + GNN"]
    assert f"<td>{gnn['coverage']:.3f}</td>" in page and f"<td>{gnn['set_size']:.3f}</td>" in page
    assert "<td>Multi-modal + SVM</td>" in page.split("Conformal prediction sets")[0]
    assert "<td>Multi-modal + SVM</td>" not in page.split("Conformal prediction sets")[1]  # no sets: not listed
    assert "reliability" not in one_row and "Conformal" not in one_row  # no Table 3: no such section
    fitted_only = df.assign(coverage=np.nan)
    none = write_report(tmp_path / "none", {"table3": fitted_only}, preds, {}, cfg, {m.key: m for m in models},
                        y[~train]).read_text()
    assert "no prediction sets were made and no coverage is reported" in none


def test_the_reliability_diagrams_are_of_the_table3_rows_in_table_order():
    from gliotype.experiment.report import table3_models

    y = np.array([0, 1, 0, 1.0])
    gnn, svm = (Scored(TABLE3_ROWS[k], y, y, key=k) for k in (GNN_ROW, "svm"))
    table2_row = Scored("uT, r(uB)", y, y, key=graph_row("uT", "uB"))
    t3 = pd.DataFrame({"model": ["Multi-modal + GNN", "Multi-modal + SVM"]})
    picked = table3_models({"table3": t3}, {"svm": svm, GNN_ROW: gnn, table2_row.key: table2_row})
    assert picked == [gnn, svm]
    assert table3_models({"table2": t3}, {"svm": svm}) == []


def test_threshold_is_chosen_on_out_of_fit_predictions_only():
    """Overfit (fitted) predictions put Youden's threshold at 0.9; the out-of-fit (validation) ones at 0.4."""
    from gliotype.evaluation import youden_threshold

    y = np.array([0, 0, 0, 0, 0, 1, 1, 0, 0, 1, 1], dtype=float)
    p_train = np.array([0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.95, 0.3, 0.35, 0.4, 0.45])
    p_val = np.where(np.arange(11) >= 7, p_train, np.nan)  # the last four are out-of-fit
    cfg = load_config("tiny").evaluation
    fitted = table([Scored("m", p_train, p_train)], y, y, cfg)["threshold"].item()
    held = table([Scored("m", p_train, p_train, p_threshold=p_val)], y, y, cfg)["threshold"].item()
    assert fitted == youden_threshold(y, p_train) == 0.9
    assert held == youden_threshold(y[7:], p_train[7:]) == 0.4
    half = cfg.model_copy(update={"threshold": "0.5"})
    assert table([Scored("m", p_train, p_train, p_threshold=p_val)], y, y, half)["threshold"].item() == 0.5


def test_a_threshold_with_a_test_reference_is_carried_over_by_rank():
    """Youden's J on the out-of-fold predictions (0.4), then the same fraction of the test patients
    called mutant on the reported model's scale: the reference (fold GNNs) puts 2 of 4 at or above
    0.4, so the reported model's threshold is its median; by value (no reference) it stays 0.4."""
    from gliotype.evaluation import youden_threshold

    y = np.array([0, 0, 1, 1, 0, 1], dtype=float)
    p_oof = np.array([0.2, 0.3, 0.4, 0.5, 0.35, 0.45])
    p_test = np.array([0.9, 0.6, 0.99, 0.7])  # the reported GNN: confident, everybody above 0.4
    reference = np.array([0.45, 0.1, 0.5, 0.2])
    cfg = load_config("tiny").evaluation
    assert youden_threshold(y, p_oof) == 0.4
    by_value = table([Scored("m", p_oof, p_test, p_threshold=p_oof)], y, y[:4], cfg)
    by_rank = table([Scored("m", p_oof, p_test, p_threshold=p_oof, p_test_reference=reference)], y, y[:4], cfg)
    assert by_value["threshold"].item() == 0.4 and by_value["sen"].item() == 1 and by_value["spe"].item() == 0
    assert by_rank["threshold"].item() == pytest.approx(0.8)  # between 0.7 and 0.9
    assert by_rank["auc"].item() == by_value["auc"].item()  # the probabilities are the same


def test_table2_thresholds_come_from_the_validation_nodes(cohort):
    from gliotype.evaluation import youden_threshold

    u_t, u_b, y, train = cohort
    cfg = load_config("tiny", overrides=["population_graph.epochs=20", "population_graph.lr=0.01",
                                         "population_graph.gat=[16, 16]", "population_graph.theta=0.2",
                                         "population_graph.val_fraction=0.25", "population_graph.patience=10"])
    rows = TABLE1[2:4]
    models = population_graph_models(u_t, u_b, y, train, [str(i) for i in range(90)], cfg.population_graph, 0, rows)
    df = table(models, y[train], y[~train], cfg.evaluation)
    y_b, differ = y[train], []
    for m, thr in zip(models, df["threshold"]):
        val = m.artifacts["validation_nodes"]  # graph nodes = the 55 B patients, then the test patients
        assert np.array_equal(np.flatnonzero(np.isfinite(m.p_threshold)), val) and len(val) == 14
        assert thr == youden_threshold(y_b[val], m.p_train[val])
        differ.append(thr != youden_threshold(y_b, m.p_train))
    assert any(differ)


def test_feature_models_paper_rows_are_the_fixed_classifiers(cohort):
    from gliotype.evaluation.baselines import calibration_folds, mlp_classifier, svm_classifier

    u_t, u_b, y, train = cohort
    x = np.concatenate([u_t, u_b], axis=1)
    mlp, svm = feature_models(x[train], y[train], x[~train], seed=3)
    assert mlp.p_threshold is None and svm.p_threshold is None
    ref = mlp_classifier(seed=3).fit(x[train], y[train]).predict_proba(x[~train])[:, 1]
    assert np.array_equal(mlp.p_test, ref)
    ref = svm_classifier(seed=3, folds=calibration_folds(y[train])).fit(x[train], y[train])
    assert np.array_equal(svm.p_test, ref.predict_proba(x[~train])[:, 1])


def test_feature_models_cv_with_out_of_fold_thresholds(cohort):
    from gliotype.config.schema import FeatureClassifiersConfig
    from gliotype.evaluation import youden_threshold

    u_t, u_b, y, train = cohort
    x = np.concatenate([u_t, u_b], axis=1)
    fc = FeatureClassifiersConfig(rows=["mlp", "svm", "lr"], regularisation="cv", threshold="out_of_fold",
                                  inner_folds=3, mlp_alphas=[1e-2, 1.0], svm_cs=[0.1, 1.0], lr_cs=[0.01, 1.0])
    models = feature_models(x[train], y[train], x[~train], seed=1, config=fc)
    assert [m.name for m in models] == ["Multi-modal + MLP", "Multi-modal + SVM", "Multi-modal + LR"]
    assert [m.key for m in models] == ["mlp", "svm", "lr"]
    assert "mlpclassifier__alpha" in models[0].artifacts["chosen"]
    df = table(models, y[train], y[~train], load_config("tiny").evaluation)
    for m, thr in zip(models, df["threshold"]):
        assert np.isfinite(m.p_threshold).all() and not np.allclose(m.p_threshold, m.p_train)
        assert thr == youden_threshold(y[train], m.p_threshold)
    assert df["auc"].min() > 0.75
    again = feature_models(x[train], y[train], x[~train], seed=1, config=fc, rows=["mlp"])[0]
    assert again.p_threshold.tobytes() == models[0].p_threshold.tobytes()
    assert again.p_test.tobytes() == models[0].p_test.tobytes()


def test_table2_threshold_folds_keep_the_reported_model(cohort):
    """threshold_folds: the threshold from out-of-fold predictions; the reported GNN is the one on all of B."""
    from gliotype.evaluation import youden_threshold

    u_t, u_b, y, train = cohort
    base = ["population_graph.epochs=10", "population_graph.lr=0.01", "population_graph.gat=[8]",
            "population_graph.theta=0.2"]
    cfg = load_config("tiny", overrides=base + ["population_graph.threshold_folds=3"])
    ids, rows = [str(i) for i in range(90)], TABLE1[2:3]
    (m,) = population_graph_models(u_t, u_b, y, train, ids, cfg.population_graph, 0, rows)
    (plain,) = population_graph_models(u_t, u_b, y, train, ids, load_config("tiny", overrides=base).population_graph,
                                       0, rows)
    assert np.array_equal(m.p_test, plain.p_test) and plain.p_threshold is None
    assert np.isfinite(m.p_threshold).all() and not np.allclose(m.p_threshold, m.p_train)
    assert table([m], y[train], y[~train], cfg.evaluation)["threshold"].item() == youden_threshold(y[train],
                                                                                                    m.p_threshold)


def test_chosen_population_graph_fixed_or_best_out_of_fold_row():
    from gliotype.errors import GliotypeError
    from gliotype.experiment.tables import chosen_population_graph
    from gliotype.population_graph import TABLE1_NAMES

    y = np.array([0, 0, 0, 1, 1, 1], dtype=float)
    good = np.array([0.1, 0.2, 0.3, 0.7, 0.8, 0.9])
    nan_fitted = good.copy()
    nan_fitted[0] = np.nan  # a fitted patient: ignored
    models = [Scored(TABLE1_NAMES[row], good, good, {}, p, graph_row(*row)) for row, p in zip(
        TABLE1, [1 - good, good[::-1], nan_fitted, 1 - good, 1 - good])]
    paper = load_config("tiny").population_graph
    chosen = chosen_population_graph(models, y, paper)
    assert chosen.name == "<uT, uB>, r(uB)" and chosen.key == "uT_uB:uB"  # the paper's row, found by its key
    oof = paper.model_copy(update={"choose": "out_of_fold", "threshold_folds": 2})
    best = chosen_population_graph(models, y, oof)
    assert best.name == "<uT, uB>, r(uB)" and best.artifacts["out_of_fold_auc"]["uT, r(uB)"] == 0.0
    models[1] = Scored("uB, r(uT)", good, good, {}, good)  # as good, later in Table 1: ties keep the first
    models[0] = Scored("uT, r(uB)", good, good, {}, good)
    assert chosen_population_graph(models, y, oof).name == "uT, r(uB)"
    with pytest.raises(GliotypeError, match="choose: out_of_fold needs threshold_folds"):
        load_config("tiny", overrides=["population_graph.choose=out_of_fold"])
    with pytest.raises(GliotypeError, match="threshold_transfer: rank needs threshold_folds"):
        load_config("tiny", overrides=["population_graph.threshold_transfer=rank"])


def test_table2_in_two_processes_equals_one(cohort):
    u_t, u_b, y, train = cohort
    cfg = load_config("tiny", overrides=["population_graph.threshold_folds=2"]).population_graph
    ids, rows = [str(i) for i in range(90)], TABLE1[:3]
    one = population_graph_models(u_t, u_b, y, train, ids, cfg, 0, rows)
    two = population_graph_models(u_t, u_b, y, train, ids, cfg, 0, rows, workers=2)
    assert [m.name for m in two] == [m.name for m in one]
    for a, b in zip(one, two):
        assert a.p_test.tobytes() == b.p_test.tobytes() and a.p_threshold.tobytes() == b.p_threshold.tobytes()
        assert (a.artifacts["node"], a.artifacts["edge"]) == (b.artifacts["node"], b.artifacts["edge"])


def test_rows_have_brier_ece_and_conformal_columns_after_the_paper_columns():
    """Brier and ECE of the reported test probabilities (NaN patients left out); conformal sets
    calibrated on the finite out-of-fit predictions only, filled with the test reference when given;
    NaN for a model without out-of-fit predictions or whose threshold predictions are its fitted ones."""
    from gliotype.evaluation.calibration import brier_score, expected_calibration_error
    from gliotype.evaluation.conformal import fit_conformal, set_summary
    from gliotype.experiment.tables import CALIBRATION_COLUMNS, CONFORMAL_COLUMNS, TABLE_COLUMNS

    rng = np.random.default_rng(7)
    y_train, y_test = (rng.random(40) < 0.4).astype(float), np.r_[0.0, 1.0, (rng.random(30) < 0.4)]

    def probabilities(y, spread):
        return 1 / (1 + np.exp(-(1.5 * (2 * y - 1) + rng.normal(0, spread, len(y)))))

    p_train, p_test = probabilities(y_train, 0.5), probabilities(y_test, 1.0)
    p_test[5] = np.nan  # a patient this model did not score
    p_oof = np.where(np.arange(40) % 4 == 0, np.nan, probabilities(y_train, 1.5))  # a quarter fitted
    reference = probabilities(y_test, 2.5)
    cfg = load_config("tiny", overrides=["evaluation.calibration_bins=5", "evaluation.conformal_alpha=0.2"]).evaluation
    models = [Scored("plain", p_train, p_test),  # threshold on its fitted predictions: no sets
              Scored("oof", p_train, p_test, p_threshold=p_oof),
              Scored("oof_ref", p_train, p_test, p_threshold=p_oof, p_test_reference=reference)]
    df = table(models, y_train, y_test, cfg).set_index("model")
    assert list(df.reset_index().columns) == [*TABLE_COLUMNS, "threshold", *CALIBRATION_COLUMNS, *CONFORMAL_COLUMNS]
    scored = np.isfinite(p_test)
    for name in df.index:
        assert df.loc[name, "brier"] == brier_score(y_test[scored], p_test[scored])
        assert df.loc[name, "ece"] == expected_calibration_error(y_test[scored], p_test[scored], 5)
    assert df.loc[["plain"], CONFORMAL_COLUMNS].isna().all().all()
    known = np.isfinite(p_oof)
    cp = fit_conformal(y_train[known], p_oof[known], 0.2)
    by_test = set_summary(cp.sets(p_test[scored]), y_test[scored])
    by_reference = set_summary(cp.sets(reference), y_test)
    assert by_test != by_reference  # so the next two lines tell which probabilities went into the sets
    assert df.loc["oof", CONFORMAL_COLUMNS].to_dict() == {k: by_test[k] for k in CONFORMAL_COLUMNS}
    assert df.loc["oof_ref", CONFORMAL_COLUMNS].to_dict() == {k: by_reference[k] for k in CONFORMAL_COLUMNS}
    with_fitted = set_summary(fit_conformal(y_train, np.where(known, p_oof, p_train), 0.2).sets(reference), y_test)
    assert with_fitted != by_reference  # the fitted quarter would change the sets: it is left out
    mondrian = cfg.model_copy(update={"conformal_class_conditional": True})
    cp_class = fit_conformal(y_train[known], p_oof[known], 0.2, class_conditional=True)
    assert table(models[2:], y_train, y_test, mondrian)["coverage"].item() == \
        set_summary(cp_class.sets(reference), y_test)["coverage"]
    assert cp_class.thresholds != cp.thresholds


def test_evaluation_options_are_checked():
    from gliotype.errors import GliotypeError

    for bad in ("evaluation.conformal_alpha=0", "evaluation.conformal_alpha=1", "evaluation.calibration_bins=0"):
        with pytest.raises(GliotypeError, match="evaluation"):
            load_config("tiny", overrides=[bad])
    cfg = load_config("paper").evaluation
    assert (cfg.conformal_alpha, cfg.conformal_class_conditional, cfg.calibration_bins) == (0.1, False, 10)
