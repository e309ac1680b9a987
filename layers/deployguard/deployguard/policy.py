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
import re
from pathlib import Path
from types import UnionType
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    JsonValue,
    PrivateAttr,
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
from deployguard.mode import ENFORCE, OBSERVE, Mode
from deployguard.patterns import PatternError, check_pattern, load_engine
from deployguard.smoke import DEFAULT_SMOKE_CONCURRENCY, MAX_SMOKE_CONCURRENCY
from deployguard.stages import Stage

POLICY_VERSION = 1


Level = Literal["error", "warning", "ignore"]
"""What a rule's violation means: fail the deployment, report it, or do not check."""


class _Strict(BaseModel):
    # NOTE: defer_build: the schema is built when the first policy is parsed, not at import, so a
    # cold start that finds a cached or invalid policy does not pay for every model up front.
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True, defer_build=True)


MAX_PATTERN_INSTRUCTIONS = 50_000
"""RE2 instructions all of a policy's distinct patterns compile to, together (a pattern repeated in
many entries counts once: RE2 compiles and checks it once): compiling and matching take time in proportion. Patterns of the slowest kind up to this budget take about 1 s to compile and
match against a 4 KB value (``scripts/bench_policy.py``); ``\\.prod\\.`` is 10 instructions,
a URL pattern about 60."""


class _PatternBudget:
    """What is left of :data:`MAX_PATTERN_INSTRUCTIONS` while one policy is validated."""

    def __init__(self) -> None:
        self.left = MAX_PATTERN_INSTRUCTIONS
        self.seen: set[str] = set()  # a pattern repeated (in every entry of a fleet) counts once

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
    if isinstance(budget, _PatternBudget) and (budget.left < 0 or pattern in budget.seen):
        # already invalid: compile no more (the error is reported once); or already counted: RE2
        # compiles a pattern once (deployguard.patterns caches it) and a hook matches one entry's
        return pattern
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
        budget.seen.add(pattern)
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
        None,
        description="Variable that must equal the deployment's stage (e.g. STAGE); unset: not checked.",
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


CheckPhase = Literal["pre_traffic", "post_traffic"]


def _both_phases() -> list[CheckPhase]:
    return ["pre_traffic", "post_traffic"]


class CustomCheck(_Strict):
    """The application team's own check: a Lambda function DeployGuard invokes with the deployment's
    context, whose JSON answer (``{"result": "pass"|"fail", "findings": [...]}``) joins the decision."""

    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")
    function: str = Field(
        min_length=1,
        max_length=170,
        pattern=r"^[A-Za-z0-9_:.$-]+$",
        description="The check function's name or ARN, optionally with ':<alias or version>' "
        "(default $LATEST). It must carry the tag deployguard:stage=<stage> (the hooks' IAM condition).",
    )
    when: list[CheckPhase] = Field(
        default_factory=_both_phases,
        min_length=1,
        description="Before traffic shifts (pre_traffic), after it (post_traffic), or both.",
    )
    timeout_ms: int = Field(10_000, ge=100, le=900_000)


class Prune(_Strict):
    """After a Succeeded deployment, delete the function's older versions (Lambda's code storage
    quota): never one an alias routes to, never the newest ``keep``, never the target version, never
    the previous one while the stage's rollback window (``rollback.recent_minutes``) is open."""

    keep: int = Field(
        ge=1, le=1000, description="How many of the newest versions to keep besides the aliases'."
    )


class FunctionPolicy(_Strict):
    match: str | None = Field(None, description="Function name or glob (default: the key under 'functions').")
    config: ConfigRules = Field(default_factory=ConfigRules)
    smoke: list[SmokeCase] = Field(default_factory=list)
    smoke_concurrency: int | None = Field(
        None,
        ge=1,
        le=MAX_SMOKE_CONCURRENCY,
        description=f"How many smoke cases run at once (default: all of them, at most {DEFAULT_SMOKE_CONCURRENCY}).",
    )
    post_traffic_smoke: bool = Field(True, description="Run the smoke tests against the alias too.")
    alarms: AlarmRules | None = None
    version_health: VersionHealth | None = None
    bake: Bake = Field(default_factory=Bake)
    deployment_group: DeploymentGroupRef | None = Field(
        None, description="Where the alarm rollback looks for the function's in-flight deployment."
    )
    bypass: Bypass | None = None
    mode: Mode = Field(
        ENFORCE,
        description="enforce: the verdict fails or rolls back the release; observe: every check runs and "
        "is recorded and alerted as 'would have failed', but DeployGuard reports Succeeded and never "
        "stops a deployment or moves an alias.",
    )

    custom_checks: list[CustomCheck] = Field(
        default_factory=list,
        description="The application's own check functions (docs/policy.md#custom-checks).",
    )
    prune: Prune | None = Field(
        None, description="Delete old versions after a Succeeded deployment (off unless set)."
    )

    @model_validator(mode="after")
    def _unique_case_names(self) -> FunctionPolicy:
        for kind, names in (
            ("smoke case", [case.name for case in self.smoke]),
            ("custom check", [check.name for check in self.custom_checks]),
        ):
            duplicated = sorted({n for n in names if names.count(n) > 1})
            if duplicated:
                raise ValueError(f"{kind} names must be unique; repeated: {', '.join(duplicated)}")
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
    _unnamed: str | None = PrivateAttr(None)

    @property
    def unnamed_reason(self) -> str | None:
        """Why no entry can name the function being judged (no ``deployguard:app`` tag, no document
        for its application), when the store knows; None for a policy read from a document."""
        return self._unnamed

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


def _model_at(loc: tuple[int | str, ...], root: type[BaseModel]) -> type[BaseModel] | None:
    """The policy model that holds the last key of ``loc`` (for 'did you mean' suggestions)."""
    current: Any = root
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


def _unknown_key_fix(loc: tuple[int | str, ...], root: type[BaseModel]) -> str:
    model = _model_at(loc, root)
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


def policy_issues(error: ValidationError, root: type[BaseModel] | None = None) -> list[PolicyIssue]:
    """The first :data:`MAX_REPORTED_ISSUES` errors (``error.error_count()`` counts them all)."""
    issues = []
    for item in _first_errors(error):
        loc = tuple(p for p in item["loc"] if not (isinstance(p, str) and p.startswith("function-after")))
        problem = str(item["msg"]).removeprefix("Value error, ")
        kind = str(item["type"])
        fix = (
            _unknown_key_fix(loc, root or Policy)
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


def parse_document(text: str, source: str, *, json_only: bool = False) -> Any:
    """``text`` parsed within the limits; ``json_only``: a stored document (``policy publish``
    stores JSON), so a hook never runs a YAML parser on what the bucket holds."""
    try:
        return parse_json(text) if json_only else parse_json_or_yaml(text)
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


# --- the store's documents: a stage baseline and one document per application --------------------
#
# The platform team publishes ``<stage>/baseline.json``: what every function of the stage gets unless
# its application says otherwise (``defaults``) and what no application may weaken (``floors``).
# Each application team publishes ``<stage>/apps/<application>.json`` with its functions. A
# function's effective entry is the baseline's defaults with the application's entry merged over
# them (mappings key by key, lists and scalars replaced), then validated and checked against the
# floors. The hooks validate only that merged document: one validation per application document.

APPLICATION_NAME = r"^[a-z0-9][a-z0-9._-]{0,62}$"
"""An application's name: its S3 key ``<stage>/apps/<name>.json`` and its functions' tag
``deployguard:app`` value."""

_APPLICATION_KEYS = ("version", "stage", "application", "mode", "functions")
_NOT_DEFAULTS = ("match", "bypass", "deployment_group")

_LEVEL_RANK = {"ignore": 0, "warning": 1, "error": 2}
_PRE_EXISTING_RANK = {"report": 0, "block": 1}
_INCONCLUSIVE_RANK = {"pass": 0, "fail": 1}
_MODE_RANK = {OBSERVE: 0, ENFORCE: 1}


class Floors(_Strict):
    """What no application may weaken, each keyed by the path in a function entry it bounds.

    A level is a minimum (error > warning > ignore); ``bake.minutes`` and
    ``version_health.min_invocations`` are minimums; ``version_health.max_error_rate`` and
    ``version_health.max_throttles`` are ceilings; ``mode: enforce`` refuses an application in
    observe mode (``deployguard.mode``). A floor on ``version_health`` or ``alarms``
    also requires the entry (or the baseline's defaults) to set that section."""

    plaintext_secrets: Level | None = Field(None, alias="config.plaintext_secrets")
    references_verify: Level | None = Field(None, alias="config.references.verify")
    deprecated_runtime: Level | None = Field(None, alias="config.settings.deprecated_runtime")
    tracing: Level | None = Field(None, alias="config.settings.tracing")
    on_failure_destination: Level | None = Field(None, alias="config.settings.on_failure_destination")
    removed_variables: Level | None = Field(None, alias="config.drift.removed_variables")
    bake_minutes: int | None = Field(None, ge=0, le=55, alias="bake.minutes")
    max_error_rate: float | None = Field(None, ge=0, le=1, alias="version_health.max_error_rate")
    max_throttles: int | None = Field(None, ge=0, alias="version_health.max_throttles")
    min_invocations: int | None = Field(None, ge=0, alias="version_health.min_invocations")
    inconclusive: Literal["pass", "fail"] | None = Field(None, alias="version_health.inconclusive")
    pre_existing: Literal["block", "report"] | None = Field(None, alias="alarms.pre_existing")
    mode: Mode | None = Field(None, alias="mode")


class Baseline(_Strict):
    """A stage's baseline, published by the platform team (``<stage>/baseline.json``)."""

    version: Literal[1] = 1
    stage: Stage
    unguarded: Literal["fail", "pass"] = Field(
        "fail", description="A deployment of a function no application document names."
    )
    rollback: RollbackRules = Field(default_factory=RollbackRules)
    defaults: FunctionPolicy = Field(
        default_factory=FunctionPolicy,
        description="What every function entry gets unless its application sets it (merged key by key).",
    )
    floors: Floors = Field(default_factory=Floors)

    @field_validator("defaults")
    @classmethod
    def _defaults_are_general(cls, defaults: FunctionPolicy) -> FunctionPolicy:
        named = sorted(set(_NOT_DEFAULTS) & defaults.model_fields_set)
        if named:
            raise ValueError(
                f"{', '.join(named)} belong to one function: set them in its application document"
            )
        return defaults

    @model_validator(mode="after")
    def _defaults_within_floors(self) -> Baseline:
        found = floor_issues(self.floors, self.defaults, "", require_sections=False)
        problems = [f"defaults.{i.path}: {i.problem}" for i in found]
        if problems:
            raise ValueError("the defaults are weaker than the floors: " + "; ".join(problems))
        return self


class ApplicationPolicy(_Strict):
    """One application's functions, published by its team (``<stage>/apps/<application>.json``)."""

    version: Literal[1] = 1
    stage: Stage
    application: str = Field(
        pattern=APPLICATION_NAME, description="Its functions' deployguard:app tag value."
    )
    mode: Mode | None = Field(
        None, description="Every function's mode unless its entry sets one (default: the baseline's)."
    )
    functions: dict[str, FunctionPolicy] = Field(min_length=1)


def _with_application_mode(functions: Any, mode: Any) -> Any:
    """The raw entries of an application document with its ``mode`` (if any) under each entry's own."""
    if mode is None or not isinstance(functions, dict):
        return functions
    return {k: {"mode": mode, **v} if isinstance(v, dict) else v for k, v in functions.items()}


def _floor_fields() -> list[tuple[str, str]]:
    return [(name, str(field.alias)) for name, field in Floors.model_fields.items()]


def _value_at(entry: FunctionPolicy, path: str) -> tuple[bool, Any]:
    """(whether the section holding it is set, the value) at a dotted ``path`` of ``entry``."""
    current: Any = entry
    for part in path.split("."):
        if current is None:
            return False, None
        current = getattr(current, part)
    return True, current


def _weaker(alias: str, floor: Any, value: Any) -> bool:
    if alias in ("bake.minutes", "version_health.min_invocations"):
        return bool(value < floor)
    if alias in ("version_health.max_error_rate", "version_health.max_throttles"):
        return bool(value > floor)
    ranks = (
        _PRE_EXISTING_RANK
        if alias == "alarms.pre_existing"
        else _INCONCLUSIVE_RANK
        if alias == "version_health.inconclusive"
        else _MODE_RANK
        if alias == "mode"
        else _LEVEL_RANK
    )
    return ranks[value] < ranks[floor]


def floor_issues(
    floors: Floors, entry: FunctionPolicy, prefix: str, *, require_sections: bool = True
) -> list[PolicyIssue]:
    """Where ``entry`` (an effective entry, at ``prefix``) is weaker than a floor of the baseline
    (``require_sections``: a section a floor bounds must be set; not of the defaults, which may
    leave ``alarms`` or ``version_health`` to each application)."""
    issues = []
    for name, alias in _floor_fields():
        floor = getattr(floors, name)
        if floor is None:
            continue
        at = f"{prefix}.{alias}" if prefix else alias
        present, value = _value_at(entry, alias)
        if not present and not require_sections:
            continue
        if not present:
            section = alias.split(".")[0]
            issues.append(
                PolicyIssue(
                    path=at,
                    problem=f"'{section}' is not set, but the baseline's floor {alias} is {floor!r}",
                    fix=f"set {section} (with {alias.split('.', 1)[1]} within the floor {floor!r})",
                )
            )
        elif _weaker(alias, floor, value):
            issues.append(
                PolicyIssue(
                    path=at,
                    problem=f"{value!r} is weaker than the baseline's floor {alias}: {floor!r}",
                    fix=f"set it to {floor!r} or stricter, or remove it to take the baseline's default",
                )
            )
    return issues


def deep_merge(base: Any, over: Any) -> Any:
    """``over`` merged onto ``base``: mappings key by key, anything else replaced."""
    if isinstance(base, dict) and isinstance(over, dict):
        merged = dict(base)
        for key, value in over.items():
            merged[key] = deep_merge(base[key], value) if key in base else value
        return merged
    return over


def load_baseline(
    text: str, source: str = "<baseline>", *, stage: Stage | None = None, json_only: bool = False
) -> Baseline:
    """Parse and validate a stage baseline (YAML or JSON; ``json_only``: as stored). With
    ``stage``, it must be that stage's."""
    document = _mapping(parse_document(text, source, json_only=json_only), source)
    try:
        baseline = Baseline.model_validate(document, context={"patterns": _PatternBudget()})
    except ValidationError as exc:
        raise InvalidPolicyError(source, policy_issues(exc, Baseline), total=exc.error_count()) from exc
    _check_stage(baseline.stage, stage, source)
    return baseline


def _mapping(document: Any, source: str) -> dict[str, Any]:
    if not isinstance(document, dict):
        raise InvalidPolicyError(
            source,
            [PolicyIssue(path="(document)", problem="must be a mapping", fix="start with 'version: 1'")],
        )
    return document


def _check_stage(found: Stage, stage: Stage | None, source: str) -> None:
    if stage is not None and found is not stage:
        raise InvalidPolicyError(
            source,
            [
                PolicyIssue(
                    path="stage",
                    problem=f"this is a {found.value} document but the guard runs in {stage.value}",
                    fix=f"publish it with --stage {found.value}, or set 'stage: {stage.value}'",
                )
            ],
        )


def application_document(text: str, source: str, *, json_only: bool = False) -> dict[str, Any]:
    """An application document, parsed (bounded; ``json_only``: as stored) but not validated: what
    :func:`effective_policy` merges. Keys only the baseline sets are errors here."""
    document = _mapping(parse_document(text, source, json_only=json_only), source)
    issues = [
        PolicyIssue(
            path=str(key)[:_SHOWN_KEY],
            problem="an application document does not set this"
            + (" (the stage's baseline does)" if key in ("unguarded", "rollback") else ""),
            fix=f"remove it; allowed keys here: {', '.join(_APPLICATION_KEYS)}",
        )
        for key in document
        if key not in _APPLICATION_KEYS
    ]
    if issues:
        raise InvalidPolicyError(source, issues)
    return document


def effective_policy(
    baseline: Baseline,
    document: dict[str, Any],
    source: str,
    *,
    application: str | None = None,
    stage: Stage | None = None,
    function_name: str | None = None,
) -> Policy:
    """The policy the hooks judge ``application``'s functions by: the baseline's ``defaults`` with
    each entry of ``document`` (from :func:`application_document`) merged over them, validated, and
    checked against the baseline's floors. Every error names its path in the application document.

    With ``function_name``, only the entry that guards it (as :meth:`Policy.for_function` picks it:
    an exact ``match`` first, then a glob) is merged and validated: a hook judges one function, and
    validating one entry of a 200-function document costs a hundredth of validating them all
    (``deployguard policy publish`` validated every entry before storing it). None matching: a
    policy naming no function, which says so (:attr:`Policy.unnamed_reason`)."""
    defaults = baseline.defaults.model_dump(mode="json", exclude_unset=True)
    functions = document.get("functions")
    if function_name is not None and isinstance(functions, dict) and functions:
        functions = _entry_for(functions, function_name)
        if not functions:
            named = document.get("application")
            return unnamed_policy(
                baseline,
                f"add it under 'functions' of application {str(named)[:64]}'s document (or tag it with "
                "the application that names it)",
            )
    functions = _with_application_mode(functions, document.get("mode"))
    merged: dict[str, Any] = {
        "version": document.get("version", 1),
        "stage": document.get("stage"),
        "unguarded": baseline.unguarded,
        "rollback": baseline.rollback.model_dump(mode="json"),
        "functions": (
            {k: deep_merge(defaults, v) if isinstance(v, dict) else v for k, v in functions.items()}
            if isinstance(functions, dict)
            else functions
        ),
    }
    issues: list[PolicyIssue] = []
    named = document.get("application")
    if not isinstance(named, str) or not valid_application_name(named):
        issues.append(
            PolicyIssue(
                path="application",
                problem="must name the application (lowercase letters, digits, '.', '_', '-'; at most 63)",
                fix="set 'application:' to the value of its functions' deployguard:app tag",
            )
        )
    elif application is not None and named != application:
        issues.append(
            PolicyIssue(
                path="application",
                problem=f"this is application {named}'s document, stored as {application}'s",
                fix=f"publish it with --app {named}, or set 'application: {application}'",
            )
        )
    try:
        policy = Policy.model_validate(merged, context={"patterns": _PatternBudget()})
    except ValidationError as exc:
        found = policy_issues(exc)
        raise InvalidPolicyError(source, issues + found, total=len(issues) + exc.error_count()) from exc
    for key, entry in policy.functions.items():
        issues.extend(floor_issues(baseline.floors, entry, format_location(("functions", key))))
    if issues:
        raise InvalidPolicyError(source, issues)
    _check_stage(policy.stage, stage, source)
    if policy.stage is not baseline.stage:
        raise InvalidPolicyError(
            source,
            [
                PolicyIssue(
                    path="stage",
                    problem=f"a {policy.stage.value} application under the {baseline.stage.value} baseline",
                    fix=f"set 'stage: {baseline.stage.value}'",
                )
            ],
        )
    return policy


def _entry_for(functions: dict[str, Any], function_name: str) -> dict[str, Any]:
    """The raw entry of ``functions`` that guards ``function_name``, as a one-entry mapping."""
    name = plain_function_name(function_name)

    def pattern(key: str, entry: Any) -> str:
        match = entry.get("match") if isinstance(entry, dict) else None
        return match if isinstance(match, str) else str(key)

    for key, entry in functions.items():
        if name == pattern(key, entry):
            return {key: entry}
    for key, entry in functions.items():
        if fnmatch.fnmatchcase(name, pattern(key, entry)):
            return {key: entry}
    return {}


def valid_application_name(name: str) -> bool:
    """``name`` is a valid application name (:data:`APPLICATION_NAME`; plain ``re``: ASCII only)."""
    return re.fullmatch(APPLICATION_NAME, name, flags=re.ASCII) is not None


def unnamed_policy(baseline: Baseline, reason: str) -> Policy:
    """The policy of a function no application document guards: the baseline's ``unguarded`` decides,
    and ``reason`` (the missing tag or document, and the fix) is what the finding says."""
    policy = Policy.model_construct(
        version=1,
        stage=baseline.stage,
        unguarded=baseline.unguarded,
        rollback=baseline.rollback,
        functions={},
    )
    policy._unnamed = reason
    return policy


Origin = Literal["application", "baseline default", "built-in default"]


def value_origins(
    baseline: Baseline, document: dict[str, Any], policy: Policy
) -> dict[str, dict[str, Origin]]:
    """Where each value of each effective entry came from: entry key → dotted path in the entry →
    the application document, the baseline's defaults, or DeployGuard's built-in default."""
    defaults = baseline.defaults.model_dump(mode="json", exclude_unset=True)
    raw = _with_application_mode(document.get("functions") or {}, document.get("mode"))
    origins: dict[str, dict[str, Origin]] = {}

    def walk(value: Any, path: tuple[str, ...], own: Any, default: Any, into: dict[str, Origin]) -> None:
        if isinstance(value, dict) and value:
            for key, child in value.items():
                walk(
                    child,
                    (*path, key),
                    own.get(key, _ABSENT) if isinstance(own, dict) else _ABSENT,
                    default.get(key, _ABSENT) if isinstance(default, dict) else _ABSENT,
                    into,
                )
            return
        into[".".join(path)] = (
            "application"
            if own is not _ABSENT
            else "baseline default"
            if default is not _ABSENT
            else "built-in default"
        )

    for key, entry in policy.functions.items():
        walk(entry.model_dump(mode="json"), (), raw.get(key, {}), defaults, origins.setdefault(key, {}))
    return origins


_ABSENT: Any = object()


def inline_document_payloads(document: dict[str, Any], base_dir: Path, *, source: str) -> dict[str, Any]:
    """An application document (as :func:`application_document` parsed it) with every smoke case's
    ``payload_file`` read into ``payload``, under the rules of :func:`inline_payloads`."""
    folder = base_dir.resolve()
    issues: list[PolicyIssue] = []
    functions = document.get("functions")
    if not isinstance(functions, dict):
        return document
    inlined: dict[str, Any] = {}
    for key, entry in functions.items():
        cases = entry.get("smoke") if isinstance(entry, dict) else None
        if not isinstance(cases, list):
            inlined[key] = entry
            continue
        new_cases = []
        for index, case in enumerate(cases):
            if isinstance(case, dict) and isinstance(case.get("payload_file"), str):
                field = format_location(("functions", key, "smoke", index, "payload_file"))
                try:
                    payload = _read_payload(folder, case["payload_file"])
                except _PayloadError as exc:
                    issues.append(PolicyIssue(path=field, problem=exc.problem, fix=exc.fix))
                    continue
                case = {**{k: v for k, v in case.items() if k != "payload_file"}, "payload": payload}  # noqa: PLW2901
            new_cases.append(case)
        inlined[key] = {**entry, "smoke": new_cases}
    if issues:
        raise InvalidPolicyError(source, issues)
    return {**document, "functions": inlined}
