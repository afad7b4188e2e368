"""`python cli.py ...` from a checkout: the same Typer app as the installed `odyssey` command (odyssey/cli.py)."""

from odyssey.cli import main

if __name__ == "__main__":
    main()
