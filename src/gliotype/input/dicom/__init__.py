"""DICOM input: a folder of DICOM studies (one folder per patient) as a cohort manifest.

The steps, one module each:

- :mod:`~gliotype.input.dicom.series`: the DICOM files (``DICM`` at byte 128) and their
  headers, read with pydicom before the pixels, grouped by series;
- :mod:`~gliotype.input.dicom.identify`: the role of one series (T1, T1c, T2, FLAIR or
  skipped) from its description, ImageType, contrast agent, sequence and TR/TE/TI, with
  the reason;
- :mod:`~gliotype.input.dicom.overrides`: the user's corrections (a CSV);
- :mod:`~gliotype.input.dicom.choose`: one series per role (overrides, then the duplicate rule);
- :mod:`~gliotype.input.dicom.convert`: dcm2niix per chosen series into a cache, anonymous;
- :mod:`~gliotype.input.dicom.scan`: the manifest rows and the table of every series.

``gliotype cohort scan`` (:func:`gliotype.input.scan_cohort`, layout ``dicom``) and
``gliotype predict --case`` use :func:`scan_dicom`. See ``docs/real-data.md`` (DICOM).
"""

from gliotype.input.dicom.choose import DUPLICATE_RULE, choose_roles
from gliotype.input.dicom.convert import ConversionError, convert_series, dcm2niix_binary
from gliotype.input.dicom.identify import Decision, identify
from gliotype.input.dicom.overrides import OVERRIDE_ROLES, Override, read_overrides
from gliotype.input.dicom.scan import SERIES_COLUMNS, DicomScan, find_mask, scan_dicom, series_table
from gliotype.input.dicom.series import Series, holds_dicom, is_dicom, read_series

__all__ = [
    "ConversionError",
    "DUPLICATE_RULE",
    "Decision",
    "DicomScan",
    "OVERRIDE_ROLES",
    "Override",
    "SERIES_COLUMNS",
    "Series",
    "choose_roles",
    "convert_series",
    "dcm2niix_binary",
    "find_mask",
    "holds_dicom",
    "identify",
    "is_dicom",
    "read_overrides",
    "read_series",
    "scan_dicom",
    "series_table",
]
