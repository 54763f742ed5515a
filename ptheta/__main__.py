"""`python -m ptheta` runs the command line (also under `torchrun`)."""

from ptheta.cli import main

main()
