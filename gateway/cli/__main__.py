"""`python -m gateway.cli` is `cafx`."""

from . import main

main()
