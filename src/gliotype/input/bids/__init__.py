"""BIDS datasets in, BIDS derivatives out (``gliotype cohort scan`` layout ``bids``).

- :mod:`.dataset`: where a dataset is (its folder, or a subject / session folder of it)
  and how a case is named (``sub-01`` or ``sub-01_ses-02``, its entity prefix);
- :mod:`.roles`: which BIDS file is which role (``*_T1w``, ``*_ce-<agent>_T1w``,
  ``*_T2w``, ``*_FLAIR``, tumour masks and FA under ``derivatives/``) and which one is
  kept when there are several;
- :mod:`.participants`: IDH status, age and site from ``participants.tsv``;
- :mod:`.scan`: the manifest rows of a dataset, found with pybids (:func:`scan_bids`);
- :mod:`.derivatives`: the preprocessed volumes and predictions written back as a BIDS
  derivative dataset (``<BIDS root>/derivatives/gliotype`` by default).

Accepted names, participants columns and where the outputs go: ``docs/real-data.md`` (BIDS).
"""

from gliotype.input.bids.dataset import BidsLocation, case_prefix, is_bids, locate, parse_prefix
from gliotype.input.bids.derivatives import (
    TEMPLATE_SPACE,
    BidsOutput,
    bids_output,
    default_root,
    preprocessed_derivatives,
    write_prediction,
)
from gliotype.input.bids.scan import scan_bids

__all__ = [
    "BidsLocation",
    "BidsOutput",
    "TEMPLATE_SPACE",
    "bids_output",
    "case_prefix",
    "default_root",
    "is_bids",
    "locate",
    "parse_prefix",
    "preprocessed_derivatives",
    "scan_bids",
    "write_prediction",
]
