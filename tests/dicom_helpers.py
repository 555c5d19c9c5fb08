"""Helpers of the DICOM tests (import as ``dicom_helpers``; tests/input and tests/prediction):
real DICOM files of MR series written with pydicom from small volumes, with realistic tags
and a PHI canary in every field the scan does not need."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, MRImageStorage, generate_uid

#: A string that must reach no output (manifest, conversions, logs, prediction).
CANARY = "CANARY^PHI^9F3A"
#: A birth date that must reach no output either (a DA value cannot hold the canary).
BIRTH_DATE = "19230917"
#: Patient-identifying fields of every image, none of which the scan needs.
PHI = {
    "PatientName": CANARY, "PatientID": CANARY, "PatientBirthDate": BIRTH_DATE, "PatientSex": "F",
    "OtherPatientIDs": CANARY, "PatientAddress": CANARY, "PatientComments": CANARY,
    "InstitutionName": CANARY, "InstitutionAddress": CANARY, "ReferringPhysicianName": CANARY,
    "OperatorsName": CANARY, "PerformingPhysicianName": CANARY, "StudyDescription": CANARY,
    "AccessionNumber": "CANARY9F3A", "StudyID": "CANARY", "ImageComments": CANARY, "StationName": CANARY,
    "DeviceSerialNumber": CANARY, "StudyDate": BIRTH_DATE, "SeriesDate": BIRTH_DATE, "AcquisitionDate": BIRTH_DATE,
}
#: An axis-aligned but not identity affine (RAS, mm): anisotropic voxels, an offset origin.
AFFINE = np.array([[0.9, 0.0, 0.0, -7.0], [0.0, 1.1, 0.0, 12.0], [0.0, 0.0, 2.0, -11.0], [0.0, 0.0, 0.0, 1.0]])
#: The four sequences of a clinical study: description and acquisition (TR, TE, TI in ms).
SEQUENCE_TAGS = {
    "t1": dict(SeriesDescription="AX T1 SE", ProtocolName="t1_se_tra", RepetitionTime=550.0, EchoTime=12.0,
               ScanningSequence="SE", SequenceVariant="SK"),
    "t1c": dict(SeriesDescription="AX T1 SE POST", ProtocolName="t1_se_tra", RepetitionTime=550.0, EchoTime=12.0,
                ScanningSequence="SE", SequenceVariant="SK", ContrastBolusAgent="Gadobutrol"),
    "t2": dict(SeriesDescription="AX T2 TSE", ProtocolName="t2_tse_tra", RepetitionTime=4000.0, EchoTime=100.0,
               ScanningSequence="SE", SequenceVariant="SK"),
    "flair": dict(SeriesDescription="AX T2 FLAIR", ProtocolName="t2_tirm_tra_dark-fluid", RepetitionTime=9000.0,
                  EchoTime=120.0, InversionTime=2500.0, ScanningSequence="SE\\IR", SequenceVariant="SK\\SP"),
}


def write_series(folder: Path, volume: np.ndarray, number: int, *, affine: np.ndarray = AFFINE,
                 study_uid: str | None = None, slope: float = 1.0, image_type=("ORIGINAL", "PRIMARY", "M", "ND"),
                 orientations: list | None = None, **tags) -> str:
    """One MR Image Storage file per slice of ``volume`` (x, y, z as in NIfTI, RAS ``affine``)
    in ``folder``; returns the SeriesInstanceUID. The stored pixels are ``volume / slope``
    (uint16) with RescaleSlope ``slope``. ``orientations``: per slice, an ImageOrientationPatient
    to write instead of the true one (a localiser). ``tags``: more DICOM keywords."""
    folder.mkdir(parents=True, exist_ok=True)
    study_uid = study_uid or generate_uid()
    series_uid, frame_uid = generate_uid(), generate_uid()
    lps = np.diag([-1.0, -1.0, 1.0])
    zooms = np.sqrt((affine[:3, :3] ** 2).sum(0))
    dirs = lps @ (affine[:3, :3] / zooms)
    stored = np.rint(np.asarray(volume, np.float64) / slope).astype(np.uint16)
    for k in range(volume.shape[2]):
        uid = generate_uid()
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = MRImageStorage
        meta.MediaStorageSOPInstanceUID = uid
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = Dataset()
        ds.file_meta = meta
        ds.SpecificCharacterSet = "ISO_IR 100"
        ds.SOPClassUID, ds.SOPInstanceUID = MRImageStorage, uid
        ds.Modality, ds.Manufacturer = "MR", "SIEMENS"
        ds.StudyInstanceUID, ds.SeriesInstanceUID = study_uid, series_uid
        ds.FrameOfReferenceUID = frame_uid
        ds.SeriesNumber, ds.InstanceNumber, ds.AcquisitionNumber = number, k + 1, 1
        ds.ImageType = list(image_type)
        ds.PatientPosition = "HFS"
        ds.MagneticFieldStrength = 3.0
        ds.MRAcquisitionType = "2D"
        ds.ImagePositionPatient = [round(float(v), 4) for v in lps @ (affine @ [0.0, 0.0, k, 1.0])[:3]]
        iop = np.r_[dirs[:, 0], dirs[:, 1]] if orientations is None else np.asarray(orientations[k], float)
        ds.ImageOrientationPatient = [round(float(v), 6) for v in iop]
        ds.PixelSpacing = [float(zooms[1]), float(zooms[0])]
        ds.SliceThickness = float(zooms[2])
        ds.SpacingBetweenSlices = float(zooms[2])
        ds.Rows, ds.Columns = volume.shape[1], volume.shape[0]
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
        ds.RescaleSlope, ds.RescaleIntercept, ds.RescaleType = slope, 0.0, "US"
        for key, value in {**PHI, **tags}.items():
            setattr(ds, key, value)
        ds.PixelData = np.ascontiguousarray(stored[:, :, k].T).tobytes()
        ds.save_as(folder / f"IM{k + 1:04d}.dcm", enforce_file_format=True)
    return series_uid


def volume(seed: int, shape=(16, 16, 12)) -> np.ndarray:
    """A small brain-like volume of integers (a bright block in a dark field), one per seed."""
    rng = np.random.default_rng(seed)
    img = np.zeros(shape, np.float32)
    block = img[2:-2, 2:-2, 2:-2] if shape[2] > 4 else img[2:-2, 2:-2]
    block[...] = rng.integers(100, 1000, block.shape)
    return img


def write_study(patient: Path, roles=("t1", "t1c", "t2", "flair"), numbers=None, study_uid=None) -> dict:
    """A clinical study of the four sequences (one sub-folder per series, below a study folder
    named with the canary); returns role -> (series number, source volume)."""
    numbers = numbers or {"t1": 3, "t1c": 9, "t2": 5, "flair": 7}
    study = patient / f"study-{CANARY}"
    study_uid = study_uid or generate_uid()
    out = {}
    for seed, role in enumerate(roles):
        data = volume(seed + 1)
        write_series(study / f"S{numbers[role]:02d}", data, numbers[role], study_uid=study_uid,
                     **SEQUENCE_TAGS[role])
        out[role] = (numbers[role], data)
    return out


def leaks(folder: Path, needles=(CANARY, "CANARY", BIRTH_DATE)) -> list[str]:
    """Files under ``folder`` whose bytes (decompressed when gzip) contain a needle (any case)."""
    found = []
    for p in sorted(folder.rglob("*")):
        if not p.is_file():
            continue
        data = p.read_bytes()
        if data[:2] == b"\x1f\x8b":
            data = gzip.decompress(data)
        if any(n.lower().encode() in data.lower() for n in needles):
            found.append(str(p.relative_to(folder)))
    return found


def read_header(path: Path) -> Dataset:
    return pydicom.dcmread(path, stop_before_pixels=True)
