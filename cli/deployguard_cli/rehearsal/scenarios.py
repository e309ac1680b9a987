"""The five stories a rehearsal tells, each with the outcome it must end in.

Every scenario deploys a new version of the example application (``functions/orders``) over a
healthy live version, on the stage's own SQLite database made from ``functions/orders/schema.sql``:

1. ``env-mixup`` — a staging build configured with the **production** ``DATABASE_URL``: the
   pre-traffic config check stops it; 0 % of traffic ever reaches it.
2. ``schema-drift`` — the new code selects a ``profile_image`` column the stage's database lacks:
   every quote fails, the pre-traffic smoke test catches it; 0 % shifted.
3. ``regression`` — ``calculate_total`` returns the string ``"12.00"`` instead of the number
   ``12``: no error, a wrong type; the smoke test's ``total equals 12`` catches it; 0 % shifted.
4. ``failure-under-traffic`` — the per-line quantity limit drops from 99 to 3: the smoke basket
   passes, but bulk orders in real traffic fail; the new version's error-rate alarm fires during
   the canary and the release is rolled back to the previous version.
5. ``healthy`` — a release that changes nothing that matters: 100 % on the new version.

The broken releases are single-line edits of the real code
(:data:`deployguard_cli.example_app.BROKEN_RELEASES`). The stage's guard policy is
``policies/<stage>/baseline.yaml`` with ``policies/<stage>/apps/orders.yaml``; because every
run uses databases of its own, the policy's ``DATABASE_URL`` patterns and the template's
``sqlite:///tmp/…`` URLs are moved to that run's directory — the only edit the rehearsal makes.
"""

from __future__ import annotations

import re
import runpy
import shutil
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any, Literal

from deployguard.errors import DeployGuardError
from deployguard.findings import Decision
from deployguard.outcome import check_code
from deployguard.stages import Stage
from deployguard_cli.example_app import BROKEN_RELEASES
from deployguard_cli.rehearsal.traffic import TrafficProfile, orders_requests
from deployguard_cli.rehearsal.world import Release

if TYPE_CHECKING:
    from deployguard.outcome import OutcomeRecord
    from deployguard_cli.localaws.faults import Fault
    from deployguard_cli.rehearsal.engine import DeploymentOutcome

    Explain = Callable[[DeploymentOutcome, Sequence[OutcomeRecord]], list[str]]

__all__ = [
    "BASELINE",
    "SCENARIOS",
    "SUCCEEDED",
    "Expected",
    "Scenario",
    "StageFiles",
    "by_name",
    "prepare_stage_files",
    "verify",
]

SQLITE = "sqlite://"
BASELINE = Release(label="orders 1.0: the live release")

Status = Literal["Succeeded", "Failed", "Stopped"]


@dataclass(frozen=True)
class Expected:
    """How the deployment must end."""

    status: Status | tuple[Status, ...]  # a tuple: any of these
    max_weight: float | None  # the most traffic the new version may ever have had (0.0: none; None: any)
    alias_on: Literal["current", "target"]  # where the alias must point at the end
    rolled_back: bool | None  # None: either
    decided_by: str | None  # the lifecycle event, or "alarm", that ended it (None: any)
    failed_check: str | None = None  # a check code that must be among the deciding record's failures
    reason_mentions: str | None = None  # text the outcome record's reason must contain

    def to_json(self) -> dict[str, Any]:
        """How it must end, as ``rehearse --json`` and ``rehearse --list --json`` print it."""
        return {
            "status": list(self.status) if isinstance(self.status, tuple) else self.status,
            "max_weight": self.max_weight,
            "alias_on": self.alias_on,
            "rolled_back": self.rolled_back,
            "decided_by": self.decided_by,
        }


@dataclass(frozen=True)
class Scenario:
    name: str
    title: str
    mistake: str
    release: Release
    expected: Expected
    stage: str = "staging"
    database_of: str | None = None  # the release's DATABASE_URL is this stage's database
    traffic: TrafficProfile | None = None
    fault: Fault | None = None  # injected into the new version (deployguard rehearse --faults)
    explain: Explain | None = None  # why it did not end as expected: what is missing


SUCCEEDED = Expected(
    status="Succeeded", max_weight=1.0, alias_on="target", rolled_back=False, decided_by="AfterAllowTraffic"
)
"""A release that passes: every check, all traffic shifted, the alias on the new version."""

STEADY = TrafficProfile(requests_per_minute=12, make_requests=orders_requests(bulk_share=0.25), seed=11)
"""A quiet alias: 12 quotes a minute, a quarter of them bulk orders (4-12 units of one item)."""
BUSY = TrafficProfile(requests_per_minute=50, make_requests=orders_requests(bulk_share=0.25), seed=7)
"""A busy minute: 50 quotes, so a 10 % canary gets the 5 a minute the error-rate alarm judges by."""

SCENARIOS: tuple[Scenario, ...] = (
    Scenario(
        name="env-mixup",
        title="Environment mix-up",
        mistake="the staging release is configured with the production DATABASE_URL",
        release=Release(label="orders 1.1: staging build with prod's DATABASE_URL"),
        database_of="prod",
        expected=Expected(
            status="Failed",
            max_weight=0.0,
            alias_on="current",
            rolled_back=True,
            decided_by="BeforeAllowTraffic",
            failed_check="config",
            reason_mentions="DATABASE_URL",
        ),
    ),
    Scenario(
        name="schema-drift",
        title="Schema drift",
        mistake="the new code selects customers.profile_image, a column the stage's database lacks",
        release=Release(
            label="orders 1.2: reads profile_image", replacements=BROKEN_RELEASES["missing_column"]
        ),
        expected=Expected(
            status="Failed",
            max_weight=0.0,
            alias_on="current",
            rolled_back=True,
            decided_by="BeforeAllowTraffic",
            failed_check="smoke",
            reason_mentions="profile_image",
        ),
    ),
    Scenario(
        name="regression",
        title="Regression",
        mistake='calculate_total returns the string "12.00" instead of the number 12',
        release=Release(label="orders 1.3: total as a string", replacements=BROKEN_RELEASES["string_total"]),
        expected=Expected(
            status="Failed",
            max_weight=0.0,
            alias_on="current",
            rolled_back=True,
            decided_by="BeforeAllowTraffic",
            failed_check="smoke",
            reason_mentions="12.00",
        ),
    ),
    Scenario(
        name="failure-under-traffic",
        title="Failure under traffic",
        mistake="the per-line quantity limit drops from 99 to 3: bulk orders fail, the smoke basket passes",
        release=Release(
            label="orders 1.4: quantity limit 3", replacements=BROKEN_RELEASES["partial_failure"]
        ),
        traffic=BUSY,
        expected=Expected(
            status="Stopped",
            max_weight=0.1,
            alias_on="current",
            rolled_back=True,
            decided_by="alarm",
        ),
    ),
    Scenario(
        name="healthy",
        title="Healthy release",
        mistake="none: a release that changes nothing that matters",
        release=Release(label="orders 1.5: healthy release"),
        traffic=STEADY,
        expected=SUCCEEDED,
    ),
)


def by_name(names: Sequence[str] | None) -> list[Scenario]:
    if not names:
        return list(SCENARIOS)
    known = {s.name: s for s in SCENARIOS}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise KeyError(f"no scenario {', '.join(unknown)}; the scenarios are {', '.join(known)}")
    return [known[n] for n in names]


# --- each run's files: databases and the policy ---------------------------------------------------
@dataclass
class StageFiles:
    """A run's own directory: one database per stage, and the policy moved to point at them."""

    directory: Path
    databases: dict[str, Path]
    policy: dict[str, Any]  # a whole-stage document
    policy_source: str

    def url(self, stage: str) -> str:
        return f"{SQLITE}{self.databases[stage]}"

    def cleanup(self) -> None:
        shutil.rmtree(self.directory, ignore_errors=True)


def _policy_document(root: Path, stage: str) -> tuple[dict[str, Any], str]:
    """The stage's policy for the orders application: ``apps/orders.yaml`` under
    ``policies/<stage>/baseline.yaml``, read and validated as ``deployguard check --policy`` reads
    them, as one whole-stage document (the world stores it as a baseline and the application's
    document again)."""
    baseline_path = root / "policies" / stage / "baseline.yaml"
    path = root / "policies" / stage / "apps" / "orders.yaml"
    if not (path.is_file() and baseline_path.is_file()):
        raise DeployGuardError(
            f"no policy for stage {stage}: add policies/{stage}/baseline.yaml and policies/{stage}/apps/orders.yaml"
        )
    from deployguard_cli.commands.policy import read_application, read_baseline  # noqa: PLC0415 — pydantic only when a file is read

    _, merged = read_application(path, read_baseline(baseline_path, stage=Stage(stage)), stage=Stage(stage))
    return merged.model_dump(mode="json", exclude_unset=True), str(path.relative_to(root))


def _config_rules(document: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    """Every function's ``config.rules`` entries in a whole-stage policy document."""
    for entry in (document.get("functions") or {}).values():
        yield from (entry.get("config") or {}).get("rules") or []


def prepare_stage_files(
    root: Path, code_uri: Path, stage: str, template_urls: Mapping[str, str]
) -> StageFiles:
    """A fresh directory with each stage's database (``create_schema`` from ``schema.sql``) and
    the stage's policy, its ``DATABASE_URL`` patterns moved from the template's directory to it."""
    document, source = _policy_document(root, stage)
    template_dir = str(PurePosixPath(template_urls[stage].removeprefix(SQLITE)).parent)
    deny = [pattern for rule in _config_rules(document) for pattern in rule.get("deny") or []]
    for _ in range(20):
        directory = Path(tempfile.mkdtemp(prefix="deployguard-rehearsal-")).resolve()
        # NOTE: the directory is part of every DATABASE_URL; a random name that happens to contain
        # a denied word ("dev", "prod"…) would trip the policy, so draw again.
        if not any(re.search(p, str(directory)) for p in deny):
            break
        shutil.rmtree(directory, ignore_errors=True)
    else:
        raise RuntimeError("could not make a rehearsal directory whose path no policy pattern denies")
    create_schema = runpy.run_path(str(code_uri / "app.py"))["create_schema"]  # app.py is not a package
    databases = {}
    for name, url in template_urls.items():
        databases[name] = Path(create_schema(directory / PurePosixPath(url.removeprefix(SQLITE)).name))
    moved = (f"{SQLITE}{template_dir}/", f"{SQLITE}{re.escape(str(directory))}/")
    for rule in _config_rules(document):
        if rule.get("variable") == "DATABASE_URL":
            rule["allow"] = [pattern.replace(*moved) for pattern in rule.get("allow") or []]
    return StageFiles(
        directory=directory,
        databases=databases,
        policy=document,
        policy_source=source,
    )


# --- did it end as expected? ----------------------------------------------------------------------
def _story(record: OutcomeRecord) -> str:
    """A record's reason with its failed checks' messages and findings: what a reader is told."""
    parts = [record.reason]
    for check in record.failed_checks:
        parts.append(check.message)
        parts += [f"{f.subject}: {f.message}" for f in check.findings]
    return "\n".join(parts)


def verify(scenario: Scenario, outcome: DeploymentOutcome, records: Sequence[OutcomeRecord]) -> list[str]:
    """What differs from the scenario's expected outcome (empty: as expected): ``outcome`` is how
    the engine says the deployment ended, ``records`` what DeployGuard recorded of it."""
    expected = scenario.expected
    problems = []
    statuses = expected.status if isinstance(expected.status, tuple) else (expected.status,)
    if outcome.status not in statuses:
        problems.append(f"deployment ended {outcome.status}, expected {' or '.join(statuses)}")
    if expected.max_weight is not None and abs(outcome.max_weight - expected.max_weight) > 1e-9:
        problems.append(
            f"the new version got up to {outcome.max_weight:.0%} of traffic, expected {expected.max_weight:.0%}"
        )
    want = outcome.current_version if expected.alias_on == "current" else outcome.target_version
    if outcome.alias_version != want or outcome.alias_weights:
        problems.append(
            f"alias on version {outcome.alias_version} with routing {outcome.alias_weights or 'none'}, "
            f"expected version {want} with no routing"
        )
    if expected.rolled_back is not None and outcome.rolled_back != expected.rolled_back:
        problems.append(f"rolled back: {outcome.rolled_back}, expected {expected.rolled_back}")
    decided_by = (
        "alarm"
        if outcome.failure in ("alarm", "stopped")
        else (
            outcome.failed_lifecycle_event or ("AfterAllowTraffic" if outcome.status == "Succeeded" else None)
        )
    )
    if expected.decided_by is not None and decided_by != expected.decided_by:
        problems.append(f"decided by {decided_by}, expected {expected.decided_by}")
    deciding = [r for r in records if r.decision is Decision.FAILED]
    if expected.failed_check is not None:
        codes = {check_code(check) for record in deciding for check in record.failed_checks}
        if expected.failed_check not in codes:
            problems.append(
                f"no failed {expected.failed_check} check in the outcome records (failed: {sorted(codes) or 'none'})"
            )
    if expected.reason_mentions is not None and not any(
        expected.reason_mentions in _story(r) for r in deciding
    ):
        problems.append(
            f"no failed outcome record mentions {expected.reason_mentions!r} in its reason or findings"
        )
    if statuses == ("Succeeded",) and not any(r.decision is Decision.SUCCEEDED for r in records):
        problems.append("no outcome record decided Succeeded")
    if expected.decided_by == "alarm" and not any(r.rolled_back for r in records):
        problems.append("no outcome record says DeployGuard rolled the release back")
    return problems
