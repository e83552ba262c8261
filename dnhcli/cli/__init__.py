"""The `dnh` command line: one module per subcommand, each calling the library below it.

The only package that imports typer or rich. A command module imports the library inside the
command, so that `dnh --help` and `dnh --version` stay fast."""
