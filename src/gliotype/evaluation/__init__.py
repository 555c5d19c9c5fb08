"""Evaluation (paper section 5): metrics, confidence intervals, DeLong test."""

from gliotype.evaluation.metrics import (
    binary_metrics,
    bootstrap_auc_ci,
    delong_test,
    transfer_threshold,
    youden_threshold,
)

__all__ = ["binary_metrics", "bootstrap_auc_ci", "delong_test", "transfer_threshold", "youden_threshold"]
