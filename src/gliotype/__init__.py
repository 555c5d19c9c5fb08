"""gliotype: multi-modal learning for predicting the IDH genotype of glioma.

Implements Wei et al., "Multi-modal learning for predicting the genotype of
glioma", IEEE TMI 42(11):3167-3178, 2023 (arXiv:2203.10852).
"""

__version__ = "0.1.0"

from gliotype.errors import CaseError, GliotypeError  # noqa: E402

__all__ = ["CaseError", "GliotypeError", "__version__"]
