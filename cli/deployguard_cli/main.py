"""``deployguard`` — the command line. Each sub-command lives in ``commands/<name>.py`` and
registers itself through ``register(subparsers)``; this module only dispatches.

Exit codes: :mod:`deployguard_cli.exit_codes`.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from deployguard.errors import DeployGuardError
from deployguard_cli.exit_codes import EXIT_ERROR, EXIT_INTERRUPTED
from deployguard_cli.render import terminal_safe

COMMAND_MODULES = (
    "init",
    "lint",
    "policy",
    "check",
    "report",
    "rollback",
    "status",
    "rehearse",
    "localaws",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="deployguard",
        description="Guards for AWS Lambda deployments at CodeDeploy's lifecycle hooks.",
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(f"deployguard_cli.commands.{name}").register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code: int = args.run(args)
    except DeployGuardError as exc:
        print(f"deployguard: {terminal_safe(str(exc))}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    return code


if __name__ == "__main__":
    raise SystemExit(main())
