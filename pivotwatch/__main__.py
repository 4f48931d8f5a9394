"""``python -m pivotwatch``: the same as the ``pivotwatch`` command."""

from pivotwatch.cli.main import main

main()
