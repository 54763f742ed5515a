"""Evaluation: likelihood summaries, plots, and fitting models into run directories."""

from ptheta.eval.likelihood import nll_summary

__all__ = ["nll_summary"]
