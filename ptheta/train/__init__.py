"""Training machinery: run directories (and, for neural families, the Trainer)."""

from ptheta.train.rundir import load_run, read_config, read_metrics, save_run

__all__ = ["load_run", "read_config", "read_metrics", "save_run"]
