"""Command line: `python -m vml train|run|status|merge|compare`. Each subcommand lives beside the code it drives.

Bad input ends as argparse's own errors do: one line ``python -m vml <command>: error: ...`` naming
the value and what is allowed, exit status 2, no traceback. A corrupt file in the results store
ends the same way with exit status 1 (it is not the command line's fault).
"""
from __future__ import annotations

import argparse
import os
import sys

from . import merge, runner, store, train
from .analysis import compare

EXIT_USAGE, EXIT_CORRUPT, EXIT_PIPE = 2, 1, 1


def main(argv: list[str] | None = None) -> int:
    """Parse `argv` and run the chosen subcommand; returns the exit status."""
    parser = argparse.ArgumentParser(prog="python -m vml", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    train.add_cli(sub)  # each module registers its own subcommands
    runner.add_cli(sub)
    merge.add_cli(sub)
    compare.add_cli(sub)
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except BrokenPipeError:  # the reader stopped early (`python -m vml status | head`): end quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # Python's docs: no error at exit
        return EXIT_PIPE
    except store.CorruptRecord as e:
        return _error(args, e, EXIT_CORRUPT)
    except ValueError as e:  # the specs, studies and runners reject bad values with ValueError
        return _error(args, e, EXIT_USAGE)


def _error(args: argparse.Namespace, e: Exception, status: int) -> int:
    print(f"python -m vml {args.command}: error: {e}", file=sys.stderr)
    return status


if __name__ == "__main__":
    sys.exit(main())
