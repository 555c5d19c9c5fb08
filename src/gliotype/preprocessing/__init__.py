"""Image preprocessing (paper section 4.2): co-registration to T1c, skull stripping,
intensity normalisation, optional denoising and registration to the MNI152 2 mm template.

See ``docs/preprocessing.md`` for the steps, outputs and QC fields. Modules: ``case`` the
steps of one patient (``inputs`` its input checks, ``qc`` its quality control),
``cohort`` running a patient or a cohort (status table ``preprocessing.csv``), ``cache``
the per-patient cache key and ``done.json``, ``outputs`` the files of a preprocessed
patient and reading them back; ``brain``, ``normalize`` and ``register`` the methods,
``transforms`` the stored transforms and the maps between template and native space
(:func:`to_template`, :func:`to_native`), ``images`` the NIfTI/ANTs helpers and
``ants_runtime`` ANTs' import, ITK thread count and seed.

Importing this package changes nothing in the process: the ITK thread count is the
``itk_threads`` argument of :func:`preprocess_case` and :func:`preprocess_cohort`
(default 2; registrations are the same bytes on a fixed count), applied before ANTs first runs.
"""

from gliotype.preprocessing.brain import dice, is_skull_stripped, nonzero_brain_mask
from gliotype.preprocessing.normalize import PERCENTILES, STANDARD_SCALE, histogram_standardize, zscore
from gliotype.preprocessing.cache import PREPROCESS_VERSION, cache_key
from gliotype.preprocessing.cohort import CaseResult, preprocess_case, preprocess_cohort
from gliotype.preprocessing.outputs import SEQUENCES, load_preprocessed
from gliotype.preprocessing.transforms import to_native, to_template

__all__ = [
    "CaseResult",
    "PERCENTILES",
    "PREPROCESS_VERSION",
    "SEQUENCES",
    "STANDARD_SCALE",
    "cache_key",
    "dice",
    "histogram_standardize",
    "is_skull_stripped",
    "load_preprocessed",
    "nonzero_brain_mask",
    "preprocess_case",
    "preprocess_cohort",
    "to_native",
    "to_template",
    "zscore",
]
