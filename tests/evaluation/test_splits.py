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


@pytest.mark.parametrize("seed", range(6))
def test_every_split_is_stratified_to_one_patient(seed):
    """Section 4.1's halves and test set keep the mutant rate: mutants split as evenly as counts allow
    (an unstratified split drifts by several patients on some seed)."""
    df = _patients(n=140, n_fa=20, seed=seed)
    s = make_splits(df, 0.3, seed=seed)
    mutants = s[s["idh"] == 1]["split"].value_counts()
    labelled = s[s["split"].isin(["A", "B", "test"])]
    n_mut = int((labelled["idh"] == 1).sum())
    assert abs(mutants.get("A", 0) - mutants.get("B", 0)) <= 1
    assert abs(mutants.get("test", 0) - 0.3 * n_mut) <= 1


def test_the_smallest_cohort_that_can_be_split():
    """8 labelled patients outside the FA set, 4 of each class: the minimum; one fewer of a class is an error
    whose counts are right."""
    ok = pd.DataFrame({"patient_id": [f"P{i}" for i in range(8)], "idh": [1.0] * 4 + [0.0] * 4,
                       "has_fa": [False] * 8})
    s = make_splits(ok, 0.25, seed=0)
    check_splits(s)
    short = ok.iloc[1:]
    with pytest.raises(ValueError, match=r"7 \(3 mutant, 4 wild-type\); need at least 4 of each"):
        make_splits(short, 0.25, seed=0)


def test_check_splits_names_a_split_with_one_class():
    s = pd.DataFrame({"patient_id": ["a", "b", "c", "d", "e", "f"], "split": ["A", "A", "B", "B", "test", "test"],
                      "idh": [1.0, 0.0, 1.0, 0.0, 1.0, 1.0]})
    with pytest.raises(ValueError, match="split test must hold labelled patients of both classes"):
        check_splits(s)
    with pytest.raises(ValueError, match="two splits"):
        check_splits(pd.concat([s, s.iloc[:1]]))
