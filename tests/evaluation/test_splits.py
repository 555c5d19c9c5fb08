"""Section 4.1 split protocol: SSL set, stratified 7:3, train halved into A and B."""

import numpy as np
import pandas as pd
import pytest

from gliotype.evaluation.splits import check_splits, make_splits


def _patients(n=120, n_fa=20, seed=0):
    rng = np.random.default_rng(seed)
    idh = (rng.random(n) < 0.26).astype(float)
    idh[5] = np.nan
    return pd.DataFrame({"patient_id": [f"P{i:03d}" for i in range(n)], "idh": idh, "has_fa": np.arange(n) < n_fa})


def test_protocol_sizes_and_stratification():
    df = _patients()
    s = make_splits(df, 0.3, seed=1)
    check_splits(s)
    counts = s["split"].value_counts()
    assert counts["ssl"] == 20 and counts.get("unlabelled", 0) == 0  # P005 (no IDH) has FA: ssl
    labelled = 100
    assert counts["test"] == pytest.approx(0.3 * labelled, abs=1)
    assert abs(counts["A"] - counts["B"]) <= 1
    rate = df["idh"].iloc[20:].mean()
    for name in ("A", "B", "test"):
        assert s.loc[s["split"] == name, "idh"].mean() == pytest.approx(rate, abs=0.06)


def test_seeded_and_different_across_seeds():
    df = _patients()
    a, b, c = make_splits(df, seed=0), make_splits(df, seed=0), make_splits(df, seed=1)
    pd.testing.assert_frame_equal(a, b)
    assert not a["split"].equals(c["split"])


def test_unlabelled_patients_without_fa_are_set_aside():
    df = _patients(n_fa=0)
    s = make_splits(df)
    assert s.loc[s["patient_id"] == "P005", "split"].item() == "unlabelled"


def test_too_few_patients_is_a_clear_error():
    with pytest.raises(ValueError, match="too few labelled patients"):
        make_splits(_patients(n=30, n_fa=20))
