"""Command line: `python -m vml train|run|status`. Each subcommand lives beside the code it drives."""
from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    """Parse `argv` and run the chosen subcommand; returns the exit status."""
    parser = argparse.ArgumentParser(prog="python -m vml", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    from . import runner, train  # each module registers its own subcommands

    train.add_cli(sub)
    runner.add_cli(sub)
    args = parser.parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
