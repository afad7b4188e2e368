"""`python -m odyssey ...`: the same command line as `odyssey ...`."""

from odyssey.cli import main

main()
