"""Orchestration of runs: training, evaluation and the end-to-end demo (used by the CLI)."""
