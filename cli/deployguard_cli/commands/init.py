"""``deployguard init TEMPLATE`` — a starting application policy from an existing SAM template.

Writes the policy (it passes ``deployguard policy check``), prints what it found and the next
commands. Exit 0 written, 1 the template guards no function (nothing written), 2 could not run.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from deployguard.policy import InvalidPolicyError, valid_application_name
from deployguard.stages import APP_TAG, Stage
from deployguard_cli.commands.policy import read_application
from deployguard_cli.exit_codes import EXIT_ERROR, EXIT_FINDINGS, EXIT_OK
from deployguard_cli.render import terminal_safe
from deployguard_cli.starter_policy import StarterPolicy, starter_policy
from deployguard_cli.templates import Template, literal, read_template


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("init", help="write a starting application policy from a SAM template")
    parser.add_argument("template", type=Path, metavar="TEMPLATE")
    parser.add_argument("--stage", choices=[s.value for s in Stage], default=Stage.DEV.value)
    parser.add_argument(
        "--app",
        help="the application's name (default: its functions' deployguard:app tag, else the template's folder name)",
    )
    parser.add_argument(
        "--out", type=Path, help="where to write it (default: deployguard-<stage>.yaml beside the template)"
    )
    parser.add_argument("--force", action="store_true", help="overwrite the output file if it exists")
    parser.set_defaults(run=run)


def default_app(template: Template) -> str:
    """The guarded functions' ``deployguard:app`` tag when they all state the same one, else the
    template's folder name as an application name (lower case, letters, digits and '-')."""
    tagged = {literal(f.tags.get(APP_TAG)) for f in template.functions if f.guarded}
    if len(tagged) == 1 and (tag := tagged.pop()) is not None:
        return tag
    name = re.sub(r"[^a-z0-9-]+", "-", template.folder.resolve().name.lower()).strip("-")
    return name[:63] or "app"


def run(args: argparse.Namespace) -> int:
    template = read_template(args.template)
    app = args.app or default_app(template)
    if not valid_application_name(app):
        print(
            f"deployguard: --app {terminal_safe(app)!r} is not an application name: use 1-63 lower-case "
            "letters, digits, '.', '_' and '-', starting with a letter or digit",
            file=sys.stderr,
        )
        return EXIT_ERROR
    out: Path = args.out or template.folder / f"deployguard-{args.stage}.yaml"
    if out.exists() and not args.force:
        print(f"deployguard: {out} exists: give another --out, or --force to overwrite it", file=sys.stderr)
        return EXIT_ERROR
    starter = starter_policy(template, stage=args.stage, app=app, policy_folder=out.parent)
    if not starter.functions:
        print(
            f"{args.template}: no function has an enabled DeploymentPreference, so CodeDeploy never "
            "deploys one and there is nothing to guard: nothing written. Run "
            f"`deployguard lint {args.template}` for the fix."
        )
        return EXIT_FINDINGS
    out.write_text(starter.render(template), encoding="utf-8")
    # NOTE: what init writes passes `policy check` (built-in defaults; the stage's baseline may add floors)
    try:
        read_application(out, None, stage=Stage(args.stage), application=app)
    except InvalidPolicyError:
        out.unlink()  # never leave a policy behind that does not pass
        raise
    _print_summary(args.template, out, app, args.stage, starter)
    return EXIT_OK


def _print_summary(template: Path, out: Path, app: str, stage: str, starter: StarterPolicy) -> None:
    print(f"wrote {out}: the {stage} policy of application {app}, {len(starter.functions)} function(s)")
    for f in starter.functions:
        match = f" (match {f.match})" if f.match else ""
        print(
            terminal_safe(
                f"  {f.key}{match}: required {', '.join(f.required) or 'none'}; secret-named "
                f"{', '.join(f.secret_named) or 'none'}; alarms {', '.join(f.alarms) or 'none'}; "
                f"smoke {', '.join(f.smoke) or 'none (no events/*.json: add cases by hand)'}"
            )
        )
    for note in starter.notes:
        print(terminal_safe(f"  note: {note}"))
    print("next:")
    print(f"  deployguard lint {template} --stage {stage} --app {app}")
    print(f"  deployguard policy publish --stage {stage} --app {app} {out}")
