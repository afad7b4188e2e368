"""The odyssey command line: each command is a docstring, its options, and one call into `odyssey/`.

Library imports sit inside the commands so that `odyssey report` never imports torch.
"""

from __future__ import annotations

from typing import Annotated

import typer

app = typer.Typer(help="Which parts of an LSTM, and which hyperparameters, actually matter.", no_args_is_help=True)


def _print_version(value: bool) -> None:
    if value:
        from odyssey import __version__

        typer.echo(f"odyssey {__version__}")
        raise typer.Exit()


@app.callback()
def odyssey(
    version: Annotated[bool, typer.Option("--version", callback=_print_version, is_eager=True, help="Print the version.")] = False,
) -> None:
    """odyssey: the LSTM search-space study of Greff et al. (2017) on your own data."""


@app.command()
def variants(
    input_size: Annotated[int, typer.Option(min=1, help="Inputs per step, for the parameter counts.")] = 39,
    hidden_size: Annotated[int, typer.Option(min=1, help="LSTM blocks, for the parameter counts.")] = 100,
) -> None:
    """List the LSTM variants, what each changes, and its parameter count (one direction)."""
    from odyssey.console import print_rows
    from odyssey.variants import variant_table

    print_rows(variant_table(input_size=input_size, hidden_size=hidden_size), title=f"variants (I={input_size}, H={hidden_size})")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
