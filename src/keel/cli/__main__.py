"""`python -m keel.cli`: the same command line as the `keel` console script."""

from keel.cli import main

main()
