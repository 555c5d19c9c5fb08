"""Synthetic glioma cohort on the real ICBM152 2009 template (``gliotype synth``).

No labelled cohort can be downloaded here, so the product ships a generator whose
phenotype depends on IDH through four latents (image, shape, location, network), one
for each modality of Wei et al. (IEEE TMI 2023, sections 3.2-3.3), each with its own
strength knob, and whose Bayes-optimal posterior is known in closed form. See
``docs/synthetic.md`` for what it is and what it is not.
"""

from gliotype.synthetic.cohort import generate_cohort
from gliotype.synthetic.config import SIGNALS, SynthConfig, SynthConfigError, parse_signal
from gliotype.synthetic.phenotype import (
    EFFECT_SIZE,
    bayes_posterior,
    expected_auc,
    sample_phenotypes,
    site_table,
)
from gliotype.synthetic.render import render_patient

__all__ = [
    "EFFECT_SIZE",
    "SIGNALS",
    "SynthConfig",
    "SynthConfigError",
    "bayes_posterior",
    "expected_auc",
    "generate_cohort",
    "parse_signal",
    "render_patient",
    "sample_phenotypes",
    "site_table",
]
