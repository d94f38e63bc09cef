"""``python -m prunefair.cli``: the same as the ``prunefair`` command."""

from prunefair.cli import main

main()
