"""The information audit (issue 12): where along the pipeline the IDH signal is, and is lost.

- :func:`audit_run`: every feature group of a run folder probed for IDH on the training
  patients, the Table 1 graphs' homophily, the observable ceiling (``gliotype audit``);
- :func:`tumor_descriptors`, :func:`descriptor_table`: hand-made, interpretable tumour
  descriptors of preprocessed patients;
- :func:`probe_auc`, :func:`observable_ceiling`, :func:`latent_association`: the linear probes;
- :func:`split_observable_ceiling`: the observable ceiling of one split, for ``gliotype run``
  (:func:`observable_ids`: the patients it reads);
- :func:`edge_homophily`, :func:`random_pair_homophily`, :func:`table1_homophily`;
- :func:`fold_stability`, :func:`stability_sentence`: the encoders' stability across the
  cross-fitting folds (``split.protocol: crossfit``).
"""

from gliotype.audit.audit import InformationAudit, audit_markdown, audit_run, read_run_folder, read_truth
from gliotype.audit.ceiling import descriptor_ceiling, observable_ids, split_observable_ceiling
from gliotype.audit.descriptors import (
    DESCRIPTOR_COLUMNS,
    DESCRIPTOR_FAMILIES,
    descriptor_table,
    descriptors_from_arrays,
    tumor_descriptors,
)
from gliotype.audit.homophily import edge_homophily, random_pair_homophily, table1_homophily
from gliotype.audit.probes import latent_association, latent_correlation, observable_ceiling, probe_auc
from gliotype.audit.stability import FoldStability, fold_stability, stability_sentence

__all__ = [
    "DESCRIPTOR_COLUMNS",
    "DESCRIPTOR_FAMILIES",
    "FoldStability",
    "InformationAudit",
    "audit_markdown",
    "audit_run",
    "descriptor_ceiling",
    "descriptor_table",
    "descriptors_from_arrays",
    "edge_homophily",
    "fold_stability",
    "latent_association",
    "latent_correlation",
    "observable_ceiling",
    "observable_ids",
    "probe_auc",
    "random_pair_homophily",
    "read_run_folder",
    "read_truth",
    "split_observable_ceiling",
    "stability_sentence",
    "table1_homophily",
    "tumor_descriptors",
]
