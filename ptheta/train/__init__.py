"""Training machinery: the Trainer (torch only), distributed set-up and checkpoints.

Import what you need from the submodules (``ptheta.train.trainer``,
``ptheta.train.checkpoint``, ``ptheta.train.distributed``). Nothing here imports the model
registry, so model families use the Trainer without a cycle; run directories live in
:mod:`ptheta.runs`.
"""
