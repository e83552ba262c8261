"""`python -m dnhcli` runs the `dnh` command line."""

from dnhcli.cli.app import main

if __name__ == "__main__":
    main()
