"""The one-command experiment (paper sections 4-5): every stage, the tables, the report.

:func:`run_experiment` (``gliotype run``) sequences the stages of :mod:`gliotype.stages`:
``run.py`` (the cohort and the repeats), ``split.py`` (one draw of the split protocol),
``tables.py`` (Tables 2-4), ``ceilings.py``, ``repeats.py``, ``report.py``, ``export.py``
(the model folder of ``gliotype predict``), ``ablations.py`` (the Table 4 rows).
"""

from gliotype.experiment.run import run_experiment, run_summary

__all__ = ["run_experiment", "run_summary"]
