"""``deployguard lint TEMPLATE`` — is a SAM template wired so DeployGuard guards its deployments?

Offline. Exit 0 when nothing is at error level (warnings are printed), 1 when a finding is, 2 when
the template cannot be read. Codes and fixes: docs/lint.md.
"""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime
from pathlib import Path

from deployguard.stages import Stage
from deployguard_cli.exit_codes import EXIT_FINDINGS, EXIT_OK
from deployguard_cli.render import terminal_safe
from deployguard_cli.template_lint import LintFinding, lint
from deployguard_cli.templates import read_template


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("lint", help="check a SAM template's DeployGuard wiring, offline")
    parser.add_argument("template", type=Path, metavar="TEMPLATE")
    parser.add_argument("--stage", choices=[s.value for s in Stage], help="the stage the scope tag must name")
    parser.add_argument("--app", help="the application the deployguard:app tag must name")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    template = read_template(args.template)
    findings = lint(template, today=datetime.now(UTC).date(), stage=args.stage, app=args.app)
    errors = sum(f.level == "error" for f in findings)
    if args.json:
        document = {
            "template": str(args.template),
            "errors": errors,
            "warnings": len(findings) - errors,
            "findings": [f.document() for f in findings],
        }
        print(json.dumps(document, indent=2))
    else:
        _print(str(args.template), findings, errors)
    return EXIT_FINDINGS if errors else EXIT_OK


def _print(source: str, findings: list[LintFinding], errors: int) -> None:
    for finding in findings:
        where = f"{source}:{finding.line}" if finding.line else source
        print(terminal_safe(f"{where}: {finding.code} {finding.level} {finding.resource}: {finding.message}"))
        print(terminal_safe(f"    fix: {finding.fix}"))
    warnings = len(findings) - errors
    verdict = "fix the errors, then lint again" if errors else "DeployGuard can guard this template"
    print(f"{source}: {errors} error(s), {warnings} warning(s): {verdict}")
