"""Synthetic data sets for demos, tests and benchmarks."""

from lakeloom.datasets.churn import ChurnData, generate_churn

__all__ = ["ChurnData", "generate_churn"]
