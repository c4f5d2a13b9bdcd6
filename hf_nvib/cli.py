"""The `hf-nvib` command line: each subcommand is a thin call into the package."""

from __future__ import annotations

import argparse
import sys

from hf_nvib import __version__


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hf-nvib",
        description="NVIB (nonparametric variational information bottleneck) for BART and T5.",
    )
    parser.add_argument("--version", action="version", version=f"hf-nvib {__version__}")
    parser.add_subparsers(dest="command", metavar="COMMAND")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
