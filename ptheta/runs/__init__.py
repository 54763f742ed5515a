"""Run directories: the one home for writing, reading and fitting into them, and their file names.

- :mod:`ptheta.runs.layout`: the names of every file a run directory holds;
- :mod:`ptheta.runs.store`: save and load a fitted model (config, weights, metrics);
- :mod:`ptheta.runs.lock`: one writer per run directory;
- :mod:`ptheta.runs.fitting`: fit a model on a data set into a run directory;
- :mod:`ptheta.runs.pictures`: the pictures a run holds (samples, structure).

Import from the submodules; this package imports nothing itself, so ``import ptheta``
stays light.
"""
