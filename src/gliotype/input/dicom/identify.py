"""Which sequence one DICOM series is: T1, T1c, T2, FLAIR, or none (skipped), and why.

:func:`identify` applies these rules in order; the first that decides gives the role and the
reason shown in the scan's table:

1. not usable: not an MR image (a DICOM SEG, a structured report...); a localiser
   (ImageType ``LOCALIZER``, a localiser word in the description, images in several
   orientations, or fewer than :data:`MIN_SLICES` images); a derived or secondary image
   (ImageType ``DERIVED`` or ``SECONDARY``, or ``MPR``, ``PROJECTION``, ``SUBTRACTION``,
   ``ADC``...); another kind of sequence named in the description or protocol (diffusion,
   perfusion, susceptibility, angiography, fMRI, spectroscopy, calibration, quantitative maps);
2. the words of SeriesDescription and ProtocolName: ``FLAIR`` (``dark fluid``, ``TIRM``,
   ``T2F``; but ``T1 FLAIR`` is T1-weighted), ``T2``, ``T1`` (``MPRAGE``, ``SPGR``,
   ``BRAVO``, ``TFE``, ``VIBE``...);
3. else the acquisition: an inversion (InversionTime, ``IR`` in ScanningSequence, or a
   SequenceName of inversion recovery or MPRAGE) with a long TI (>= :data:`FLAIR_MIN_TI` ms)
   and a long TE (>= :data:`T2_MIN_TE` ms) is FLAIR, with a short TE (<= :data:`T1_MAX_TE` ms)
   an inversion-prepared T1 (MPRAGE); without one, a long TE and TR is T2, a short TE and TR
   is T1 (but a gradient echo with a long TR and TE is T2*-weighted: not used); echo-planar
   images (``EP``) are not used;
4. a T1 is T1c when its words say so (``post``, ``+C``, ``Gd``, ``contrast``, ``T1CE``...)
   or, without words either way (``pre``, ``native``...), when a contrast agent is recorded
   (ContrastBolusAgent, 0018,0010).

When the words name one kind and TR/TE/TI clearly another, the words win and the reason
says so (fix it with ``--dicom-overrides``). The reasons quote the word that decided, ImageType
values of this module's lists and TR/TE/TI, nothing else of the headers. Two series for one
role: :mod:`gliotype.input.dicom.choose`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from gliotype.input.dicom.series import Series

#: Fewer images than this cannot be a brain volume: a localiser or a test slice.
MIN_SLICES = 8
#: Inversion time (ms) from which an inversion-recovery series nulls the fluid: FLAIR.
FLAIR_MIN_TI = 1500.0
#: Echo time (ms) up to which a series is T1-weighted (spin echo ~10 ms, gradient echo ~3 ms).
T1_MAX_TE = 20.0
#: Repetition time (ms) up to which a series without inversion is T1-weighted.
T1_MAX_TR = 1000.0
#: Echo and repetition times (ms) from which a series is T2-weighted (or FLAIR with an inversion).
T2_MIN_TE = 60.0
T2_MIN_TR = 1500.0
FLAIR_MIN_TR = 5000.0
#: A gradient echo (ScanningSequence GR) with a TR and TE (ms) above these is T2*-weighted, not T1.
GRE_T2STAR_MIN_TR = 100.0
GRE_T2STAR_MIN_TE = 10.0

#: ImageType values of images computed from others (ImageType[0] DERIVED, [1] SECONDARY, or these).
DERIVED_TYPES = ("DERIVED", "SECONDARY", "MPR", "PROJECTION IMAGE", "MIP", "SUBTRACTION", "SUB", "ADC", "TRACEW",
                 "FA", "CPR", "REFORMATTED", "COLLAPSE", "MOCO", "PERFUSION")
#: Values of ContrastBolusAgent that say no agent was given.
NO_AGENT = {"", "none", "no", "n/a", "na", "nil", "0", "-", "/", "without"}

_LOCALISER = re.compile(r"\b(localis\w*|localiz\w*|loc|scout|survey|3 ?pl\w*|tri ?pilot|aahead\w*|pilot)\b")
_OTHER = {
    "diffusion": r"\b(dwi|diff\w*|dti|adc|trace\w*|tensor|resolve|ivim)\b",
    "perfusion": r"\b(perf\w*|dsc|dce|asl|pcasl|pasl|tgse)\b",
    "susceptibility": r"\b(swi|swan|susc\w*|t2 ?\*|t2 ?star|swip|hemo\w*)",
    "angiography": r"\b(tof|angio\w*|mra|mrv|venogr\w*|pc ?3d)\b",
    "functional": r"\b(bold|fmri|rs ?fmri|resting ?state)\b",
    "spectroscopy": r"\b(svs|csi|spectro\w*|mrs|press)\b",
    "calibration": r"\b(calibration|asset ?cal\w*|ref ?scan|sense ?ref\w*|coil ?cal\w*)\b",
    "quantitative map": r"\b(t1 ?map\w*|t2 ?map\w*|relaxometry|field ?map|b0 ?map|b1 ?map|qmap\w*|mdme|magic)\b",
}
_OTHER_RE = {kind: re.compile(p) for kind, p in _OTHER.items()}
#: Siemens sequence names of inversion recovery (``*tir2d1``, ``*spcir``) and MPRAGE (``*tfl3d1``).
_IR_SEQUENCE = re.compile(r"(^|\*)(tir|spcir|tfl)")
_T1_FLAIR = re.compile(r"\bt1\w* ?(w ?)?flair|\bflair ?t1\b")
_FLAIR = re.compile(r"flair|dark ?fluid|\bt2 ?f\b|\btirm\w*|\bt2 ?w? ?fl\b|\bspcir\w*")
_T2 = re.compile(r"\bt2(?![0-9*])")
_T1 = re.compile(r"\bt1(?![0-9])|\bmp ?rage|\bmp2rage|\bspgr|\bfspgr|\bbravo\b|\btfe\b|\bt1tfe|\bvibe\b|\bflash\b|"
                 r"\btfl\w*|\bse ?t1\b")
_PRE = re.compile(r"\b(pre|pre ?(contrast|gad\w*|gd|c)|precontrast|native?|nativ|non ?contrast|noncontrast|"
                  r"non ?enhanced|unenhanced|without|wo|w o|plain)\b")
_POST = re.compile(r"\b(post\w*|gad\w*|gd|dotarem|gadovist|multihance|prohance|clariscan|contrast|kontrast|ce|km|"
                   r"mdc|enhanced)\b|\+ ?(c|gd|gad\w*|contrast)\b|\bc ?\+|\bt1 ?w? ?(c|ce|gd)\b")


@dataclass(frozen=True)
class Decision:
    """A series' role (``t1``, ``t1c``, ``t2``, ``flair``; None: skipped) and the reason."""

    role: str | None
    reason: str


def words(series: Series) -> str:
    """SeriesDescription and ProtocolName in lower case, separators as spaces (``T1_MPRAGE-post`` ->
    ``t1 mprage post``), for the word rules."""
    text = f"{series.description} {series.protocol}".lower()
    return " ".join(re.sub(r"[_\-./\\()\[\],:;|=#'\"]+", " ", text).split())


def _times(series: Series) -> str:
    parts = [f"{name} {value:g} ms" for name, value in (("TR", series.tr), ("TE", series.te), ("TI", series.ti))
             if value is not None]
    return ", ".join(parts) if parts else "no TR/TE/TI"


def skip_reason(series: Series) -> str | None:
    """Why ``series`` is not a candidate at all (rule 1), else None."""
    if not series.is_mr_image:
        from pydicom.uid import UID

        name = UID(series.sop_class).name if series.sop_class else "no SOP class"
        hint = " (DICOM SEG is not read: give the mask as NIfTI)" if "Segmentation" in name else ""
        return f"not an MR image ({name}){hint}"
    if "LOCALIZER" in series.image_type or "LOCALISER" in series.image_type:
        return "localiser (ImageType LOCALIZER)"
    text = words(series)
    hit = _LOCALISER.search(text)
    if hit:
        return f"localiser ('{hit.group(0)}' in the description)"
    if series.orientations > 1:
        return f"localiser (images in {series.orientations} orientations)"
    derived = [t for t in series.image_type[:1] if t == "DERIVED"] + \
              [t for t in series.image_type[1:2] if t == "SECONDARY"] + \
              [t for t in series.image_type[2:] if t in DERIVED_TYPES]
    if derived:
        return f"derived image (ImageType {'/'.join(dict.fromkeys(derived))}: reformat, subtraction or map)"
    for kind, pattern in _OTHER_RE.items():
        hit = pattern.search(text)
        if hit:
            return f"{kind} ('{hit.group(0).strip()}' in the description)"
    if series.slices < MIN_SLICES:
        return f"only {series.slices} image(s) (fewer than {MIN_SLICES}: a localiser or a test slice)"
    return None


def kind_by_words(text: str) -> tuple[str | None, str]:
    """``t1``, ``t2`` or ``flair`` (None: no word) and the word that decided (rule 2)."""
    for kind, pattern in (("t1", _T1_FLAIR), ("flair", _FLAIR), ("t2", _T2), ("t1", _T1)):
        hit = pattern.search(text)
        if hit:
            return kind, hit.group(0).strip()
    return None, ""


def kind_by_timing(series: Series) -> tuple[str | None, str]:
    """``t1``, ``t2`` or ``flair`` (None: undecided) from TR, TE, TI and the scanning sequence
    (rule 3), and why."""
    tr, te, ti = series.tr, series.te, series.ti
    times = _times(series)
    if tr is None and te is None and ti is None and not series.scanning_sequence:
        return None, "no TR/TE/TI in the header"
    if "EP" in series.scanning_sequence:
        return None, f"echo-planar (ScanningSequence EP: diffusion, perfusion or fMRI; {times})"
    inversion = ((ti is not None and ti > 0) or "IR" in series.scanning_sequence
                 or bool(_IR_SEQUENCE.search(series.sequence_name.lower())))
    if inversion:
        long_ti = ti is None or ti >= FLAIR_MIN_TI
        if long_ti and ((te is not None and te >= T2_MIN_TE) or (te is None and tr is not None and tr >= FLAIR_MIN_TR)):
            return "flair", f"inversion recovery with long TI and TE ({times})"
        if te is not None and te <= T1_MAX_TE:
            return "t1", f"inversion-prepared T1, e.g. MPRAGE ({times})"
        return None, f"inversion recovery neither FLAIR nor T1 (STIR?; {times})"
    if te is not None and tr is not None:
        if te >= T2_MIN_TE and tr >= T2_MIN_TR:
            return "t2", f"long TE and TR ({times})"
        if "GR" in series.scanning_sequence and tr > GRE_T2STAR_MIN_TR and te > GRE_T2STAR_MIN_TE:
            return None, f"gradient echo with long TR and TE: T2*-weighted? ({times})"
        if te <= T1_MAX_TE and tr <= T1_MAX_TR:
            return "t1", f"short TE and TR ({times})"
    return None, f"TR/TE/TI fit no rule ({times})"


def contrast_given(series: Series) -> bool:
    """Whether ContrastBolusAgent (0018,0010) records an agent."""
    return series.contrast_agent.strip().lower() not in NO_AGENT


def _t1_or_t1c(series: Series, text: str, why: str) -> Decision:
    """Rule 4: a T1-weighted series before or after contrast."""
    pre, post = _PRE.search(text), _POST.search(text)
    if pre:
        return Decision("t1", f"{why}; before contrast ('{pre.group(0).strip()}' in the description)")
    if post:
        return Decision("t1c", f"{why}; after contrast ('{post.group(0).strip()}' in the description)")
    if contrast_given(series):
        return Decision("t1c", f"{why}; after contrast (an agent is recorded in 0018,0010)")
    return Decision("t1", f"{why}; before contrast (no agent recorded in 0018,0010)")


def identify(series: Series) -> Decision:
    """The role of one series and the reason (rules 1-4 of this module)."""
    skip = skip_reason(series)
    if skip:
        return Decision(None, skip)
    text = words(series)
    kind, word = kind_by_words(text)
    timed, timing = kind_by_timing(series)
    if kind is not None:
        why = f"'{word}' in the description"
        if timed is not None and timed != kind:
            why += f" (but {_times(series)} look like {timed.upper()}: check it)"
    elif timed is not None:
        kind, why = timed, timing
    else:
        return Decision(None, f"not T1, T1c, T2 or FLAIR: no word in the description, {timing}")
    if kind == "t1":
        return _t1_or_t1c(series, text, why)
    return Decision(kind, why)


__all__ = ["Decision", "FLAIR_MIN_TI", "MIN_SLICES", "contrast_given", "identify", "kind_by_timing", "kind_by_words",
           "skip_reason", "words"]
