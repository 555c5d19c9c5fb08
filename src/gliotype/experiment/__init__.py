"""The one-command experiment (paper sections 4-5): every stage, the tables, the report."""

from gliotype.experiment.run import run_experiment

__all__ = ["run_experiment"]
