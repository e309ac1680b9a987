"""The guard policy: one document per stage (dev / staging / prod).

Per guarded function it says what the target version's configuration must satisfy, which smoke
tests to run, which alarms and per-version metrics guard it after traffic shifts, and how long
to bake. Unknown keys are errors; every error names its path and the fix.
"""

from __future__ import annotations

import difflib
import fnmatch
import json
import re
from pathlib import Path
from types import UnionType
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    JsonValue,
    ValidationError,
    field_validator,
    model_validator,
)

from deployguard.appspec import plain_function_name
from deployguard.documents import DocumentSyntaxError, parse_json_or_yaml
from deployguard.errors import DeployGuardError, PolicyError
from deployguard.stages import Stage

POLICY_VERSION = 1


Level = Literal["error", "warning", "ignore"]
"""What a rule's violation means: fail the deployment, report it, or do not check."""


class _Strict(BaseModel):
    # NOTE: defer_build: the schema is built when the first policy is parsed, not at import, so a
    # cold start that finds a cached or invalid policy does not pay for every model up front.
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True, defer_build=True)


def _check_regex(pattern: str) -> str:
    try:
        re.compile(pattern)
    except re.error as exc:
        raise ValueError(f"not a valid regular expression ({exc})") from exc
    return pattern


Regex = Annotated[str, Field(min_length=1)]


class ValueRule(_Strict):
    """Allow/deny patterns for one variable's value (or the host of the URL it holds)."""

    variable: str = Field(min_length=1)
    part: Literal["value", "host"] = Field(
        "value", description="'host' applies the patterns to the host of a URL value (no credentials)."
    )
    allow: list[Regex] = Field(default_factory=list, description="At least one must match.")
    deny: list[Regex] = Field(default_factory=list, description="None may match.")
    severity: Literal["error", "warning"] = "error"

    @field_validator("allow", "deny")
    @classmethod
    def _regexes(cls, patterns: list[str]) -> list[str]:
        return [_check_regex(p) for p in patterns]

    @model_validator(mode="after")
    def _has_patterns(self) -> ValueRule:
        if not self.allow and not self.deny:
            raise ValueError("a rule needs at least one 'allow' or 'deny' pattern")
        return self


class DriftRules(_Strict):
    """Changes from the current (live) version to the target version."""

    removed_variables: Level = "error"
    runtime: Level = "error"
    architecture: Level = "error"
    memory: Level = "warning"
    timeout: Level = "warning"
    layers: Level = "warning"


class TimeoutBounds(_Strict):
    min_seconds: int = Field(1, ge=1, le=900)
    max_seconds: int = Field(900, ge=1, le=900)

    @model_validator(mode="after")
    def _ordered(self) -> TimeoutBounds:
        if self.min_seconds > self.max_seconds:
            raise ValueError("min_seconds must not exceed max_seconds")
        return self


class SettingsRules(_Strict):
    """Function settings the stage requires."""

    deprecated_runtime: Level = "error"
    extra_deprecated_runtimes: list[str] = Field(
        default_factory=list, description="Runtimes your organisation retires before AWS does."
    )
    timeout: TimeoutBounds | None = None
    tracing: Level = Field("ignore", description="Require X-Ray tracing mode Active.")
    on_failure_destination: Level = Field(
        "ignore", description="Require a dead-letter queue or an on-failure destination."
    )


class ReferenceRules(_Strict):
    """Variables that point at SSM parameters or Secrets Manager secrets."""

    verify: Level = Field("error", description="Every reference found must exist (metadata only).")
    required: list[str] = Field(
        default_factory=list, description="Variables that must hold a reference, not a literal."
    )


class ConfigRules(_Strict):
    """What the target version's configuration must satisfy."""

    stage_variable: str | None = Field(
        "STAGE", description="Variable that must equal the deployment's stage; null to skip."
    )
    required: list[str] = Field(default_factory=list, description="Variables present and non-empty.")
    rules: list[ValueRule] = Field(default_factory=list)
    plaintext_secrets: Level = "error"
    references: ReferenceRules = Field(default_factory=ReferenceRules)
    drift: DriftRules = Field(default_factory=DriftRules)
    settings: SettingsRules = Field(default_factory=SettingsRules)


JsonType = Literal["string", "number", "integer", "boolean", "object", "array", "null"]


class Expectation(_Strict):
    """An assertion on the invocation's JSON answer at ``path`` (``$``, ``$.a.b``, ``$.items[0]``)."""

    path: str = Field("$", pattern=r"^\$")
    equals: JsonValue = None
    type: JsonType | None = None
    regex: str | None = None
    exists: bool | None = None

    @field_validator("regex")
    @classmethod
    def _regex(cls, pattern: str | None) -> str | None:
        return None if pattern is None else _check_regex(pattern)

    @model_validator(mode="after")
    def _one_assertion(self) -> Expectation:
        if not {"equals", "type", "regex", "exists"} & self.model_fields_set:
            raise ValueError("say what to expect: one of 'equals', 'type', 'regex' or 'exists'")
        return self


class SmokeCase(_Strict):
    """One invocation of the new version and what its answer must look like."""

    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    payload: JsonValue = None
    payload_file: str | None = Field(None, description="A JSON file under events/ (bundled with the policy).")
    expect: list[Expectation] = Field(default_factory=list)
    allow_function_error: bool = False
    max_latency_ms: int | None = Field(None, ge=1)
    timeout_ms: int = Field(10_000, ge=100, le=900_000)

    @model_validator(mode="after")
    def _one_payload(self) -> SmokeCase:
        if "payload" in self.model_fields_set and self.payload_file is not None:
            raise ValueError("give either 'payload' or 'payload_file', not both")
        return self


class AlarmSelector(_Strict):
    """Which CloudWatch alarms (metric and composite) guard the function."""

    names: list[str] = Field(default_factory=list)
    prefixes: list[str] = Field(default_factory=list)
    tags: dict[str, str] = Field(default_factory=dict, description="All tags must match.")

    @model_validator(mode="after")
    def _selects(self) -> AlarmSelector:
        if not (self.names or self.prefixes or self.tags):
            raise ValueError("select alarms by at least one of 'names', 'prefixes' or 'tags'")
        return self


class AlarmRules(_Strict):
    """Alarms watched by the post-traffic hook and its bake window, and acted on by the alarm
    rollback function. Only alarms that entered ALARM after the deployment started count."""

    select: AlarmSelector
    pre_existing: Literal["block", "report"] = Field(
        "report",
        description="An alarm already in ALARM before the deployment started: fail the deployment "
        "('block') or only report it ('report').",
    )


class VersionHealth(_Strict):
    """Per-version AWS/Lambda metrics (ExecutedVersion dimension) of the target version."""

    max_error_rate: float = Field(0.05, ge=0, le=1, description="Errors / Invocations above this fails.")
    max_throttles: int = Field(0, ge=0, description="More Throttles than this fails.")
    min_invocations: int = Field(
        10, ge=0, description="Fewer invocations than this cannot be judged: the result is 'inconclusive'."
    )
    inconclusive: Literal["pass", "fail"] = Field(
        "pass", description="What an inconclusive result means when the bake window ends."
    )


class Bake(_Strict):
    """How long the post-traffic hook watches before it reports."""

    minutes: int = Field(0, ge=0, le=55, description="At most 55: CodeDeploy's hook deadline is 1 hour.")
    poll_seconds: int = Field(60, ge=10, le=900)


class Bypass(_Strict):
    """Skip the checks for exactly one deployment (a hot fix while an alarm fires). Audited."""

    deployment_id: str = Field(min_length=1)
    reason: str = Field(min_length=10)
    approved_by: str = Field(min_length=1)


class DeploymentGroupRef(_Strict):
    """The CodeDeploy deployment group that deploys the function (SAM names it
    ``<stack>-<Function>DeploymentGroup-<id>`` in the application ``<stack>-ServerlessDeploymentApplication-<id>``).
    Lets the alarm rollback find the in-flight deployment with one ListDeployments call; without
    it, every in-flight deployment of the account is resolved to find the function's."""

    application: str = Field(min_length=1, max_length=100)
    name: str = Field(min_length=1, max_length=100)


class FunctionPolicy(_Strict):
    match: str | None = Field(None, description="Function name or glob (default: the key under 'functions').")
    config: ConfigRules = Field(default_factory=ConfigRules)
    smoke: list[SmokeCase] = Field(default_factory=list)
    smoke_concurrency: int = Field(8, ge=1, le=64)
    post_traffic_smoke: bool = Field(True, description="Run the smoke tests against the alias too.")
    alarms: AlarmRules | None = None
    version_health: VersionHealth | None = None
    bake: Bake = Field(default_factory=Bake)
    deployment_group: DeploymentGroupRef | None = Field(
        None, description="Where the alarm rollback looks for the function's in-flight deployment."
    )
    bypass: Bypass | None = None

    @model_validator(mode="after")
    def _unique_case_names(self) -> FunctionPolicy:
        names = [case.name for case in self.smoke]
        duplicated = sorted({n for n in names if names.count(n) > 1})
        if duplicated:
            raise ValueError(f"smoke case names must be unique; repeated: {', '.join(duplicated)}")
        return self


class RollbackRules(_Strict):
    recent_minutes: int = Field(
        0,
        ge=0,
        le=1440,
        description="Also roll back a release whose deployment started within the last N minutes and "
        "has already finished (0: only in-flight deployments are rolled back).",
    )


class Policy(_Strict):
    version: Literal[1] = 1
    stage: Stage
    unguarded: Literal["fail", "pass"] = Field(
        "fail", description="A deployment of a function this policy does not name."
    )
    rollback: RollbackRules = Field(default_factory=RollbackRules)
    functions: dict[str, FunctionPolicy] = Field(min_length=1)

    def for_function(self, function_name: str) -> tuple[str, FunctionPolicy] | None:
        """The policy entry guarding ``function_name`` (a name or ARN): exact match first, then globs."""
        name = plain_function_name(function_name)
        for key, entry in self.functions.items():
            if name == (entry.match or key):
                return key, entry
        for key, entry in self.functions.items():
            if fnmatch.fnmatchcase(name, entry.match or key):
                return key, entry
        return None


# --- parsing with errors that name the path and the fix ------------------------------------------

_FIXES = {
    "extra_forbidden": "remove it or fix its spelling",
    "missing": "add it",
    "literal_error": "use one of the allowed values",
    "enum": "use one of the allowed values",
    "string_type": "quote it as a string",
    "int_type": "use a whole number",
    "int_parsing": "use a whole number",
    "float_type": "use a number",
    "float_parsing": "use a number",
    "bool_type": "use true or false",
    "bool_parsing": "use true or false",
    "list_type": "use a list",
    "dict_type": "use a mapping",
    "model_type": "use a mapping",
    "greater_than_equal": "raise it",
    "less_than_equal": "lower it",
    "too_short": "add at least one entry",
    "string_too_short": "fill it in",
    "string_pattern_mismatch": "change it to match the pattern",
    "value_error": "change it as the message says",
}


def format_location(loc: tuple[int | str, ...]) -> str:
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path += f".{part}" if path else str(part)
    return path or "(document)"


class PolicyIssue(BaseModel):
    path: str
    problem: str
    fix: str


def _unwrap(annotation: Any) -> Any:
    """X | None → X."""
    args = [a for a in get_args(annotation) if a is not type(None)]
    return args[0] if get_origin(annotation) in (Union, UnionType) and len(args) == 1 else annotation


def _model_at(loc: tuple[int | str, ...]) -> type[BaseModel] | None:
    """The policy model that holds the last key of ``loc`` (for 'did you mean' suggestions)."""
    current: Any = Policy
    for part in loc[:-1]:
        current = _unwrap(current)
        if isinstance(current, type) and issubclass(current, BaseModel):
            field = current.model_fields.get(str(part))
            current = field.annotation if field else None
        elif get_origin(current) in (list, dict):
            current = get_args(current)[-1]  # list[X] → X, dict[str, X] → X
        else:
            return None
    current = _unwrap(current)
    return current if isinstance(current, type) and issubclass(current, BaseModel) else None


def _unknown_key_fix(loc: tuple[int | str, ...]) -> str:
    model = _model_at(loc)
    if model is None or not loc:
        return _FIXES["extra_forbidden"]
    allowed = list(model.model_fields)
    close = difflib.get_close_matches(str(loc[-1]), allowed, n=1)
    if close:
        return f"did you mean '{close[0]}'? (allowed: {', '.join(allowed)})"
    return f"remove it; allowed keys here: {', '.join(allowed)}"


def policy_issues(error: ValidationError) -> list[PolicyIssue]:
    issues = []
    for item in error.errors(include_url=False, include_input=False):
        loc = tuple(p for p in item["loc"] if not (isinstance(p, str) and p.startswith("function-after")))
        problem = str(item["msg"]).removeprefix("Value error, ")
        kind = str(item["type"])
        fix = (
            _unknown_key_fix(loc)
            if kind == "extra_forbidden"
            else _FIXES.get(kind, "see `deployguard policy schema`")
        )
        issues.append(PolicyIssue(path=format_location(loc), problem=problem, fix=fix))
    return issues


class InvalidPolicyError(PolicyError):
    def __init__(self, source: str, issues: list[PolicyIssue]) -> None:
        self.source = source
        self.issues = issues
        lines = "; ".join(f"{i.path}: {i.problem} ({i.fix})" for i in issues)
        super().__init__(f"policy {source} is invalid: {lines}")


def parse_document(text: str, source: str) -> Any:
    try:
        return parse_json_or_yaml(text)
    except DocumentSyntaxError as exc:
        raise InvalidPolicyError(
            source,
            [PolicyIssue(path="(document)", problem=f"not valid YAML or JSON: {exc}", fix="fix the syntax")],
        ) from exc


def build_parser() -> None:
    """Build the validator that ``defer_build`` leaves for the first parse (a hook does it early)."""
    Policy.model_rebuild(force=True)


def load_policy(text: str, source: str = "<policy>", *, stage: Stage | None = None) -> Policy:
    """Parse and validate a policy document (YAML or JSON). With ``stage``, it must be that stage's."""
    document = parse_document(text, source)
    if not isinstance(document, dict):
        raise InvalidPolicyError(
            source,
            [PolicyIssue(path="(document)", problem="must be a mapping", fix="start with 'version: 1'")],
        )
    try:
        policy = Policy.model_validate(document)
    except ValidationError as exc:
        raise InvalidPolicyError(source, policy_issues(exc)) from exc
    if stage is not None and policy.stage is not stage:
        raise InvalidPolicyError(
            source,
            [
                PolicyIssue(
                    path="stage",
                    problem=f"this is the {policy.stage.value} policy but the guard runs in {stage.value}",
                    fix=f"store the {stage.value} policy where the {stage.value} guard reads it",
                )
            ],
        )
    return policy


def policy_json_schema() -> dict[str, Any]:
    schema = Policy.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "DeployGuard policy"
    return schema


def inline_payloads(policy: Policy, base_dir: Path) -> Policy:
    """The policy with every ``payload_file`` read (relative to ``base_dir``) into ``payload``."""
    functions: dict[str, FunctionPolicy] = {}
    for key, entry in policy.functions.items():
        cases = []
        for case in entry.smoke:
            inlined = case
            if case.payload_file is not None:
                path = base_dir / case.payload_file
                try:
                    payload = json.loads(path.read_text())
                except (OSError, ValueError) as exc:
                    raise DeployGuardError(
                        f"functions.{key}.smoke[{case.name}].payload_file: cannot read {path} as JSON ({exc})"
                    ) from exc
                # re-validated, not copied: the set fields must stay exact so the published
                # document keeps 'equals: null' and drops the file reference
                document = case.model_dump(exclude_unset=True, exclude={"payload_file"})
                inlined = SmokeCase.model_validate({**document, "payload": payload})
            cases.append(inlined)
        functions[key] = entry.model_copy(update={"smoke": cases})
    return policy.model_copy(update={"functions": functions})
