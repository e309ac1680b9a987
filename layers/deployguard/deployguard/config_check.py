"""Validate a target version's configuration against the stage's policy. Pure domain logic.

Findings name variables and settings, patterns and kinds of secret — never a variable's value.
The only parts of a value ever shown are the host of a URL (``part: host`` rules), which carries no
credentials, and the name of a referenced SSM parameter or secret in a variable that is not
secret-named (a secret-named variable's bare ``/name`` may be a password: it is never quoted, nor
looked up).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from deployguard.findings import Finding, Severity
from deployguard.patterns import search
from deployguard.runtimes import RUNTIMES
from deployguard.secrets import (
    Reference,
    is_reference,
    is_secret_name,
    is_unambiguous_reference,
    parse_reference,
    plaintext_secret_kinds,
)
from deployguard.snapshot import FunctionSnapshot
from deployguard.stages import Stage

if TYPE_CHECKING:
    from deployguard.policy import ConfigRules, DriftRules, Level, SettingsRules, ValueRule


def is_deprecated(runtime: str | None, today: date) -> bool:
    """Lambda has deprecated ``runtime`` by ``today``, by the pinned cfn-lint's runtime lifecycle
    data (``deployguard.runtimes``, generated: `make runtimes`): from its date on, not before. An
    unknown runtime (or a container image, which has none) is not judged."""
    lifecycle = RUNTIMES.get(runtime or "")
    return lifecycle is not None and lifecycle.deprecated <= today


def runtime_upgrade(current: str | None, target: str | None, today: date) -> str | None:
    """Why moving from ``current`` to ``target`` is an upgrade to a supported runtime (the target is
    not deprecated, and is the current's successor, or is supported longer, or the current is
    deprecated already); None when it is not one (or either runtime is unknown)."""
    before, after = RUNTIMES.get(current or ""), RUNTIMES.get(target or "")
    if before is None or after is None or is_deprecated(target, today):
        return None
    if before.successor == target:
        return f"{target} is the successor of {current}"
    if is_deprecated(current, today):
        return f"{current} is deprecated since {before.deprecated.isoformat()}"
    if after.deprecated > before.deprecated:
        return (
            f"{target} is supported until {after.deprecated.isoformat()}, "
            f"{current} until {before.deprecated.isoformat()}"
        )
    return None


ReferenceExists = Callable[[Reference], bool]


def _finding(level: Level | str, code: str, subject: str, message: str) -> list[Finding]:
    if level == "ignore":
        return []
    return [Finding(code=code, severity=Severity(level), subject=subject, message=message)]


def validate_config(
    target: FunctionSnapshot,
    current: FunctionSnapshot | None,
    rules: ConfigRules,
    stage: Stage,
    *,
    reference_exists: ReferenceExists | None,
    today: date,
) -> list[Finding]:
    """Every finding about ``target`` (and its drift from ``current``), errors and warnings."""
    env = target.environment
    findings = _required(env, rules, stage)
    for rule in rules.rules:
        findings += _value_rule(env, rule)
    findings += _plaintext_secrets(env, rules.plaintext_secrets)
    findings += _references(env, rules, reference_exists)
    if current is not None:
        findings += _drift(target, current, rules.drift, today)
    findings += _settings(target, rules.settings, today)
    return findings


def _required(env: dict[str, str], rules: ConfigRules, stage: Stage) -> list[Finding]:
    findings: list[Finding] = []
    for name in rules.required:
        if not env.get(name, "").strip():
            state = "is empty" if name in env else "is missing"
            findings += _finding(
                "error", "CFG001", name, f"{name} {state}: set it in the function's Environment.Variables"
            )
    marker = rules.stage_variable
    if marker is not None:
        value = env.get(marker)
        if value is None:
            findings += _finding(
                "error", "CFG002", marker, f"{marker} is missing: set it to '{stage.value}' for this stage"
            )
        elif value != stage.value:
            shown = value if value in {s.value for s in Stage} else "another value"
            findings += _finding(
                "error",
                "CFG002",
                marker,
                f"{marker} is '{shown}' but this is a {stage.value} deployment: "
                f"this build is configured for another stage; set {marker}={stage.value}",
            )
    return findings


def _value_rule(env: dict[str, str], rule: ValueRule) -> list[Finding]:
    if not env.get(rule.variable, "").strip():
        return []  # absence is the 'required' list's business
    value = env[rule.variable]
    if rule.part == "host":
        try:
            value = urlsplit(value).hostname or ""
        except ValueError:
            # NOTE: urlsplit's message quotes the netloc, a password included: never shown
            return _finding(
                rule.severity,
                "CFG005",
                rule.variable,
                f"{rule.variable} is not a URL whose host can be read (an invalid IPv6 address, or "
                "characters that change under Unicode NFKC normalization such as a fullwidth at sign, U+FF20): "
                "fix the value so its host can be checked",
            )
        shown = f"host '{value}'" if value else "value (no URL host found)"
    else:
        shown = "value"
    findings: list[Finding] = []
    for pattern in rule.deny:
        if search(pattern, value):
            findings += _finding(
                rule.severity,
                "CFG003",
                rule.variable,
                f"{rule.variable} {shown} matches the denied pattern '{pattern}' — likely another "
                f"stage's resource; point it at this stage's",
            )
    if rule.allow and not any(search(p, value) for p in rule.allow):
        expected = " or ".join(f"'{p}'" for p in rule.allow)
        findings += _finding(
            rule.severity,
            "CFG004",
            rule.variable,
            f"{rule.variable} {shown} does not match {expected}; point it at this stage's resource",
        )
    return findings


def _is_pointer(name: str, value: str) -> bool:
    """``value`` points at a secret or parameter. In a secret-named variable only an ARN or a
    ``{{resolve:…}}`` reference does: a bare ``/name`` there may be a password starting with '/'."""
    return is_unambiguous_reference(value) if is_secret_name(name) else is_reference(value)


def plaintext_secret_findings(env: dict[str, str]) -> list[Finding]:
    """SEC001 / SEC002 for ``env``: what ``plaintext_secrets: error`` fails (``deployguard lint``
    runs it on a template's literal environment values). Messages name variables, never values."""
    return _plaintext_secrets(env, "error")


def _plaintext_secrets(env: dict[str, str], level: Level) -> list[Finding]:
    findings: list[Finding] = []
    for name, value in sorted(env.items()):
        if not value.strip() or _is_pointer(name, value):
            continue
        kinds = plaintext_secret_kinds(name, value)
        if kinds:
            findings += _finding(
                level,
                "SEC001",
                name,
                f"{name} holds a plaintext secret ({', '.join(kinds)}): store it in Secrets Manager or "
                f"SSM SecureString and put the ARN or parameter name in {name} instead",
            )
        elif is_secret_name(name):
            pointer = (
                " (in a secret-named variable a value starting with '/' is taken for a literal, not "
                "for a parameter name)"
                if value.strip().startswith("/")
                else ""
            )
            findings += _finding(
                level,
                "SEC002",
                name,
                f"{name} is named like a secret but holds a literal{pointer}: put a Secrets Manager or "
                f"SSM parameter ARN in it (or a parameter name in {name}_PARAM) and read the value at "
                "run time",
            )
    return findings


def _references(env: dict[str, str], rules: ConfigRules, exists: ReferenceExists | None) -> list[Finding]:
    findings: list[Finding] = []
    for name in rules.references.required:
        value = env.get(name, "")
        if value and not is_reference(value):
            findings += _finding(
                "error",
                "REF003",
                name,
                f"{name} must reference an SSM parameter or a Secrets Manager secret, not hold a literal",
            )
    if rules.references.verify == "ignore" or exists is None:
        return findings
    # NOTE: a secret-named variable's bare '/name' is a literal, possibly a password: neither looked
    # up (the lookup would send it to AWS) nor quoted by REF001, in whichever variable it appears
    literals = {v.strip() for n, v in env.items() if not _is_pointer(n, v)}
    for name, value in sorted(env.items()):
        reference = parse_reference(value) if value.strip() not in literals else None
        if reference is None or exists(reference):
            continue
        code, store = ("REF001", "SSM parameter") if reference.kind == "ssm" else ("REF002", "secret")
        findings += _finding(
            rules.references.verify,
            code,
            name,
            f"{name} references the {store} '{reference.identifier}', which does not exist in this "
            f"account and region: create it or fix the name",
        )
    return findings


def _drift(
    target: FunctionSnapshot, current: FunctionSnapshot, rules: DriftRules, today: date
) -> list[Finding]:
    findings: list[Finding] = []
    for name in sorted(set(current.environment) - set(target.environment)):
        findings += _finding(
            rules.removed_variables,
            "DRF001",
            name,
            f"{name} is set on the live version {current.version} but missing from version "
            f"{target.version}: add it back, or accept the removal in the policy's drift rules",
        )
    changes = (
        ("DRF002", "runtime", rules.runtime, current.runtime, target.runtime),
        ("DRF003", "architecture", rules.architecture, current.architectures, target.architectures),
        ("DRF004", "memory", rules.memory, current.memory_size, target.memory_size),
        ("DRF005", "timeout", rules.timeout, current.timeout, target.timeout),
        ("DRF006", "layers", rules.layers, current.layers, target.layers),
    )
    for code, setting, level, before, after in changes:
        upgrade = runtime_upgrade(current.runtime, target.runtime, today) if setting == "runtime" else None
        if before != after and upgrade is not None:
            # NOTE: an upgrade to a supported runtime is never an error: at most a warning to note it
            findings += _finding(
                "ignore" if level == "ignore" else "warning",
                code,
                setting,
                f"runtime changes from {before} to {after} between versions {current.version} and "
                f"{target.version}: an upgrade to a supported runtime ({upgrade})",
            )
        elif before != after:
            findings += _finding(
                level,
                code,
                setting,
                f"{setting} changes from {_show(before)} to {_show(after)} between versions "
                f"{current.version} and {target.version}: confirm it is intended, or set drift.{setting} "
                "to 'warning' or 'ignore'",
            )
    return findings


def _show(value: object) -> str:
    if isinstance(value, tuple):
        return (
            "["
            + ", ".join(":".join(v.rsplit(":", 2)[-2:]) if v.startswith("arn:") else v for v in value)
            + "]"
        )
    return str(value)


def _settings(target: FunctionSnapshot, rules: SettingsRules, today: date) -> list[Finding]:
    findings: list[Finding] = []
    runtime = target.runtime or ""
    lifecycle = RUNTIMES.get(runtime)
    if lifecycle is not None and lifecycle.deprecated <= today:  # as is_deprecated says
        move_to = (
            f"{lifecycle.successor} or another supported runtime"
            if lifecycle.successor
            else "a supported runtime"
        )
        blocked = (
            f"; Lambda blocks updating functions on it from {lifecycle.update_block.isoformat()}"
            if lifecycle.update_block and lifecycle.update_block > today
            else ""
        )
        findings += _finding(
            rules.deprecated_runtime,
            "SET001",
            "runtime",
            f"runtime {runtime} is deprecated since {lifecycle.deprecated.isoformat()}{blocked}: "
            f"move to {move_to} before deploying",
        )
    elif runtime in rules.extra_deprecated_runtimes:
        findings += _finding(
            rules.deprecated_runtime,
            "SET001",
            "runtime",
            f"runtime {runtime} is retired by this policy (extra_deprecated_runtimes): move to a supported "
            "runtime before deploying",
        )
    bounds = rules.timeout
    if bounds and not bounds.min_seconds <= target.timeout <= bounds.max_seconds:
        findings += _finding(
            "error",
            "SET002",
            "timeout",
            f"timeout is {target.timeout}s; this stage requires {bounds.min_seconds}-{bounds.max_seconds}s",
        )
    if target.tracing_mode != "Active":
        findings += _finding(
            rules.tracing,
            "SET003",
            "tracing",
            "X-Ray tracing is not Active: set Tracing: Active on the function",
        )
    if not (target.dead_letter_target or target.on_failure_destination):
        findings += _finding(
            rules.on_failure_destination,
            "SET004",
            "on_failure_destination",
            "no dead-letter queue or on-failure destination: add DeadLetterQueue or "
            "EventInvokeConfig.DestinationConfig.OnFailure",
        )
    return findings
