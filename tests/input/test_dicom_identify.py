"""The role heuristic of one DICOM series (gliotype.input.dicom.identify) and the duplicate rule
(gliotype.input.dicom.choose), on the header values of real protocols (no files needed)."""

from __future__ import annotations

import pytest

from gliotype.input.dicom import Override, Series, choose_roles, identify
from gliotype.input.dicom.series import MR_IMAGE_CLASSES

MR = next(iter(MR_IMAGE_CLASSES))
ORIGINAL = ("ORIGINAL", "PRIMARY", "M", "ND")


def series(description="", tr=None, te=None, ti=None, agent="", image_type=ORIGINAL, scanning="", sequence="",
           slices=24, number=1, protocol="", sop=MR, orientations=1) -> Series:
    return Series(uid=f"1.2.3.{number}", number=number, description=description, protocol=protocol, sop_class=sop,
                  modality="MR", image_type=image_type, contrast_agent=agent,
                  scanning_sequence=tuple(scanning.split("\\")) if scanning else (), sequence_name=sequence,
                  tr=tr, te=te, ti=ti, slices=slices, orientations=orientations)


@pytest.mark.parametrize("s,role", [
    # by the words of SeriesDescription / ProtocolName
    (series("t1_mprage_sag_p2_iso", 2300, 2.3, 900), "t1"),
    (series("t1_mprage_sag_p2_iso", 2300, 2.3, 900, agent="Gadovist"), "t1c"),
    (series("T1 MPRAGE +C"), "t1c"),
    (series("AX T1 POST GAD"), "t1c"),
    (series("Sag T1 FSPGR BRAVO", 8.2, 3.2, 450), "t1"),
    (series("T1W_3D_TFE_Gd"), "t1c"),
    (series("T1 precontrast", agent="Dotarem"), "t1"),  # the words win over an agent carried over
    (series("AX T1 FLAIR", 2000, 20, 850), "t1"),  # T1-FLAIR is T1-weighted
    (series("t2_tirm_tra_dark-fluid", 9000, 81, 2500), "flair"),
    (series("Sag 3D FLAIR CUBE", 6000, 120, 1800, agent="Gd"), "flair"),
    (series("AX T2 FSE", 4000, 100), "t2"),
    (series("", protocol="t2_tse_tra_512"), "t2"),
    (series("T2W_TSE", agent="Gadovist"), "t2"),  # contrast does not make a T2 anything else
    # by TR / TE / TI when the words say nothing
    (series("", 9000, 120, 2500), "flair"),
    (series("", 2300, 2.3, 900), "t1"),
    (series("", 2300, 2.3, 900, agent="gadoterate"), "t1c"),
    (series("", 4500, 95), "t2"),
    (series("", 550, 12), "t1"),
    (series("", 8.0, 3.0, scanning="GR"), "t1"),
    (series("", 11000, None, None, scanning="SE\\IR", sequence="*tir2d1_21"), "flair"),
])
def test_the_role_of_a_series(s, role):
    d = identify(s)
    assert d.role == role, d.reason
    assert d.reason


@pytest.mark.parametrize("s,reason", [
    (series("AAHead_Scout", image_type=("ORIGINAL", "PRIMARY", "LOCALIZER")), "localiser (ImageType LOCALIZER)"),
    (series("3-plane loc"), "localiser ('3 plane' in the description)"),
    (series("T1", 500, 10, orientations=3), "localiser (images in 3 orientations)"),
    (series("T1 SE", 500, 10, slices=3), "only 3 image(s) (fewer than 8: a localiser or a test slice)"),
    (series("T1 MPR sag", image_type=("DERIVED", "PRIMARY", "MPR")), "derived image (ImageType DERIVED/MPR"),
    (series("T1 SUB", image_type=("ORIGINAL", "SECONDARY", "SUBTRACTION")), "derived image (ImageType SECONDARY"),
    (series("ep2d_diff_3scan_trace", 5000, 90, scanning="EP"), "diffusion ('diff"),
    (series("", 5000, 90, scanning="EP"), "echo-planar"),
    (series("ep2d_perf"), "perfusion ('perf"),
    (series("AX T2* GRE"), "susceptibility ('t2*'"),
    (series("SWI_Images"), "susceptibility ('swi'"),
    (series("tof_3d_multi-slab"), "angiography ('tof'"),
    (series("ASSET calibration"), "calibration ('asset calibration'"),
    (series("T1 map", 15, 2.0), "quantitative map ('t1 map'"),
    (series("", 650, 20, scanning="GR"), "gradient echo with long TR and TE"),
    (series("", 3000, 15), "TR/TE/TI fit no rule"),  # proton density
    (series("", 4000, 70, 150, scanning="IR"), "inversion recovery neither FLAIR nor T1 (STIR?"),
    (series("", None, None), "not T1, T1c, T2 or FLAIR: no word in the description, no TR/TE/TI in the header"),
    (series("seg", sop="1.2.840.10008.5.1.4.1.1.66.4"), "not an MR image (Segmentation Storage) (DICOM SEG is not"),
])
def test_what_is_skipped_and_why(s, reason):
    d = identify(s)
    assert d.role is None
    assert reason in d.reason, d.reason


def test_words_win_over_timing_but_the_reason_warns():
    d = identify(series("AX T2 TSE", 9000, 120, 2500))  # FLAIR timing, T2 name
    assert d.role == "t2" and "look like FLAIR: check it" in d.reason


def test_duplicates_keep_most_images_then_the_latest_number():
    a, b = series("AX T2", number=5, slices=24), series("AX T2", number=11, slices=24)
    c = series("T2", number=2, slices=30)
    assert [d.role for d in choose_roles([a, b])] == [None, "t2"]
    assert choose_roles([a, b])[0].reason == "duplicate of series 11 (t2: as many images, later series number)"
    assert [d.role for d in choose_roles([c, a, b])] == ["t2", None, None]
    assert choose_roles([c, a, b])[2].reason == "duplicate of series 2 (t2: more images, 30 vs 24)"


def test_an_override_wins_over_the_heuristic_and_the_duplicate_rule():
    a, b = series("AX T2", number=5, slices=24), series("AX T2", number=11, slices=40)
    by_number = [Override("P", "t2", series_number=5, row=2)]
    assert [d.role for d in choose_roles([a, b], by_number)] == ["t2", None]
    assert choose_roles([a, b], by_number)[1].reason == "duplicate of series 5 (t2: named by an override)"
    by_uid = [Override("P", "skip", series_uid=b.uid, row=3)]
    assert [d.role for d in choose_roles([a, b], by_uid)] == ["t2", None]
    assert choose_roles([a, b], by_uid)[1].reason == "override (line 3 of the overrides CSV)"
