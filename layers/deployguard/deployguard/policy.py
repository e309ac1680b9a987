"""The guard policy: one document per stage (dev / staging / prod).

Per guarded function it says what the target version's configuration must satisfy, which smoke
tests to run, which alarms and per-version metrics guard it after traffic shifts, and how long
to bake. Unknown keys are errors; every error names its path and the fix.

A policy is untrusted input to the hooks: parsing is bounded before validation
(:mod:`deployguard.documents`), at most :data:`MAX_REPORTED_ISSUES` errors are reported, its
regular expressions are RE2's (:mod:`deployguard.patterns`), and payload files stay inside the
policy file's folder.
"""

from __future__ import annotations

import difflib
import fnmatch
import json
from pathlib import Path
from types import UnionType
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    JsonValue,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from deployguard.appspec import plain_function_name
from deployguard.documents import (
    DocumentLimitError,
    DocumentSyntaxError,
    parse_json,
    parse_json_or_yaml,
    read_document,
)
from deployguard.errors import PolicyError
from deployguard.patterns import PatternError, check_pattern, load_engine
from deployguard.stages import Stage

POLICY_VERSION = 1


Level = Literal["error", "warning", "ignore"]
"""What a rule's violation means: fail the deployment, report it, or do not check."""


class _Strict(BaseModel):
    # NOTE: defer_build: the schema is built when the first policy is parsed, not at import, so a
    # cold start that finds a cached or invalid policy does not pay for every model up front.
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True, defer_build=True)


MAX_PATTERN_INSTRUCTIONS = 50_000
"""RE2 instructions all of a policy's patterns compile to, together: compiling and matching take
time in proportion. Patterns of the slowest kind up to this budget take about 1 s to compile and
match against a 4 KB value (``scripts/bench_policy.py``); ``\\.prod\\.`` is 10 instructions,
a URL pattern about 60."""


class _PatternBudget:
    """What is left of :data:`MAX_PATTERN_INSTRUCTIONS` while one policy is validated."""

    def __init__(self) -> None:
        self.left = MAX_PATTERN_INSTRUCTIONS

    def spend(self, instructions: int) -> None:
        crossed = self.left >= 0 and instructions > self.left
        self.left -= instructions
        if crossed:
            raise ValueError(
                f"the policy's patterns, up to this one, compile to more than {MAX_PATTERN_INSTRUCTIONS:,} "
                "RE2 instructions (MAX_PATTERN_INSTRUCTIONS): use fewer or simpler patterns — one "
                "pattern per stage rather than one per host, no large {n,m} repetitions"
            )


def _check_regex(pattern: str, info: ValidationInfo, index: int | None = None) -> str:
    """The pattern, if RE2 — the engine the hooks match with — can run it within the limits."""
    budget = info.context.get("patterns") if isinstance(info.context, dict) else None
    if isinstance(budget, _PatternBudget) and budget.left < 0:
        return pattern  # the policy is already invalid: compile no more (the error is reported once)
    try:
        instructions = check_pattern(pattern)
    except PatternError as exc:
        which = "" if index is None else f"pattern [{index}] "
        raise ValueError(
            f"{which}is not a regular expression RE2 can run ({exc}): policy patterns use RE2 "
            "syntax (linear time): no lookaround or backreferences, \\z for \\Z, at most "
            "1000 repetitions"
        ) from exc
    if isinstance(budget, _PatternBudget):
        budget.spend(instructions)
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
    def _regexes(cls, patterns: list[str], info: ValidationInfo) -> list[str]:
        return [_check_regex(p, info, i) for i, p in enumerate(patterns)]

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
    def _regex(cls, pattern: str | None, info: ValidationInfo) -> str | None:
        return None if pattern is None else _check_regex(pattern, info)

    @model_validator(mode="after")
    def _one_assertion(self) -> Expectation:
        if not {"equals", "type", "regex", "exists"} & self.model_fields_set:
            raise ValueError("say what to expect: one of 'equals', 'type', 'regex' or 'exists'")
        return self


class SmokeCase(_Strict):
    """One invocation of the new version and what its answer must look like."""

    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    payload: JsonValue = None
    payload_file: str | None = Field(
        None, description="A JSON file in the policy file's folder or below it (inlined on publish)."
    )
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


MAX_REPORTED_ISSUES = 50
"""Errors listed per policy; the rest are counted. Output stays bounded whatever the document."""

_SHOWN_KEY = 80
"""Characters of a key shown in an error's path (keys come from the document: any length)."""


def format_location(loc: tuple[int | str, ...]) -> str:
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            key = str(part)  # YAML keys may be dates or numbers
            key = key if len(key) <= _SHOWN_KEY else key[: _SHOWN_KEY - 1] + "…"
            path += f".{key}" if path else key
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


def _first_errors(error: ValidationError) -> list[dict[str, Any]]:
    """The first :data:`MAX_REPORTED_ISSUES` of ``error``'s errors, as ``errors()`` gives them.

    NOTE: ``errors()`` builds a dict per error, about 900 bytes each: 90 MB for the 100 000 wrong
    values a policy within the limits can hold, on top of what validation took. ``json()`` builds
    one string of about 130 bytes per error, and only its head is decoded.
    """
    text = error.json(include_url=False, include_input=False, include_context=False)
    decoder = json.JSONDecoder()
    items: list[dict[str, Any]] = []
    index = text.index("[") + 1
    while len(items) < MAX_REPORTED_ISSUES:
        while text[index] in ", \n":
            index += 1
        if text[index] == "]":
            break
        item, index = decoder.raw_decode(text, index)
        items.append(item)
    return items


def policy_issues(error: ValidationError) -> list[PolicyIssue]:
    """The first :data:`MAX_REPORTED_ISSUES` errors (``error.error_count()`` counts them all)."""
    issues = []
    for item in _first_errors(error):
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
    """The policy breaks the rules: ``issues`` lists at most :data:`MAX_REPORTED_ISSUES` of ``total``."""

    def __init__(self, source: str, issues: list[PolicyIssue], *, total: int | None = None) -> None:
        self.source = source
        self.issues = issues[:MAX_REPORTED_ISSUES]
        self.total = max(total or 0, len(issues))
        lines = "; ".join(f"{i.path}: {i.problem} ({i.fix})" for i in self.issues)
        more = self.total - len(self.issues)
        if more:
            lines += f"; … and {more} more"
        super().__init__(f"policy {source} is invalid: {lines}")


class UnreadablePolicyError(InvalidPolicyError):
    """The policy cannot be read or parsed at all: not a file, not UTF-8 text, not JSON or YAML,
    or over a size, depth, node or alias limit. Nothing in it was validated."""

    def __init__(self, source: str, issue: PolicyIssue) -> None:
        super().__init__(source, [issue])


def parse_document(text: str, source: str) -> Any:
    try:
        return parse_json_or_yaml(text)
    except DocumentSyntaxError as exc:
        raise UnreadablePolicyError(source, _document_issue(exc)) from exc


def _document_issue(exc: DocumentSyntaxError, path: str = "(document)") -> PolicyIssue:
    if isinstance(exc, DocumentLimitError):
        return PolicyIssue(path=path, problem=str(exc), fix=exc.fix)
    return PolicyIssue(path=path, problem=f"not valid YAML or JSON: {exc}", fix=exc.fix)


def read_policy_file(path: Path) -> str:
    """A policy file's text: UTF-8, within :data:`~deployguard.documents.MAX_DOCUMENT_BYTES`."""
    try:
        return read_document(path)
    except OSError as exc:
        raise UnreadablePolicyError(
            str(path),
            PolicyIssue(
                path="(file)",
                problem=f"cannot read policy {path}: {exc.strerror or exc}",
                fix="check the path (a policy is a .yaml or .json file)",
            ),
        ) from exc
    except DocumentLimitError as exc:
        raise UnreadablePolicyError(str(path), _document_issue(exc, "(file)")) from exc
    except DocumentSyntaxError as exc:  # not UTF-8 text
        issue = PolicyIssue(path="(file)", problem=str(exc), fix="save it as UTF-8 text")
        raise UnreadablePolicyError(str(path), issue) from exc


def build_parser() -> None:
    """Build the validator that ``defer_build`` leaves for the first parse (a hook does it early,
    on a background thread), and load the regular-expression engine its patterns are checked with."""
    Policy.model_rebuild(force=True)
    load_engine()


def load_policy(text: str, source: str = "<policy>", *, stage: Stage | None = None) -> Policy:
    """Parse and validate a policy document (YAML or JSON). With ``stage``, it must be that stage's."""
    document = parse_document(text, source)
    if not isinstance(document, dict):
        raise InvalidPolicyError(
            source,
            [PolicyIssue(path="(document)", problem="must be a mapping", fix="start with 'version: 1'")],
        )
    try:
        policy = Policy.model_validate(document, context={"patterns": _PatternBudget()})
    except ValidationError as exc:
        raise InvalidPolicyError(source, policy_issues(exc), total=exc.error_count()) from exc
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


def inline_payloads(policy: Policy, base_dir: Path, *, source: str = "<policy>") -> Policy:
    """The policy with every ``payload_file`` read (relative to ``base_dir``) into ``payload``.

    Payload files must lie in ``base_dir`` — the policy file's folder — or below it, symlinks
    resolved: publishing copies them into the stored policy, which the hooks' readers can see, so a
    path out of the folder would let a policy copy any JSON file of the CI runner there.
    """
    folder = base_dir.resolve()
    issues: list[PolicyIssue] = []
    functions: dict[str, FunctionPolicy] = {}
    for key, entry in policy.functions.items():
        cases = []
        for index, case in enumerate(entry.smoke):
            inlined = case
            if case.payload_file is not None:
                field = format_location(("functions", key, "smoke", index, "payload_file"))
                try:
                    payload = _read_payload(folder, case.payload_file)
                except _PayloadError as exc:
                    issues.append(PolicyIssue(path=field, problem=exc.problem, fix=exc.fix))
                    continue
                # re-validated, not copied: the set fields must stay exact so the published
                # document keeps 'equals: null' and drops the file reference
                document = case.model_dump(exclude_unset=True, exclude={"payload_file"})
                inlined = SmokeCase.model_validate({**document, "payload": payload})
            cases.append(inlined)
        functions[key] = entry.model_copy(update={"smoke": cases})
    if issues:
        raise InvalidPolicyError(source, issues)
    inlined_policy = policy.model_copy(update={"functions": functions})
    if any(case.payload_file is not None for entry in policy.functions.values() for case in entry.smoke):
        _check_publishable(inlined_policy, source)
    return inlined_policy


class _PayloadError(Exception):
    def __init__(self, problem: str, fix: str) -> None:
        super().__init__(problem)
        self.problem = problem
        self.fix = fix


_PAYLOAD_FIX = (
    "put the file in the policy file's folder (or below it) and give its path relative to the policy file"
)


def _read_payload(folder: Path, name: str) -> JsonValue:
    relative = Path(name)
    if relative.is_absolute():
        raise _PayloadError(
            f"'{name}' is an absolute path; payload files are read only from {folder}", _PAYLOAD_FIX
        )
    try:
        path = (folder / relative).resolve()
    except (OSError, RuntimeError) as exc:  # a symlink loop
        raise _PayloadError(f"cannot read {folder / relative}: {exc}", _PAYLOAD_FIX) from exc
    if not path.is_relative_to(folder):
        raise _PayloadError(
            f"'{name}' leads to {path}, outside the policy file's folder {folder}", _PAYLOAD_FIX
        )
    try:
        payload: JsonValue = parse_json(read_document(path))
    except OSError as exc:
        raise _PayloadError(
            f"cannot read {path}: {exc.strerror or exc}", "check the path: it is relative to the policy file"
        ) from exc
    except DocumentSyntaxError as exc:
        raise _PayloadError(f"cannot read {path} as JSON ({exc})", exc.fix) from exc
    return payload


def _check_publishable(policy: Policy, source: str) -> None:
    """The published document (payloads inlined) must be one the hooks will load: within the limits."""
    document = policy.model_dump_json(exclude_unset=True)
    try:
        parse_json(document)
    except DocumentLimitError as exc:
        issue = PolicyIssue(path="(document)", problem=f"with its payload files inlined, {exc}", fix=exc.fix)
        raise InvalidPolicyError(source, [issue]) from exc
