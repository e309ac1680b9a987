"""The checks of one function version: configuration and smoke tests. Shared by the pre-traffic
hook and ``deployguard check`` (a pipeline, without a deployment).

The versions' snapshots are read first and the invocation's redactor is built from their
environments before any check runs (no second read of the configuration); from then on any error
leaves redacted with it (:func:`deployguard.redaction.redacting`)."""

from __future__ import annotations

import time
from datetime import date
from typing import TYPE_CHECKING

from deployguard.config_check import validate_config
from deployguard.findings import CheckResult, Result, result_from_findings
from deployguard.records import datarecord
from deployguard.redaction import environments_redactor, redacting
from deployguard.secrets import Redactor
from deployguard.smoke import run_smoke
from deployguard.stages import Stage

if TYPE_CHECKING:
    from deployguard.policy import FunctionPolicy
    from deployguard.ports import LambdaPort, ReferencePort
    from deployguard.snapshot import FunctionSnapshot


@datarecord
class VersionChecks:
    checks: list[CheckResult]
    redactor: Redactor


def check_version(
    *,
    functions: LambdaPort,
    references: ReferencePort,
    policy: FunctionPolicy,
    stage: Stage,
    function_name: str,
    target_version: str,
    current_version: str | None,
    today: date,
    deadline: float | None = None,
    deployment_id: str | None = None,
) -> VersionChecks:
    """Validate the target version's configuration; run its smoke tests only if that passed
    (a misconfigured version is not invoked: it might reach another stage's resources).

    Raises :class:`deployguard.redaction.RedactedError` (carrying the redactor) for any error once
    both versions were read; an error reading them is an ``AwsCallError`` (formats-only redaction).
    """
    began = time.perf_counter()
    target = functions.snapshot(function_name, target_version)
    current = (
        functions.snapshot(function_name, current_version)
        if current_version and current_version != target_version
        else None
    )
    redactor = environments_redactor(s.environment for s in (target, current) if s is not None)
    with redacting(redactor):
        checks = _checks(
            functions=functions,
            references=references,
            policy=policy,
            stage=stage,
            function_name=function_name,
            target_version=target_version,
            target=target,
            current=current,
            today=today,
            deadline=deadline,
            deployment_id=deployment_id,
            began=began,
            redactor=redactor,
        )
    return VersionChecks(checks=checks, redactor=redactor)


def _checks(
    *,
    functions: LambdaPort,
    references: ReferencePort,
    policy: FunctionPolicy,
    stage: Stage,
    function_name: str,
    target_version: str,
    target: FunctionSnapshot,
    current: FunctionSnapshot | None,
    today: date,
    deadline: float | None,
    deployment_id: str | None,
    began: float,
    redactor: Redactor,
) -> list[CheckResult]:
    findings = validate_config(
        target, current, policy.config, stage, reference_exists=references.exists, today=today
    )
    result = result_from_findings(findings)
    errors = [f for f in findings if f.severity == "error"]
    config = CheckResult(
        name="config",
        result=result,
        duration_ms=(time.perf_counter() - began) * 1000,
        message=(
            f"{len(errors)} error(s), {len(findings) - len(errors)} warning(s)"
            if findings
            else "configuration ok"
        ),
        findings=findings,
    )
    checks = [config]
    if config.blocking:
        checks += [
            CheckResult(
                name=f"smoke:{c.name}", result=Result.SKIPPED, message="skipped: configuration failed"
            )
            for c in policy.smoke
        ]
        return checks

    checks += run_smoke(
        policy.smoke,
        lambda payload: functions.invoke(function_name, target_version, payload, deployment_id=deployment_id),
        concurrency=policy.smoke_concurrency,
        deadline=deadline,
        redactor=redactor,
    )
    return checks
