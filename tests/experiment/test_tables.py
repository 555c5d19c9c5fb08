"""Tables 2-4 and the report from features (section 5), on a small separable cohort."""

import numpy as np
import pandas as pd
import pytest

from gliotype.config import load_config
from gliotype.experiment.report import write_report
from gliotype.experiment.tables import Scored, feature_models, population_graph_models, table, to_markdown
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
    models.append(Scored("Multi-modal + GNN", models[0].p_train, models[0].p_test))
    cfg = load_config("tiny")
    df = table(models, y[train], y[~train], cfg.evaluation, reference="Multi-modal + GNN")
    assert np.isnan(df.loc[df["model"] == "Multi-modal + GNN", "delong_p"]).all()
    assert df.loc[df["model"] == "Multi-modal + MLP", "delong_p"].item() == pytest.approx(1.0)
    md = to_markdown(df)
    assert md.count("\n") == len(df) + 1 and "DeLong p" in md
    preds = pd.DataFrame({"patient_id": ["P1"], "split": ["test"], "model": ["m"], "probability": [0.3], "label": [0]})
    path = write_report(tmp_path, {"table3": df}, preds, {"patients": {"A": 1}, "seconds": {"x": 1.0}}, cfg,
                        {m.name: m for m in models}, y[~train])
    page = path.read_text()
    assert "Table 3" in page and "Multi-modal + SVM" in page and "data:image/png;base64" in page
    assert (tmp_path / "roc.png").stat().st_size > 1000
    assert list(pd.read_csv(tmp_path / "table3.csv").columns[:7]) == ["model", "auc", "auc_low", "auc_high", "acc",
                                                                     "sen", "spe"]
