"""The linear probes of the audit: IDH AUC, observable ceiling, association with latents."""

from __future__ import annotations

import numpy as np
import pytest

from gliotype.audit import latent_association, latent_correlation, observable_ceiling, probe_auc


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(80, 6))
    y = (x[:, 0] + 0.3 * rng.normal(size=80) > 0.3).astype(int)
    return rng, x, y


def test_probe_auc_is_near_one_on_separable_data_and_near_half_on_noise(data):
    rng, x, y = data
    assert probe_auc(x, y, seed=0) > 0.9
    noise = rng.normal(size=(80, 6))
    assert abs(probe_auc(noise, y, seed=0) - 0.5) < 0.15
    assert probe_auc(x, y, seed=1, repeats=1) == probe_auc(x, y, seed=1, repeats=1)  # deterministic


def test_probe_auc_handles_missing_values_and_too_few_patients(data):
    _, x, y = data
    holes = x.copy()
    holes[::7, 1] = np.nan
    holes[:, 5] = np.nan  # a feature nobody has
    assert probe_auc(holes, y, repeats=1) > 0.9
    assert np.isnan(probe_auc(x[:5], np.array([1, 0, 0, 0, 0])))  # one patient of a class
    assert np.isnan(probe_auc(np.empty((10, 0)), np.arange(10) % 2))


def test_observable_ceiling_fits_on_training_and_scores_test(data):
    _, x, y = data
    assert observable_ceiling(x[:60], y[:60], x[60:], y[60:]) > 0.9
    # the test labels are only scored: reversing them reverses the AUC
    flipped = observable_ceiling(x[:60], y[:60], x[60:], 1 - y[60:])
    assert flipped == pytest.approx(1 - observable_ceiling(x[:60], y[:60], x[60:], y[60:]))
    assert np.isnan(observable_ceiling(x[:60], y[:60], x[60:], np.zeros(20)))


def test_latent_association_by_kind(data):
    rng, x, _ = data
    assert latent_correlation(x, 2 * x[:, 1] + 0.2 * rng.normal(size=80)) > 0.9
    assert abs(latent_correlation(x, rng.normal(size=80))) < 0.35
    assert latent_association(x, (x[:, 2] > 0).astype(float), "binary") > 0.9
    site = np.digitize(x[:, 3], [-0.5, 0.5]).astype(str)  # three sites
    assert latent_association(x, site, "categorical") > 0.7
    assert latent_association(rng.normal(size=(80, 6)), site, "categorical") < 0.55
    z = 2 * x[:, 1]
    z[:10] = np.nan  # patients without the latent are left out
    assert latent_association(x, z, "continuous") > 0.9
    with pytest.raises(ValueError, match="kind"):
        latent_association(x, z, "ordinal")


@pytest.mark.parametrize("classes", [2, 3])
def test_the_inner_cv_score_is_sklearns_neg_log_loss(classes):
    """The probes' fast scorer gives sklearn's ``neg_log_loss`` (the reference), including
    near-certain predictions (clipped) and several classes (the site probe)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import get_scorer

    from gliotype.audit.probes import neg_log_loss

    rng = np.random.default_rng(classes)
    x = rng.normal(size=(90, 4))
    y = np.digitize(x[:, 0] + 0.5 * rng.normal(size=90), np.linspace(-0.5, 0.5, classes - 1)) + 7  # labels 7, 8, ...
    for c in (1e-3, 1.0, 1e6):  # 1e6: nearly separable, probabilities at 0 / 1
        model = LogisticRegression(C=c, max_iter=5000).fit(x, y)
        assert neg_log_loss(model, x[:40], y[:40]) == pytest.approx(get_scorer("neg_log_loss")(model, x[:40], y[:40]),
                                                                    rel=1e-12, abs=1e-12)
