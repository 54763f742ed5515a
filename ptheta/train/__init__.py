"""Training machinery: the Trainer (torch only), distributed set-up, checkpoints, run directories.

Import what you need from the submodules (``ptheta.train.trainer``, ``ptheta.train.rundir``):
the Trainer depends on torch alone, so model families can use it without importing the
registry that ``rundir`` needs.
"""
