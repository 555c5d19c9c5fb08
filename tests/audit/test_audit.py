"""`gliotype audit` on a tiny (cross-fitted) run folder: every group, the Table 1 graphs, the ceilings,
the encoders' stability across the folds, the files, the report section, and that the test patients
never enter a probe."""

from __future__ import annotations

import json
import math
import shutil

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from gliotype.audit import audit_run
from gliotype.audit.groups import FeatureGroup, reduce_group
from gliotype.audit.stability import fold_stability, stability_sentence
from gliotype.cli import app
from gliotype.experiment.report import add_audit_section

pytestmark = pytest.mark.slow

REFERENCE = "generator latents (reference)"
GROUPS = [REFERENCE, "descriptors (all)", "descriptors: volumes", "descriptors: compartments", "descriptors: shape",
          "descriptors: location", "descriptors: perilesional WM", "atlas region means", "atlas tract means",
          "x_B node attributes", "x_B edge attributes", "u_I", "u_P", "u_T", "u_B", "<u_T, u_B>", "BCE head"]
FAST = dict(folds=3, repeats=1)
FILES = ("audit.csv", "audit_homophily.csv", "audit_descriptors.csv", "audit.md", "audit.json")


@pytest.fixture(scope="module")
def audited(audit_run_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("audit")
    audit = audit_run(audit_run_dir / "run", truth=audit_run_dir / "cohort" / "truth.csv", out=out, **FAST)
    return audit_run_dir, out, audit


@pytest.fixture(scope="module")
def flipped(audit_run_dir, tmp_path_factory):
    """`gliotype audit` on a copy of the run whose *test* labels are flipped, with a truth file that
    lacks z_shape, z_network and site."""
    root = tmp_path_factory.mktemp("flipped")
    src, run = audit_run_dir / "run", root / "run"
    shutil.copytree(src, run, ignore=shutil.ignore_patterns("work", "model"))
    (run / "work").symlink_to(src / "work", target_is_directory=True)
    splits = pd.read_csv(run / "splits.csv", dtype={"patient_id": str})
    test = splits["split"] == "test"
    splits.loc[test, "idh"] = 1 - splits.loc[test, "idh"]
    splits.to_csv(run / "splits.csv", index=False)
    truth = pd.read_csv(audit_run_dir / "cohort" / "truth.csv")
    truth[["patient_id", "z_image", "location_group"]].to_csv(root / "truth.csv", index=False)
    res = CliRunner().invoke(app, ["audit", str(run), "--truth", str(root / "truth.csv"), "--folds", "3",
                                   "--repeats", "1"])
    return run, res


def test_every_group_along_the_pipeline_on_training_patients(audited):
    root, out, audit = audited
    t = audit.groups
    assert t["group"].tolist() == GROUPS
    assert {"rho_z_image", "rho_z_shape", "rho_z_network", "location", "site"} <= set(t.columns)
    splits = pd.read_csv(root / "run" / "splits.csv")
    n = splits["split"].value_counts()
    rows = t.set_index("group")
    assert rows.loc["descriptors (all)", "patients"] == n["ssl"] + n["A"] + n["B"]
    assert rows.loc["u_T", "patients"] == n["B"]  # features exist for half B and test only
    assert (t["patients_b"] == n["B"]).all()
    auc = t[["probe_auc", "probe_auc_b"]].to_numpy()
    assert np.all((auc >= 0) & (auc <= 1))
    assert rows.loc["<u_T, u_B>", "dims"] == rows.loc["u_T", "dims"] + rows.loc["u_B", "dims"]
    # hand-made shape descriptors follow the shape latent, compartments the image latent
    assert rows.loc["descriptors: shape", "rho_z_shape"] > 0.5
    assert rows.loc["descriptors: compartments", "rho_z_image"] > 0.5
    assert rows.loc[REFERENCE, "dims"] == 4 and rows.loc[REFERENCE, "rho_z_shape"] > 0.9
    assert len(audit.homophily) == 5 and audit.homophily["random_pairs"].between(0, 1).all()
    assert 0 <= audit.observable_ceiling <= 1 and audit.bayes_auc is not None
    assert audit.patients == {"ssl": n["ssl"], "A": n["A"], "B": n["B"], "test": n["test"]}
    pd.testing.assert_frame_equal(pd.read_csv(out / "audit.csv"), t, check_dtype=False, atol=1e-5)


def test_outputs_are_deterministic_and_name_no_path(audited, tmp_path):
    """The same bytes again, with the groups probed in 2 processes instead of 1."""
    root, out, audit = audited
    again = audit_run(root / "run", truth=root / "cohort" / "truth.csv", out=tmp_path, workers=2, **FAST)
    for name in FILES:
        assert (tmp_path / name).read_bytes() == (out / name).read_bytes(), name
        text = (out / name).read_text()
        assert str(root) not in text and "cohort/" not in text
    assert again.observable_ceiling == audit.observable_ceiling


def test_cli_prints_the_audit_and_adds_one_report_section(flipped):
    run, res = flipped
    assert res.exit_code == 0, res.output
    assert "Information audit" in res.output and "Observable ceiling" in res.output
    assert "Encoder stability across the cross-fitting folds" in res.output
    html = (run / "results" / "report.html").read_text()
    assert html.count("<h2>Information audit") == 1 and html.rstrip().endswith("</html>")
    assert html.count("Encoder stability across the cross-fitting folds") == 1
    for name in FILES:
        assert (run / "results" / name).stat().st_size > 0


def test_test_labels_never_enter_a_probe_and_missing_truth_columns_are_skipped(audited, flipped):
    _, _, audit = audited
    run, _ = flipped
    copy = pd.read_csv(run / "results" / "audit.csv")
    assert "rho_z_network" not in copy and "site" not in copy and "rho_z_image" in copy
    same = ["group", "patients", "probe_auc", "patients_b", "probe_auc_b", "rho_z_image", "location"]
    ours = audit.groups[audit.groups["group"] != REFERENCE].reset_index(drop=True)
    theirs = copy[copy["group"] != REFERENCE].reset_index(drop=True)  # the reference row has fewer latents
    pd.testing.assert_frame_equal(theirs[same], ours[same], check_dtype=False, atol=1e-5)
    hom = pd.read_csv(run / "results" / "audit_homophily.csv")
    assert np.allclose(hom["homophily"], audit.homophily["homophily"], equal_nan=True)
    theirs = json.loads((run / "results" / "audit.json").read_text())
    assert theirs["observable_ceiling"] == pytest.approx(1 - audit.observable_ceiling)  # it alone scores the test set
    assert theirs["stability"] == pytest.approx(audit.stability.to_dict())  # the folds' heads read no test label


def test_the_cross_fitting_folds_agreement_is_reported(audited):
    """Fold A's head on half B, fold B's head on half A (each with its half's labels) and the two
    folds' agreement on the test patients, in the audit, its Markdown and audit.json."""
    from gliotype.audit.audit import _stability, read_run_folder

    root, out, audit = audited
    s = audit.stability
    n = pd.read_csv(root / "run" / "splits.csv")["split"].value_counts()
    assert s is not None and s.test_patients == n["test"]
    assert math.isfinite(s.test_agreement) and -1 <= s.test_agreement <= 1
    assert 0 <= s.head_auc_a_on_b <= 1 and 0 <= s.head_auc_b_on_a <= 1
    assert stability_sentence(s) in audit.to_markdown() and stability_sentence(s) in (out / "audit.md").read_text()
    assert json.loads((out / "audit.json").read_text())["stability"] == pytest.approx(s.to_dict())
    # fold B's encoders scored half A and the test patients, fold A's half B and the test patients
    run = read_run_folder(root / "run")
    splits = run.splits[run.splits["idh"].notna()]
    ids = {k: splits.loc[splits["split"] == k, "patient_id"].tolist() for k in ("ssl", "A", "B", "test")}
    assert set(run.features_b["patient_id"]) == set(ids["A"] + ids["test"])
    assert set(run.features["patient_id"]) == set(ids["B"] + ids["test"])
    # the heads respond to the labels of the halves they are scored on, the agreement to none
    labels = dict(zip(splits["patient_id"], splits["idh"].astype(int)))
    flipped = {p: 1 - y if p in ids["A"] + ids["B"] else y for p, y in labels.items()}
    other = fold_stability(run.features, run.features_b, ids, flipped)
    assert other.head_auc_a_on_b == pytest.approx(1 - s.head_auc_a_on_b)
    assert other.head_auc_b_on_a == pytest.approx(1 - s.head_auc_b_on_a)
    assert other.test_agreement == s.test_agreement
    # a run that is not cross-fitted has none
    run.config["split"]["protocol"] = "paper"
    assert _stability(run, ids, labels) is None


def test_cli_bad_run_folder_or_truth_is_one_line(audit_run_dir, tmp_path):
    for args in (["audit", str(tmp_path / "nothing")], ["audit", str(tmp_path)],
                 ["audit", str(audit_run_dir / "run"), "--truth", str(tmp_path / "none.csv"), "--out", str(tmp_path)]):
        res = CliRunner().invoke(app, args)
        assert res.exit_code == 2, res.output
        assert len(res.output.strip().splitlines()) == 1 and res.output.startswith("error:")
        assert "Traceback" not in res.output


def test_report_section_is_replaced_not_stacked(audited, tmp_path):
    root, _, audit = audited
    report = tmp_path / "report.html"
    shutil.copy(root / "run" / "results" / "report.html", report)
    add_audit_section(report, audit)
    first = report.read_text()
    add_audit_section(report, audit)
    assert report.read_text() == first and first.count("<h2>Information audit") == 1
    assert "&lt;u_T, u_B&gt;" in first  # group names are escaped


def test_wide_groups_are_reduced_by_a_pca_fitted_on_training_patients():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(30, 50))
    group = FeatureGroup("wide", "test", [f"P{i}" for i in range(30)], x, summary=x[:, :3])
    train = [f"P{i}" for i in range(20)]
    assert reduce_group(group, train, max_dims=100) is x
    reduced = reduce_group(group, train, max_dims=10, components=4)
    assert reduced.shape == (30, 3 + 4) and np.array_equal(reduced[:, :3], x[:, :3])
    moved = x.copy()
    moved[25:] += 100.0  # non-training rows do not move the fit
    other = reduce_group(FeatureGroup("wide", "test", group.patient_ids, moved, summary=moved[:, :3]), train,
                         max_dims=10, components=4)
    assert np.allclose(other[:20], reduced[:20])


def test_the_table1_graphs_are_capped_like_the_runs(audited):
    """The homophily rows count the graphs the run trained: with ``population_graph.max_neighbours`` in
    the run's config, the capped eq. 8 graph (design.md point 51)."""
    from gliotype.audit.audit import _homophily, read_run_folder

    root, _, audit = audited
    run = read_run_folder(root / "run")
    splits = run.splits[run.splits["idh"].notna()]
    labels = dict(zip(splits["patient_id"], splits["idh"].astype(int)))
    ids = {s: splits.loc[splits["split"] == s, "patient_id"].tolist() for s in ("ssl", "A", "B", "test")}
    full = _homophily(run, ids, labels, audit.groups)
    pd.testing.assert_frame_equal(full, audit.homophily)
    run.config.setdefault("population_graph", {}).update(theta=-1.0, max_neighbours=0)
    every_pair = _homophily(run, ids, labels, audit.groups)
    run.config["population_graph"]["max_neighbours"] = 1
    capped = _homophily(run, ids, labels, audit.groups)
    n = len(ids["B"]) + len(ids["test"])
    assert (every_pair["edges"] == n * (n - 1) // 2).all()  # theta -1: every pair
    assert (capped["edges"] < every_pair["edges"]).all() and (capped["edges"] >= n // 2).all()
