"""The `dnh` command line: one module per subcommand, all calling `dnhcli.core`."""
