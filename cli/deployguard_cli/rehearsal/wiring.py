"""What template.yaml would deploy, read from the template itself: the rehearsal rehearses that.

A YAML loader that keeps CloudFormation's short-form tags (``!Ref``, ``!Sub``, ``!GetAtt``,
``!FindInMap``, ``!If`` …) as their long forms, and a resolver for the intrinsic functions the
template uses, with the parameters' defaults (``Stage`` may be overridden per scenario), the
mappings, the conditions and the physical names the template gives its resources.

From it :func:`read_wiring` takes the guarded application's function (code folder, handler,
runtime, timeout, memory, environment), its ``AutoPublishAlias`` and ``DeploymentPreference``
(deployment type, hook functions, alarms with their full definitions), the EventBridge rule of the
alarm rollback function, the bake state machine, the alert topic and every function's settings.
"""

from __future__ import annotations

import base64
import functools
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from deployguard_cli.templates import TemplateError, merge_globals

if TYPE_CHECKING:
    from moto.events.models import EventPattern

__all__ = [
    "AlarmSpec",
    "FunctionSpec",
    "Rule",
    "StateMachineSpec",
    "TemplateError",
    "Wiring",
    "load_template",
    "read_wiring",
]

ACCOUNT_ID = "123456789012"  # moto's default account
REGION = "us-east-1"
PARTITION = "aws"
DEPLOYMENT_CONFIG_PREFIX = "CodeDeployDefault.Lambda"
TARGET_VERSION = "${TargetVersion}"
"""Stands for the version being deployed (``Function.Version.Version``) until a release is known."""
_SUB_VARIABLE = re.compile(r"\$\{(!?)([^}]+)\}")
"""An ``Fn::Sub`` variable, or with ``!`` a literal: CloudFormation writes ``${!Literal}`` as ``${Literal}``."""
_SAM_GENERATED = re.compile(
    r"ServerlessDeploymentApplication|ServerlessRestApi|ServerlessHttpApi|CodeDeployServiceRole|\w+(Role|DeploymentGroup)"
)
"""Logical ids the SAM transform adds (a function's role and deployment group, the CodeDeploy
application, the implicit APIs): a template may name them though it does not declare them."""
IMPORTED = "imported:"
"""Stands for ``Fn::ImportValue`` of another stack's output (there is no other stack here)."""
DEPLOY_TIME = "deploy-time:"
"""Stands for an attribute known only once deployed (``!GetAtt Table.StreamArn``), in a user's app."""


# --- loading ------------------------------------------------------------------------------------
# NOTE: libyaml's loader when PyYAML has it: the template is large and the pure-Python parser
# takes half a second per read.
_SafeLoader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _CloudFormationLoader(_SafeLoader):  # type: ignore[valid-type, misc]
    """SafeLoader that turns ``!Name value`` into ``{"Fn::Name": value}`` (``!Ref`` into ``Ref``)."""


def _tagged(loader: Any, suffix: str, node: yaml.Node) -> dict[str, Any]:
    value: Any
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    if suffix in ("Ref", "Condition"):
        return {suffix: value}
    return {f"Fn::{suffix}": value}


_CloudFormationLoader.add_multi_constructor("!", _tagged)


def load_template(path: Path) -> dict[str, Any]:
    """The template as a document (shared between callers: do not modify it)."""
    try:
        stamp = path.stat().st_mtime_ns
    except OSError as exc:
        raise TemplateError(f"cannot read {path}: {exc}") from exc
    return _load(str(path.resolve()), stamp)


@functools.lru_cache(maxsize=4)
def _load(path: str, stamp: int) -> dict[str, Any]:
    del stamp  # part of the cache key: an edited template is read again
    try:
        document = yaml.load(Path(path).read_text(encoding="utf-8"), Loader=_CloudFormationLoader)  # noqa: S506 - a SafeLoader subclass
    except (OSError, yaml.YAMLError) as exc:
        raise TemplateError(f"cannot read {path}: {exc}") from exc
    if not isinstance(document, dict) or not isinstance(document.get("Resources"), dict):
        raise TemplateError(f"{path} is not a CloudFormation template (no Resources)")
    return document


# --- resolving ----------------------------------------------------------------------------------
class Resolver:
    """Evaluates intrinsic functions against parameter values, mappings and physical names."""

    def __init__(
        self,
        template: Mapping[str, Any],
        *,
        parameters: Mapping[str, str] | None = None,
        stack_name: str,
        attributes: Mapping[str, str] | None = None,
        suffix: str = "",
        placeholders: bool = False,
    ) -> None:
        """``suffix`` ends the physical names the template does not give (CloudFormation's
        ``<stack>-<logical id>-<random>``)."""
        self.template = template
        self.suffix = suffix
        self.placeholders = placeholders  # unknown attributes become DEPLOY_TIME placeholders
        self.resources: dict[str, Any] = dict(template.get("Resources", {}))
        self.parameters = self._parameters(dict(parameters or {}))
        self.stack_name = stack_name
        self.attributes = dict(attributes or {})  # "Logical.Attr" → value known only at deploy time
        self._conditions: dict[str, bool] = {}

    def _parameters(self, overrides: dict[str, str]) -> dict[str, str]:
        values: dict[str, str] = {}
        missing: list[str] = []
        declared = self.template.get("Parameters", {}) or {}
        for name, spec in declared.items():
            if name in overrides:
                value = overrides.pop(name)
            elif "Default" in spec:
                value = str(spec["Default"])
            else:
                missing.append(f"{name} ({spec.get('Type', 'String')})")
                continue
            allowed = spec.get("AllowedValues")
            if allowed and value not in [str(a) for a in allowed]:
                raise TemplateError(f"parameter {name}={value} is not one of {', '.join(map(str, allowed))}")
            values[name] = value
        if missing:
            first = missing[0].split(" ", 1)[0]
            raise TemplateError(
                f"parameters without a default need a value: {', '.join(missing)}; pass "
                f"--parameter-overrides {first}=VALUE … (or set parameter_overrides in samconfig.toml)"
            )
        if overrides:
            raise TemplateError(f"the template declares no parameter {', '.join(sorted(overrides))}")
        return values

    def pseudo(self, name: str) -> str | None:
        return {
            "AWS::Region": REGION,
            "AWS::AccountId": ACCOUNT_ID,
            "AWS::Partition": PARTITION,
            "AWS::StackName": self.stack_name,
            "AWS::URLSuffix": "amazonaws.com",
            "AWS::NoValue": None,
        }.get(name, "")

    def condition(self, name: str) -> bool:
        if name not in self._conditions:
            definition = (self.template.get("Conditions") or {}).get(name)
            if definition is None:
                raise TemplateError(f"unknown condition {name}")
            self._conditions[name] = bool(self.resolve(definition))
        return self._conditions[name]

    def resolve(self, value: Any) -> Any:  # noqa: C901, PLR0912 - one branch per intrinsic
        if isinstance(value, list):
            return [self.resolve(v) for v in value]
        if not isinstance(value, dict):
            return value
        if len(value) != 1:
            return {k: self.resolve(v) for k, v in value.items()}
        ((key, arg),) = value.items()
        if key == "Ref":
            return self.ref(str(arg))
        if key == "Condition":
            return self.condition(str(arg))
        if key == "Fn::GetAtt":
            parts = arg if isinstance(arg, list) else str(arg).split(".", 1)
            return self.get_att(str(parts[0]), str(self.resolve(parts[1])))
        if key == "Fn::Sub":
            return self.sub(arg)
        if key == "Fn::FindInMap":
            name, top, second = (str(self.resolve(a)) for a in arg)
            try:
                return self.template["Mappings"][name][top][second]
            except KeyError as exc:
                raise TemplateError(f"Fn::FindInMap [{name}, {top}, {second}] has no value") from exc
        if key == "Fn::If":
            name, when_true, when_false = arg
            return self.resolve(when_true if self.condition(str(name)) else when_false)
        if key == "Fn::Equals":
            left, right = (self.resolve(a) for a in arg)
            return str(left) == str(right)
        if key == "Fn::Not":
            return not self.resolve(arg[0])
        if key == "Fn::And":
            return all(self.resolve(a) for a in arg)
        if key == "Fn::Or":
            return any(self.resolve(a) for a in arg)
        if key == "Fn::Join":
            separator, items = arg
            return str(separator).join(str(self.resolve(i)) for i in self.resolve(items))
        if key == "Fn::Select":
            index, items = arg
            return self.resolve(items)[int(self.resolve(index))]
        if key == "Fn::Split":
            separator, text = arg
            return str(self.resolve(text)).split(str(separator))
        if key == "Fn::Base64":
            return base64.b64encode(str(self.resolve(arg)).encode()).decode()
        if key == "Fn::ImportValue":  # another stack's output: not on the embedded AWS
            return f"{IMPORTED}{self.resolve(arg)}"
        if key.startswith("Fn::"):
            raise TemplateError(f"the rehearsal does not evaluate {key}")
        return {key: self.resolve(arg)}

    def sub(self, arg: Any) -> str:
        text, variables = (arg, {}) if isinstance(arg, str) else (arg[0], arg[1])
        local = {k: self.resolve(v) for k, v in dict(variables).items()}

        def one(match: re.Match[str]) -> str:
            literal, name = match.group(1), match.group(2).strip()
            if literal:
                return "${" + match.group(2) + "}"
            if name in local:
                return str(local[name])
            if name.startswith("AWS::"):
                return str(self.pseudo(name))
            if "." in name:
                logical, attribute = name.split(".", 1)
                return str(self.get_att(logical, attribute))
            return str(self.ref(name))

        return _SUB_VARIABLE.sub(one, str(text))

    def ref(self, name: str) -> Any:
        if name.startswith("AWS::"):
            return self.pseudo(name)
        if name in self.parameters:
            declared = (self.template.get("Parameters") or {}).get(name) or {}
            kind = str(declared.get("Type", "String"))
            if kind == "CommaDelimitedList" or "List<" in kind:  # a list; each member space-trimmed
                return [item.strip() for item in self.parameters[name].split(",")]
            return self.parameters[name]
        if name in self.attributes:
            return self.attributes[name]
        logical, _, suffix = name.rpartition(".")
        if logical in self.resources and suffix == "Alias":
            alias = self.resolve(self.resources[logical]["Properties"].get("AutoPublishAlias"))
            return f"{self.get_att(logical, 'Arn')}:{alias}"
        if logical in self.resources and suffix == "Version":  # SAM: the published version's ARN
            version = self.attributes.get(f"{logical}.Version.Version", TARGET_VERSION)
            return f"{self.get_att(logical, 'Arn')}:{version}"
        if name not in self.resources and _SAM_GENERATED.fullmatch(name):
            return f"{self.stack_name}-{name}"  # a resource the SAM transform adds
        return self._physical(name, self._resource(name))

    def _physical(self, name: str, resource: Mapping[str, Any]) -> Any:
        """What ``!Ref`` of the template's resource ``name`` returns: its physical name (or ARN, URL)."""
        kind, props = resource.get("Type", ""), resource.get("Properties", {}) or {}
        arn = f"arn:{PARTITION}"
        named = {
            "AWS::Serverless::Function": "FunctionName",
            "AWS::Lambda::Function": "FunctionName",
            "AWS::CloudWatch::Alarm": "AlarmName",
            "AWS::Logs::LogGroup": "LogGroupName",
            "AWS::IAM::Role": "RoleName",
            "AWS::S3::Bucket": "BucketName",
            "AWS::DynamoDB::Table": "TableName",
            "AWS::Serverless::SimpleTable": "TableName",
        }
        if kind in named:
            return self.resolve(props.get(named[kind])) or f"{self.stack_name}-{name}{self.suffix}"
        if kind == "AWS::SNS::Topic":
            topic = self.resolve(props.get("TopicName")) or f"{self.stack_name}-{name}"
            return f"{arn}:sns:{REGION}:{ACCOUNT_ID}:{topic}"
        if kind == "AWS::SQS::Queue":  # Ref is the queue's URL
            queue = self.resolve(props.get("QueueName")) or f"{self.stack_name}-{name}{self.suffix}"
            return f"https://sqs.{REGION}.amazonaws.com/{ACCOUNT_ID}/{queue}"
        if kind in ("AWS::Serverless::StateMachine", "AWS::StepFunctions::StateMachine"):
            machine = self.resolve(props.get("Name") or props.get("StateMachineName")) or name
            return f"{arn}:states:{REGION}:{ACCOUNT_ID}:stateMachine:{machine}"
        if kind == "AWS::Serverless::LayerVersion":
            layer = self.resolve(props.get("LayerName")) or name
            return f"{arn}:lambda:{REGION}:{ACCOUNT_ID}:layer:{layer}:1"
        return f"{self.stack_name}-{name}"

    def get_att(self, logical: str, attribute: str) -> Any:
        key = f"{logical}.{attribute}"
        if key in self.attributes:
            return self.attributes[key]
        resource = self._resource(logical)
        kind = resource.get("Type", "")
        if attribute == "Arn":
            if kind in ("AWS::Serverless::Function", "AWS::Lambda::Function"):
                return f"arn:{PARTITION}:lambda:{REGION}:{ACCOUNT_ID}:function:{self.ref(logical)}"
            if kind == "AWS::Logs::LogGroup":
                return f"arn:{PARTITION}:logs:{REGION}:{ACCOUNT_ID}:log-group:{self.ref(logical)}:*"
            if kind == "AWS::IAM::Role":
                return f"arn:{PARTITION}:iam::{ACCOUNT_ID}:role/{self.ref(logical)}"
            if kind == "AWS::CloudWatch::Alarm":
                return f"arn:{PARTITION}:cloudwatch:{REGION}:{ACCOUNT_ID}:alarm:{self.ref(logical)}"
            if kind in ("AWS::DynamoDB::Table", "AWS::Serverless::SimpleTable"):
                return f"arn:{PARTITION}:dynamodb:{REGION}:{ACCOUNT_ID}:table/{self.ref(logical)}"
            if kind == "AWS::SQS::Queue":
                return f"arn:{PARTITION}:sqs:{REGION}:{ACCOUNT_ID}:{self.get_att(logical, 'QueueName')}"
            if kind == "AWS::S3::Bucket":
                return f"arn:{PARTITION}:s3:::{self.ref(logical)}"
            return self.ref(logical)
        if kind == "AWS::SQS::Queue" and attribute == "QueueName":
            return str(self.ref(logical)).rsplit("/", 1)[-1]
        if self.placeholders:  # known only once deployed: a user's app names them in its environment
            return f"{DEPLOY_TIME}{key}"
        raise TemplateError(f"the rehearsal does not know {key} (it is known only once deployed)")

    def _resource(self, logical: str) -> dict[str, Any]:
        resource = self.resources.get(logical)
        if not isinstance(resource, dict):
            raise TemplateError(f"the template has no resource {logical}")
        return resource


# --- what the rehearsal needs -------------------------------------------------------------------
@dataclass(frozen=True)
class FunctionSpec:
    logical_id: str
    name: str
    code_uri: Path
    handler: str
    runtime: str
    timeout: int
    memory_size: int
    environment: dict[str, str]
    tracing: str | None
    architectures: tuple[str, ...]
    log_group: str
    max_retry_attempts: int = 2
    tags: Mapping[str, str] = field(default_factory=dict)  # e.g. deployguard:stage (the guard's scope)
    layers: tuple[Path, ...] = ()  # the template's own layers (their ContentUri folders)
    external_layers: tuple[str, ...] = ()  # layer ARNs from elsewhere: not on the embedded AWS

    @property
    def handler_file(self) -> Path:
        module, _, _ = self.handler.rpartition(".")
        return self.code_uri / f"{module.replace('.', '/')}.py"

    @property
    def handler_function(self) -> str:
        return self.handler.rpartition(".")[2]


@dataclass(frozen=True)
class AlarmSpec:
    """A ``put_metric_alarm`` request, as CloudFormation would send it."""

    request: dict[str, Any]

    @property
    def name(self) -> str:
        return str(self.request["AlarmName"])

    def for_version(self, target_version: str) -> dict[str, Any]:
        """The request with the version being deployed filled in (the per-version dimensions)."""
        text = json.dumps(self.request).replace(TARGET_VERSION, target_version)
        request: dict[str, Any] = json.loads(text)
        return request


@dataclass(frozen=True)
class Rule:
    """An EventBridge rule with one Lambda target (a SAM ``EventBridgeRule`` event)."""

    name: str
    pattern: (
        Mapping[str, Any] | str
    )  # an object, or JSON text (EventPattern is a string in AWS::Events::Rule)
    function_name: str

    def event_pattern(self) -> EventPattern:
        """moto's EventBridge matcher; raises InvalidEventPatternException for a pattern AWS rejects."""
        from moto.events.models import EventPattern  # noqa: PLC0415 - moto is heavy

        return EventPattern.load(self.pattern if isinstance(self.pattern, str) else json.dumps(self.pattern))


@dataclass(frozen=True)
class StateMachineSpec:
    name: str
    definition: dict[str, Any]  # DefinitionSubstitutions applied


@dataclass(frozen=True)
class Wiring:
    stage: str
    stack_name: str
    deployment_type: str  # e.g. Canary10Percent5Minutes
    function: FunctionSpec  # the guarded application function
    alias: str
    hooks: dict[str, str]  # lifecycle event (BeforeAllowTraffic…) → function name, in lifecycle order
    alarms: tuple[AlarmSpec, ...]  # the deployment group's alarms (ExecutedVersion resolved per release)
    functions: dict[str, FunctionSpec]  # every function by logical id
    rules: tuple[Rule, ...]
    state_machines: dict[str, StateMachineSpec] = field(default_factory=dict)
    alert_topic_name: str | None = None

    @property
    def deployment_config_name(self) -> str:
        return f"{DEPLOYMENT_CONFIG_PREFIX}{self.deployment_type}"


_HOOK_EVENTS = {"PreTraffic": "BeforeAllowTraffic", "PostTraffic": "AfterAllowTraffic"}


def read_wiring(
    template_path: Path,
    *,
    stage: str | None = None,
    parameters: Mapping[str, str] | None = None,
) -> Wiring:
    """The guarded application (the function with a ``DeploymentPreference``) and everything its
    deployments involve, with the template's parameters at their defaults unless ``parameters``
    (or ``stage``) says otherwise."""
    template = load_template(template_path)
    root = template_path.resolve().parent
    parameters = {**(parameters or {}), **({"Stage": stage} if stage else {})}
    stage_value = stage or str(template.get("Parameters", {}).get("Stage", {}).get("Default", "dev"))
    stack_name = f"deployguard-{stage_value}"
    candidates = [
        logical
        for logical, resource in template["Resources"].items()
        if resource.get("Type") == "AWS::Serverless::Function"
        and (resource.get("Properties") or {}).get("DeploymentPreference")
    ]
    if len(candidates) != 1:
        raise TemplateError(
            f"{template_path} must have exactly one function with a DeploymentPreference; "
            f"found {candidates or 'none'}"
        )
    (app_logical,) = candidates
    resolver = Resolver(
        template,
        parameters=parameters,
        stack_name=stack_name,
        attributes={f"{app_logical}.Version.Version": TARGET_VERSION},
    )
    functions = {
        logical: _function(resolver, logical, root)
        for logical, resource in template["Resources"].items()
        if resource.get("Type") in ("AWS::Serverless::Function",)
    }
    props = template["Resources"][app_logical]["Properties"]
    preference = resolver.resolve(props["DeploymentPreference"])
    declared = props["DeploymentPreference"].get("Hooks") or {}
    hooks = {}
    for key, lifecycle_event in _HOOK_EVENTS.items():
        ref = declared.get(key, {}).get("Ref") if isinstance(declared.get(key), dict) else None
        if ref in functions:
            hooks[lifecycle_event] = functions[ref].name
    alarms = []
    for entry in props["DeploymentPreference"].get("Alarms") or []:
        logical = entry.get("Ref") if isinstance(entry, dict) else None
        if not isinstance(logical, str):
            raise TemplateError("DeploymentPreference.Alarms must be !Ref of alarms in the template")
        alarms.append(_alarm(resolver, logical))
    topic = next(
        (
            str(resolver.resolve(r["Properties"].get("TopicName")))
            for r in template["Resources"].values()
            if r.get("Type") == "AWS::SNS::Topic" and (r.get("Properties") or {}).get("TopicName")
        ),
        None,
    )
    return Wiring(
        stage=stage_value,
        stack_name=stack_name,
        deployment_type=str(preference["Type"]),
        function=functions[app_logical],
        alias=str(resolver.resolve(props.get("AutoPublishAlias"))),
        hooks=hooks,
        alarms=tuple(alarms),
        functions=functions,
        rules=tuple(_rules(resolver, template)),
        state_machines=_state_machines(resolver, template, root),
        alert_topic_name=topic,
    )


def _globals(template: Mapping[str, Any]) -> dict[str, Any]:
    return dict((template.get("Globals") or {}).get("Function") or {})


_FUNCTION_KEYS = (
    "FunctionName",
    "CodeUri",
    "Handler",
    "Runtime",
    "Timeout",
    "MemorySize",
    "Environment",
    "Tracing",
    "Architectures",
    "LoggingConfig",
    "EventInvokeConfig",
    "Tags",
    "Layers",
)
"""What a rehearsal deploys of a function; its other properties (Events, Policies …) are never
resolved, so an intrinsic the rehearsal cannot evaluate there does not stop it."""


def _function(resolver: Resolver, logical: str, root: Path) -> FunctionSpec:
    raw = merge_globals(_globals(resolver.template), resolver.resources[logical].get("Properties") or {})
    props = {k: resolver.resolve(raw[k]) for k in _FUNCTION_KEYS if k in raw}
    environment = (props.get("Environment") or {}).get("Variables") or {}
    invoke_config = props.get("EventInvokeConfig") or {}
    tracing = props.get("Tracing")
    logging_config = props.get("LoggingConfig") or {}
    name = str(resolver.ref(logical))
    code_uri = props.get("CodeUri", "")
    if isinstance(code_uri, Mapping) or str(code_uri).startswith("s3://"):
        raise TemplateError(
            f"{logical}'s CodeUri {code_uri} is in S3: the rehearsal runs code from this machine; "
            "point CodeUri at the function's folder (or `sam build` it)"
        )
    architectures = props.get("Architectures", ["x86_64"])
    if not isinstance(architectures, list):
        raise TemplateError(f"{logical}'s Architectures {architectures!r} must be a list (e.g. [arm64])")
    layers, external_layers = _layers(resolver, props.get("Layers") or [], root)

    def number(key: str, default: int) -> int:
        value = props.get(key, default)
        try:
            return int(float(value))
        except (TypeError, ValueError, OverflowError):
            raise TemplateError(f"{logical}'s {key} {value!r} is not a number") from None

    return FunctionSpec(
        logical_id=logical,
        name=name,
        code_uri=(root / str(code_uri)).resolve(),
        handler=str(props.get("Handler", "app.handler")),
        runtime=str(props.get("Runtime", "python3.12")),
        timeout=number("Timeout", 3),
        memory_size=number("MemorySize", 128),
        environment={k: "" if v is None else str(v) for k, v in environment.items()},
        tracing=str(tracing) if tracing else None,
        architectures=tuple(architectures),
        log_group=str(logging_config.get("LogGroup") or f"/aws/lambda/{name}"),
        max_retry_attempts=int(invoke_config.get("MaximumRetryAttempts", 2)),
        tags={str(k): str(v) for k, v in (props.get("Tags") or {}).items()},
        layers=layers,
        external_layers=external_layers,
    )


def _layers(resolver: Resolver, layers: list[Any], root: Path) -> tuple[tuple[Path, ...], tuple[str, ...]]:
    """The folders (``ContentUri``) of the template's own layers among ``layers``, and the ARNs of
    the others (from elsewhere: not on the embedded AWS)."""
    own = [
        (logical, resource.get("Properties") or {})
        for logical, resource in resolver.resources.items()
        if resource.get("Type") in ("AWS::Serverless::LayerVersion", "AWS::Lambda::LayerVersion")
    ]
    folders: list[Path] = []
    external: list[str] = []
    for arn in layers:  # the first layer whose Ref it is (one whose name cannot be evaluated is not)
        props = next((p for logical, p in own if _ref_or_none(resolver, logical) == arn), None)
        if props is None:
            external.append(str(arn))
        else:
            content = props.get("ContentUri") or props.get("Content") or ""
            folders.append((root / str(resolver.resolve(content))).resolve())
    return tuple(folders), tuple(external)


def _ref_or_none(resolver: Resolver, logical: str) -> Any:
    try:
        return resolver.ref(logical)
    except TemplateError:
        return None


_ALARM_KEYS = (
    "AlarmName",
    "AlarmDescription",
    "ActionsEnabled",
    "Namespace",
    "MetricName",
    "Dimensions",
    "Statistic",
    "ExtendedStatistic",
    "Period",
    "Unit",
    "EvaluationPeriods",
    "DatapointsToAlarm",
    "Threshold",
    "ComparisonOperator",
    "TreatMissingData",
    "EvaluateLowSampleCountPercentile",
    "Metrics",
    "Tags",
)
_ALARM_NUMBERS = {"Threshold": float, "Period": int, "EvaluationPeriods": int, "DatapointsToAlarm": int}
"""PutMetricAlarm's numbers (its ``double`` and ``integer`` members), which a template may quote."""


def _alarm(resolver: Resolver, logical: str) -> AlarmSpec:
    resource = resolver.resources.get(logical) or {}
    if resource.get("Type") != "AWS::CloudWatch::Alarm":
        raise TemplateError(f"DeploymentPreference alarm {logical} is not an AWS::CloudWatch::Alarm")
    props = resolver.resolve(resource.get("Properties") or {})
    request = {key: props[key] for key in _ALARM_KEYS if key in props}
    request.setdefault("AlarmName", resolver.ref(logical))
    for key, number in _ALARM_NUMBERS.items():
        if key in request:
            request[key] = number(request[key])
    return AlarmSpec(request=request)


def _rules(resolver: Resolver, template: Mapping[str, Any]) -> list[Rule]:
    rules = []
    for logical, resource in template["Resources"].items():
        if resource.get("Type") != "AWS::Serverless::Function":
            continue
        for event_name, event in ((resource.get("Properties") or {}).get("Events") or {}).items():
            if event.get("Type") not in ("EventBridgeRule", "CloudWatchEvent"):
                continue
            props = resolver.resolve(event.get("Properties") or {})
            rules.append(
                Rule(
                    name=f"{resolver.stack_name}-{logical}{event_name}",
                    pattern=props.get("Pattern") or {},
                    function_name=str(resolver.ref(logical)),
                )
            )
    return rules


def _state_machines(
    resolver: Resolver, template: Mapping[str, Any], root: Path
) -> dict[str, StateMachineSpec]:
    machines = {}
    for logical, resource in template["Resources"].items():
        if resource.get("Type") != "AWS::Serverless::StateMachine":
            continue
        props = resource.get("Properties") or {}
        path = root / str(props.get("DefinitionUri", ""))
        if props.get("Definition") is not None:
            definition = resolver.resolve(props["Definition"])
        elif path.is_file():
            text = path.read_text(encoding="utf-8")
            for key, value in (resolver.resolve(props.get("DefinitionSubstitutions")) or {}).items():
                text = text.replace("${" + key + "}", str(value))
            definition = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
        else:
            continue  # not written yet: the bake workflow is then simply absent
        if (problem := _definition_problem(json.dumps(definition, sort_keys=True))) is not None:
            raise TemplateError(f"state machine {logical}: {problem}")
        name = str(resolver.ref(logical)).rsplit(":", 1)[-1]  # the name in the ARN its Ref gives
        machines[logical] = StateMachineSpec(name=name, definition=definition)
    return machines


@functools.lru_cache(maxsize=8)
def _definition_problem(definition: str) -> str | None:
    """Why moto's interpreter, as the rehearsal routes it, cannot run ``definition`` (None: it can)."""
    from deployguard_cli.localaws.moto_stepfunctions import DefinitionError, validate_definition  # noqa: PLC0415 - moto is heavy

    try:
        validate_definition(json.loads(definition))
    except DefinitionError as exc:
        return str(exc)
    return None
