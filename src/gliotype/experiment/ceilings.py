"""The ceilings a run's test AUC is read against (issue 12), and the model's share of each.

- the Bayes-optimal AUC: the synthetic generator's posterior on the test patients
  (:mod:`gliotype.synthetic.truth`; a real cohort has none);
- the observable ceiling: the audit's probe on hand-made descriptors, training to test
  patients (:func:`gliotype.audit.split_observable_ceiling`, docs/audit.md).

``gliotype run`` stores both and the ratios in ``summary.json`` and prints
:func:`ceiling_lines`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def bayes_ceiling(truth: pd.DataFrame | None, test_ids: list[str], y_test: np.ndarray) -> float | None:
    """AUC of the generator's Bayes posterior on the test patients (``truth``: the cohort's
    :func:`~gliotype.synthetic.truth.read_truth`; None for a real cohort, then None)."""
    if truth is None:
        return None
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(y_test, truth.loc[test_ids, "bayes_posterior"].to_numpy()))


def ceiling_ratios(model: str, auc: float, bayes: float | None, observable: float | None) -> dict:
    """The test AUC of ``model`` (its printed name) over each ceiling (what the issue's targets are stated in)."""
    return {"model": model, "auc": auc, "bayes": None if not bayes else auc / bayes,
            "observable": None if not observable else auc / observable}


def ceiling_lines(summary: dict) -> str:
    """The ceilings of the test patients and the full model's share of each (printed by ``gliotype run``)."""
    ratio = summary.get("ceiling_ratio") or {}
    lines = []
    for key, name in (("bayes", "Bayes-optimal AUC (generator latents)"),
                      ("observable", "observable ceiling (hand-made descriptors, docs/audit.md)")):
        value = summary.get(f"{key}_auc_test")
        if value is not None:
            share = f"; {ratio['model']} reaches {ratio[key]:.2f} x it" if ratio.get(key) is not None else ""
            lines.append(f"{name} of the test patients: {value:.3f}{share}")
    rep = summary.get("repeats")
    if rep and rep.get("ceiling_ratio"):
        for key in ("bayes", "observable"):
            shares = [r[key] for r in rep["ceiling_ratio"] if r and r.get(key) is not None]
            if shares:
                lines.append(f"over {len(shares)} splits, {key} ratio {np.mean(shares):.2f} +- "
                             f"{np.std(shares, ddof=1) if len(shares) > 1 else 0:.2f}")
    return "\n".join(lines)


__all__ = ["bayes_ceiling", "ceiling_lines", "ceiling_ratios"]
