"""The checks of one function version: configuration and smoke tests. Shared by the pre-traffic
hook and ``deployguard check`` (a pipeline, without a deployment).

The versions' snapshots are read first and the invocation's redactor is built from their
environments before any check runs (no second read of the configuration); from then on any error
leaves redacted with it (:func:`deployguard.redaction.redacting`)."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import date
from typing import TYPE_CHECKING

from deployguard.config_check import validate_config
from deployguard.custom_checks import CheckContext, run_custom_checks
from deployguard.deadlines import in_context
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
    custom: CheckContext | None = None,
) -> VersionChecks:
    """Validate the target version's configuration; run its smoke tests only if that passed
    (a misconfigured version is not invoked: it might reach another stage's resources).

    Raises :class:`deployguard.redaction.RedactedError` (carrying the redactor) for any error once
    both versions were read; an error reading them is an ``AwsCallError`` (formats-only redaction).
    """
    began = time.perf_counter()
    target, current = _snapshots(functions, policy, function_name, target_version, current_version)
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
            custom=custom,
        )
    return VersionChecks(checks=checks, redactor=redactor)


def _snapshots(
    functions: LambdaPort,
    policy: FunctionPolicy,
    function_name: str,
    target_version: str,
    current_version: str | None,
) -> tuple[FunctionSnapshot, FunctionSnapshot | None]:
    """Both versions' configurations, read at once (the current one only when it differs). Only the
    target's on-failure destination is ever judged, and only when the policy's rule is on."""
    destinations = policy.config.settings.on_failure_destination != "ignore"
    if not current_version or current_version == target_version:
        return functions.snapshot(function_name, target_version, destinations=destinations), None
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="snapshot") as pool:
        current = pool.submit(
            in_context(functions.snapshot), function_name, current_version, destinations=False
        )
        target = functions.snapshot(function_name, target_version, destinations=destinations)
        return target, current.result()


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
    custom: CheckContext | None = None,
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
        checks += [
            CheckResult(
                name=f"custom:{c.name}", result=Result.SKIPPED, message="skipped: configuration failed"
            )
            for c in policy.custom_checks
            if custom is not None and "pre_traffic" in c.when
        ]
        return checks

    checks += run_smoke(
        policy.smoke,
        lambda payload: functions.invoke(function_name, target_version, payload, deployment_id=deployment_id),
        concurrency=policy.smoke_concurrency,
        deadline=deadline,
        redactor=redactor,
    )
    if custom is not None:  # a deployment's pre-traffic hook (not `deployguard check`)
        checks += run_custom_checks(
            policy.custom_checks,
            "pre_traffic",
            replace(custom, target_version_arn=custom.target_version_arn or target.arn),
            functions,
            deadline=deadline,
            redactor=redactor,
        )
    return checks
