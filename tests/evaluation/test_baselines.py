"""Baselines of Table 3: scikit-learn MLP/SVM on features, MONAI 3D CNNs on images."""

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

from gliotype.evaluation.baselines import cnn_model, mlp_classifier, svm_classifier


@pytest.mark.parametrize("make", [mlp_classifier, svm_classifier])
def test_feature_baselines_learn_a_separable_signal(make):
    rng = np.random.default_rng(0)
    y = (rng.random(120) < 0.35).astype(int)
    x = rng.normal(size=(120, 8)) + 1.5 * y[:, None] * (np.arange(8) < 3)
    model = make(seed=0).fit(x[:80], y[:80])
    assert roc_auc_score(y[80:], model.predict_proba(x[80:])[:, 1]) > 0.85


@pytest.mark.parametrize("name", ["resnet34", "densenet121"])
def test_cnn_baselines_take_four_channel_tumor_images(name):
    torch.manual_seed(0)
    model = cnn_model(name).eval()
    assert model(torch.randn(2, 4, 32, 32, 32)).shape == (2, 1)  # the tiny preset crop


def test_unknown_cnn():
    with pytest.raises(ValueError, match="unknown CNN baseline"):
        cnn_model("vgg")


def test_svm_calibration_folds_never_exceed_the_smaller_class():
    from gliotype.evaluation.baselines import calibration_folds

    assert calibration_folds([0] * 13 + [1] * 4) == 4
    assert calibration_folds([0] * 30 + [1] * 30) == 5
    assert calibration_folds([0] * 10 + [1]) == 2
