"""One series per role for a patient: the user's overrides, the heuristic, then the duplicate rule.

Every series gets a :class:`~gliotype.input.dicom.identify.Decision`: an override of the
user's CSV when one matches (:mod:`~gliotype.input.dicom.overrides`), else the heuristic's
(:func:`~gliotype.input.dicom.identify.identify`). When two or more series get one role, the
one kept is, in this order: the one an override named, the one with the most images (a
complete or thinner-sliced acquisition), the one with the highest SeriesNumber (the latest
acquired: usually the repeat after a motion-corrupted run). The others are skipped as
``duplicate of series N``.
"""

from __future__ import annotations

from collections.abc import Sequence

from gliotype.input.dicom.identify import Decision, identify
from gliotype.input.dicom.overrides import Override
from gliotype.input.dicom.series import Series

#: How the duplicate rule ranks two candidates for one role (the highest is kept).
DUPLICATE_RULE = "override first, then most images, then highest series number"


def _rank(series: Series, overridden: bool) -> tuple:
    return (overridden, series.slices, series.number if series.number is not None else -1)


def choose_roles(series: Sequence[Series], overrides: Sequence[Override] = ()) -> list[Decision]:
    """The final decision of each series (same order): at most one series per role."""
    decisions, overridden = [], []
    for s in series:
        hit = [o for o in overrides if o.matches(s)]
        if hit:
            o = hit[-1]  # the last matching row of the CSV wins
            role = None if o.role == "skip" else o.role
            decisions.append(Decision(role, f"override (line {o.row} of the overrides CSV)"))
            overridden.append(True)
        else:
            decisions.append(identify(s))
            overridden.append(False)
    roles = {d.role for d in decisions if d.role is not None}
    for role in roles:
        idx = [i for i, d in enumerate(decisions) if d.role == role]
        if len(idx) < 2:
            continue
        keep = max(idx, key=lambda i: _rank(series[i], overridden[i]))
        for i in idx:
            if i != keep:
                decisions[i] = Decision(None, f"duplicate of {series[keep].label} ({role}: "
                                              f"{_why_kept(series[keep], overridden[keep], series[i])})")
    return decisions


def _why_kept(kept: Series, by_override: bool, other: Series) -> str:
    if by_override:
        return "named by an override"
    if kept.slices != other.slices:
        return f"more images, {kept.slices} vs {other.slices}"
    return "as many images, later series number"


__all__ = ["DUPLICATE_RULE", "choose_roles"]
