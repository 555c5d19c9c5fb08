"""The phenotype table of the synthetic cohort (no images): large draws of
``sample_phenotypes`` against the closed-form AUCs and posterior of the generative model."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

from gliotype.synthetic import EFFECT_SIZE, SIGNALS, SynthConfig, bayes_posterior, expected_auc, sample_phenotypes
from gliotype.synthetic.phenotype import GAUSSIAN_LATENTS, deltas, derived_parameters, location_probability

N = 20000
DEFAULT = {k: 1.0 for k in SIGNALS}
MIXED = {"image": 0.5, "shape": 0.0, "location": 2.0, "network": 1.5}


@pytest.fixture(scope="module")
def draws():
    """Large phenotype tables for a few knob settings, drawn once."""
    cache = {}

    def get(signal=None, seed=11, prevalence=0.26, n=N):
        key = (tuple(sorted((signal or {}).items())), seed, prevalence, n)
        if key not in cache:
            cfg = SynthConfig(patients=n, seed=seed, prevalence=prevalence, signal=dict(signal or {}), fa_cases=0)
            cache[key] = sample_phenotypes(cfg)
        return cache[key]

    return get


def _score(df, latent):
    """Each latent is oriented high = wild-type-like, so the IDH-mutant score is its negative."""
    if latent == "location":
        return df["location_group"].to_numpy(float)
    return -df[f"z_{latent}"].to_numpy()


# --------------------------------------------------------------------------- per-latent AUC

@pytest.mark.parametrize("signal", [DEFAULT, MIXED], ids=["default", "mixed"])
@pytest.mark.parametrize("latent", SIGNALS)
def test_each_latent_alone_reaches_expected_auc(draws, latent, signal):
    df = draws(signal)
    auc = roc_auc_score(df["idh"], _score(df, latent))
    want = expected_auc(signal)[latent]
    # standard error of an AUC on 20000 rows at 26 % prevalence is < 0.005
    assert auc == pytest.approx(want, abs=0.015), (latent, auc, want)


@pytest.mark.parametrize("latent", SIGNALS)
def test_logistic_regression_on_one_latent_matches_expected_auc(draws, latent):
    df = draws(DEFAULT, seed=12)
    col = "location_group" if latent == "location" else f"z_{latent}"
    X, y = df[[col]].to_numpy(float), df["idh"].to_numpy()
    half = len(df) // 2
    clf = LogisticRegression().fit(X[:half], y[:half])
    auc = roc_auc_score(y[half:], clf.predict_proba(X[half:])[:, 1])
    assert auc == pytest.approx(expected_auc(DEFAULT)[latent], abs=0.02)
    if latent != "location":
        assert clf.coef_[0, 0] < 0  # high latent = wild-type-like
    else:
        assert clf.coef_[0, 0] > 0  # frontal/insular = mutant-like


@pytest.mark.parametrize("latent", SIGNALS)
def test_knob_zero_gives_chance_auc(draws, latent):
    signal = {latent: 0.0}
    df = draws(signal)
    assert expected_auc(signal)[latent] == pytest.approx(0.5)
    auc = roc_auc_score(df["idh"], _score(df, latent))
    assert auc == pytest.approx(0.5, abs=0.015), auc
    # the other signals are untouched
    for other in SIGNALS:
        if other != latent:
            assert expected_auc(signal)[other] == pytest.approx(expected_auc(DEFAULT)[other])


def test_expected_auc_values_at_knob_one():
    auc = expected_auc(DEFAULT)
    for k in GAUSSIAN_LATENTS:
        assert auc[k] == pytest.approx(stats.norm.cdf(EFFECT_SIZE[k] / math.sqrt(2)))
    assert auc["location"] == pytest.approx(0.70)
    assert max(auc[k] for k in SIGNALS) < auc["bayes"] < 1.0
    everything_off = expected_auc({k: 0.0 for k in SIGNALS})
    assert all(v == pytest.approx(0.5) for v in everything_off.values()), everything_off


def test_expected_auc_grows_with_each_knob():
    for k in SIGNALS:
        values = [expected_auc({k: s})[k] for s in (0.0, 0.5, 1.0, 1.5)]
        assert np.all(np.diff(values) > 0), (k, values)
        bayes = [expected_auc({k: s})["bayes"] for s in (0.0, 0.5, 1.0, 1.5)]
        assert np.all(np.diff(bayes) > 0), (k, bayes)


# --------------------------------------------------------------------------- posterior

@pytest.mark.parametrize("signal,prevalence", [(DEFAULT, 0.26), (MIXED, 0.26), (DEFAULT, 0.5)],
                         ids=["default", "mixed", "balanced"])
def test_posterior_is_calibrated(draws, signal, prevalence):
    df = draws(signal, seed=21, prevalence=prevalence)
    p, y = df["bayes_posterior"].to_numpy(), df["idh"].to_numpy()
    edges = np.quantile(p, np.linspace(0, 1, 11))
    bins = np.clip(np.searchsorted(edges, p, side="right") - 1, 0, 9)
    hl = 0.0
    for b in range(10):
        sel = bins == b
        obs, exp = y[sel].mean(), p[sel].mean()
        assert abs(obs - exp) < 0.03, (b, obs, exp)
        n = sel.sum()
        hl += (y[sel].sum() - n * exp) ** 2 / (n * exp * (1 - exp))
    # Hosmer-Lemeshow: chi2 with 10 - 2 degrees of freedom under calibration
    assert stats.chi2.sf(hl, 8) > 0.001, hl
    assert y.mean() == pytest.approx(prevalence, abs=0.015)
    assert p.mean() == pytest.approx(prevalence, abs=0.015)


def test_wrong_posterior_is_caught_by_the_calibration_check(draws):
    """The check above can fail: a posterior that ignores the location is miscalibrated."""
    df = draws(DEFAULT, seed=21)
    p = bayes_posterior(df, {**DEFAULT, "location": 0.0}, 0.26)
    y = df["idh"].to_numpy()
    g = df["location_group"].to_numpy() == 1
    assert y[g].mean() - p[g].mean() > 0.05


@pytest.mark.parametrize("signal", [DEFAULT, MIXED, {"image": 0.3, "shape": 0.3, "location": 0.3, "network": 0.3}],
                         ids=["default", "mixed", "weak"])
def test_cohort_auc_of_posterior_matches_expected_bayes_auc(draws, signal):
    df = draws(signal, seed=31)
    auc = roc_auc_score(df["idh"], df["bayes_posterior"])
    assert auc == pytest.approx(expected_auc(signal)["bayes"], abs=0.01)


def test_posterior_is_bayes_optimal_against_a_fitted_model(draws):
    """A logistic regression on all latents cannot beat the closed-form posterior (held-out)."""
    df = draws(DEFAULT, seed=41)
    X = df[["z_image", "z_shape", "z_network", "location_group"]].to_numpy(float)
    y = df["idh"].to_numpy()
    half = len(df) // 2
    clf = LogisticRegression().fit(X[:half], y[:half])
    auc_lr = roc_auc_score(y[half:], clf.predict_proba(X[half:])[:, 1])
    auc_bayes = roc_auc_score(y[half:], df["bayes_posterior"].to_numpy()[half:])
    assert auc_lr <= auc_bayes + 0.003
    assert auc_lr == pytest.approx(auc_bayes, abs=0.01)
    # fitted log-odds slopes match -s_k d_k
    d = deltas(DEFAULT)
    for j, k in enumerate(("image", "shape", "network")):
        assert clf.coef_[0, j] == pytest.approx(-d[k], abs=0.12), (k, clf.coef_)


def test_posterior_with_every_knob_off_is_the_prevalence(draws):
    off = {k: 0.0 for k in SIGNALS}
    df = draws(off, n=2000)
    assert np.allclose(df["bayes_posterior"], 0.26)


# --------------------------------------------------------------------------- knob 0 removes the signal

def test_network_knob_zero_removes_the_network_signal(draws):
    signal = {"network": 0.0}
    assert deltas(signal)["network"] == 0.0
    assert deltas(signal)["image"] == EFFECT_SIZE["image"]
    df = draws(signal, seed=51)
    mut, wt = df[df["idh"] == 1], df[df["idh"] == 0]
    for col in ("z_network", "infiltration_mm", "infiltration_amplitude", "paths_involved", "path_extent_mm",
                "path_amplitude"):
        assert stats.ks_2samp(mut[col], wt[col]).pvalue > 0.01, col
    # the posterior no longer looks at z_network
    moved = df.assign(z_network=df["z_network"] + 3.0)
    assert np.allclose(bayes_posterior(moved, signal, 0.26), df["bayes_posterior"])
    # ... and with the knob on, the classes do differ (the KS test has power)
    on = draws(DEFAULT, seed=51)
    assert stats.ks_2samp(on.loc[on["idh"] == 1, "z_network"], on.loc[on["idh"] == 0, "z_network"]).pvalue < 1e-10


@pytest.mark.parametrize("latent", ["image", "shape"])
def test_other_knobs_zero_remove_their_derived_parameters_signal(draws, latent):
    cols = {"image": ("enhancing_fraction", "necrosis_fraction", "mismatch", "enhancement_gain"),
            "shape": ("lobulation", "lobule_sharpness", "roughness_mm")}[latent]
    df = draws({latent: 0.0}, seed=52)
    mut, wt = df[df["idh"] == 1], df[df["idh"] == 0]
    for col in (f"z_{latent}", *cols):
        assert stats.ks_2samp(mut[col], wt[col]).pvalue > 0.01, col


def test_location_knob_zero_makes_the_group_independent_of_idh(draws):
    df = draws({"location": 0.0}, seed=53)
    p = location_probability({"location": 0.0})
    assert p[0] == p[1]
    table = np.array([[np.sum((df["idh"] == a) & (df["location_group"] == b)) for b in (0, 1)] for a in (0, 1)])
    assert stats.chi2_contingency(table).pvalue > 0.01


def test_a_knob_changes_only_its_own_latent():
    a = sample_phenotypes(SynthConfig(patients=3000, seed=5, fa_cases=0))
    b = sample_phenotypes(SynthConfig(patients=3000, seed=5, fa_cases=0, signal={"network": 0.0}))
    assert (a["idh"] == b["idh"]).all()
    for col in ("z_image", "z_shape", "location_group", "centre_x", "radius_core_mm", "age", "site"):
        assert np.array_equal(a[col].to_numpy(), b[col].to_numpy()), col
    assert not np.allclose(a["z_network"], b["z_network"])
    # z = (1/2 - IDH) s d + eps: the noise part is shared
    eps_a = a["z_network"] - (0.5 - a["idh"]) * EFFECT_SIZE["network"]
    assert np.allclose(eps_a, b["z_network"])


def test_nuisance_variables_are_independent_of_idh_given_the_location_group(draws):
    """Age, site, size and the exact centre carry no IDH information beyond the location group,
    so the closed-form posterior (latents + group) stays the Bayes optimum."""
    df = draws(DEFAULT, seed=61)
    for g in (0, 1):
        sub = df[df["location_group"] == g]
        mut, wt = sub[sub["idh"] == 1], sub[sub["idh"] == 0]
        for col in ("age", "radius_core_mm", "edema_margin_mm", "centre_x", "centre_y", "centre_z",
                    "centre_depth_mm", "atrophy"):
            assert stats.ks_2samp(mut[col], wt[col]).pvalue > 0.01, (g, col)
        sites = np.array([[np.sum((sub["idh"] == a) & (sub["site"] == s)) for s in range(3)] for a in (0, 1)])
        assert stats.chi2_contingency(sites).pvalue > 0.01


# --------------------------------------------------------------------------- table structure

def test_rows_depend_only_on_seed_and_index():
    small = sample_phenotypes(SynthConfig(patients=5, seed=8, fa_cases=0))
    big = sample_phenotypes(SynthConfig(patients=3000, seed=8, fa_cases=0)).iloc[:5]
    cols = [c for c in small.columns if c not in ("patient_id", "fa")]
    assert small[cols].equals(big[cols].reset_index(drop=True))
    other = sample_phenotypes(SynthConfig(patients=5, seed=9, fa_cases=0))
    assert not np.allclose(small["z_image"], other["z_image"])


def test_table_columns_and_ranges():
    cfg = SynthConfig(patients=500, seed=2, fa_cases=20, sites=4)
    df = sample_phenotypes(cfg)
    assert list(df["patient_id"]) == cfg.patient_ids()
    assert df["patient_id"].is_unique
    assert df["fa"].sum() == 20
    assert set(df["idh"]) == {0, 1}
    assert set(df["site"]) <= set(range(4))
    assert df["age"].between(18, 88).all()
    assert set(df["location_group"]) == {0, 1}
    assert df["radius_core_mm"].between(4.0, 20.0).all()
    assert (df["radius_core_mm"] <= df["centre_depth_mm"] - 4.0 + 1e-9).all()
    assert df["bayes_posterior"].between(0, 1).all()
    assert df["hemisphere"].isin(["L", "R"]).all()
    assert ((df["hemisphere"] == "L") == (df["centre_x"] < 0)).all()
    for col in ("enhancing_fraction", "necrosis_fraction", "mismatch", "infiltration_amplitude"):
        assert df[col].between(0, 1).all(), col
    assert "remote_wm_change" not in df  # generator v1 only
    assert df["paths_involved"].dtype == np.int64 and df["paths_involved"].between(4, 28).all()
    assert df["path_extent_mm"].between(15, 60).all() and df["path_amplitude"].between(0.3, 1).all()
    # fa cases are capped at the number of patients
    assert sample_phenotypes(SynthConfig(patients=3, fa_cases=20))["fa"].sum() == 3
    # the native pose exists only for space=native
    assert "native_rot_x_deg" not in df
    nat = sample_phenotypes(SynthConfig(patients=200, seed=2, space="native"))
    assert nat["native_rot_x_deg"].abs().max() <= 12.0
    spacing = nat[["native_spacing_x_mm", "native_spacing_y_mm", "native_spacing_z_mm"]].to_numpy()
    assert (spacing > 0).all()
    assert (spacing[:, 2] > spacing[:, 0]).any()  # some anisotropic grids
    assert (spacing[:, 2] == spacing[:, 0]).any()  # and some isotropic ones


def test_network_path_parameters_follow_the_latent():
    """K = round(4 + 24 p), L = 15 + 45 p mm, A = 0.3 + 0.7 p with p = Phi(z_network), all
    non-decreasing in the latent (a larger latent involves a superset of paths)."""
    z = np.linspace(-4.0, 4.0, 401)
    d = derived_parameters(0.0, 0.0, z)
    p = stats.norm.cdf(z)
    assert np.array_equal(d["paths_involved"], np.floor(4 + 24 * p + 0.5).astype(np.int64))
    assert np.allclose(d["path_extent_mm"], 15 + 45 * p) and np.allclose(d["path_amplitude"], 0.3 + 0.7 * p)
    assert d["paths_involved"][0] == 4 and d["paths_involved"][-1] == 28
    for k in ("paths_involved", "path_extent_mm", "path_amplitude"):
        assert (np.diff(d[k]) >= 0).all(), k
    # the infiltration parameters are those of generator v1
    assert np.allclose(d["infiltration_mm"], 3 + 12 * p) and np.allclose(d["infiltration_amplitude"], p)
