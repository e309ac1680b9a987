"""template.yaml through aws-sam-translator's transform(): the CodeDeploy wiring SAM generates, the
guard functions' names and settings, least-privilege IAM derived from the adapters' source, the
embedded dashboard and queries, samconfig.toml and the example policies.

Everything is read from the sources (template, adapters, settings model, dashboard module,
policies), so none of them can drift from the others unnoticed. No network: the translator runs
with a managed-policy loader stub (tests/tools/transform.py).
"""

from __future__ import annotations

import ast
import fnmatch
import importlib.util
import json
import re
import tomllib
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any

import boto3
import cfnlint.api
import pytest
from samtranslator.yaml_helper import yaml_parse

from deployguard.appspec import parse_appspec
from deployguard.policy import application_document, effective_policy, load_baseline
from deployguard.settings import HookSettings
from deployguard.stages import APP_TAG, STAGE_TAG, Stage
from deployguard_cli.dashboard import QUERIES, dashboard_body
from scripts.locks import LAYER_LOCK, normalize, read_lock
from tests.tools import iam_lint
from tests.tools.resolve import ACCOUNT, PARTITION, REGION, Resolver
from tests.tools.transform import MANAGED_POLICIES, load_template, transformed

ROOT = Path(__file__).resolve().parents[2]
ADAPTERS = ROOT / "layers" / "deployguard" / "deployguard" / "aws"
STAGES = [stage.value for stage in Stage]

HOOKS = {
    "PreTrafficHookFunction": "BeforeAllowTrafficHook",
    "PostTrafficHookFunction": "AfterAllowTrafficHook",
}
GUARD_FUNCTIONS = (
    "PreTrafficHookFunction",
    "PostTrafficHookFunction",
    "BakeStepFunction",
    "AlarmRollbackFunction",
)
AUTO_ROLLBACK_EVENTS = {"DEPLOYMENT_FAILURE", "DEPLOYMENT_STOP_ON_ALARM", "DEPLOYMENT_STOP_ON_REQUEST"}

# Which adapter methods each guard role's function reaches (its domain code's ports). The AWS
# actions behind each method are read from the adapters' source below; the role must grant
# exactly those, plus writing its own logs and X-Ray segments.
ROLE_ADAPTER_METHODS: dict[str, set[str]] = {
    # deployguard.entrypoints.pre_traffic_hook: hook.py (status, report), pre_traffic.py, checks.py
    "PreTrafficHookRole": {
        "CodeDeploy.lifecycle_event_status",
        "CodeDeploy.resolve",
        "CodeDeploy.report",
        "Lambda.tags",
        "Lambda.snapshot",
        "Lambda.invoke",
        "ReferenceResolver.exists",
        "PolicyStore.load",
        "DeploymentRecords.record",
        "Sns.publish",
    },
    # post_traffic_hook: hook.py, post_traffic.evaluate_post_traffic (the versions' environments for
    # the redactor, alias smoke, watch.py, bake start)
    "PostTrafficHookRole": {
        "CodeDeploy.lifecycle_event_status",
        "CodeDeploy.resolve",
        "CodeDeploy.report",
        "Lambda.tags",
        "Lambda.environment",
        "Lambda.invoke",
        "PolicyStore.load",
        "Alarms.describe",
        "Alarms.describe_prefix",
        "Alarms.names_tagged",
        "Metrics.sums",
        "BakeWorkflow.start",
        "Sns.publish",
        "Lambda.version_arn",  # custom checks after traffic
        "Lambda.versions",  # version pruning
        "Lambda.aliases",
        "Lambda.delete_version",
    },
    # bake_step: bake_step.run_bake_step (resolve the deployment each poll, poll, the versions'
    # environments for the record's redactor, report)
    "BakeStepRole": {
        "CodeDeploy.resolve",
        "CodeDeploy.report",
        "Lambda.tags",
        "Lambda.environment",
        "PolicyStore.load",
        "Alarms.describe",
        "Alarms.describe_prefix",
        "Alarms.names_tagged",
        "Metrics.sums",
        "Sns.publish",
        "Lambda.versions",  # version pruning
        "Lambda.aliases",
        "Lambda.delete_version",
    },
    # alarm_rollback: alarm_rollback.handle_alarm_event (re-read the alarm; locate: the deployment
    # record, verified; restore.stop_and_restore; the versions' environments for the redactor)
    "AlarmRollbackRole": {
        "CodeDeploy.deployments",
        "CodeDeploy.resolve",
        "CodeDeploy.stop",
        "Lambda.tags",
        "Lambda.alias",
        "Lambda.point_alias",
        "Lambda.environment",
        "Alarms.alarm",
        "Alarms.tags",
        "PolicyStore.load_all",
        "DeploymentRecords.latest",
        "Sns.publish",
    },
}
INFRASTRUCTURE_ACTIONS = {
    "logs:CreateLogStream",
    "logs:PutLogEvents",
    "xray:PutTraceSegments",
    "xray:PutTelemetryRecords",
}
# Actions that support no resource-level permissions (Service Authorization Reference): the only
# ones a statement may grant on "*", in a statement whose Sid says so.
NO_RESOURCE_LEVEL = {
    "xray:PutTraceSegments",
    "xray:PutTelemetryRecords",
    "xray:GetSamplingRules",
    "xray:GetSamplingTargets",
    "cloudwatch:GetMetricData",
    "ssm:DescribeParameters",
    "codedeploy:ListDeploymentTargets",
    "codedeploy:GetDeploymentTarget",
    # No resource type in the Service Authorization Reference: a hook reports a status for any
    # lifecycle event it is invoked for; the rollback stops only what its own checks verified.
    "codedeploy:PutLifecycleEventHookExecutionStatus",
    "codedeploy:StopDeployment",
    "tag:GetResources",
}
READ_VERBS = ("Get", "List", "Describe", "BatchGet")
SERVICE_PREFIX = {"stepfunctions": "states", "resourcegroupstaggingapi": "tag"}
BOTO_TO_IAM = {("lambda", "Invoke"): "InvokeFunction", ("s3", "ListObjectsV2"): "ListBucket"}
CLIENT_SERVICES = {
    "CodeDeployClient": "codedeploy",
    "LambdaClient": "lambda",
    "SSMClient": "ssm",
    "SecretsManagerClient": "secretsmanager",
    "SNSClient": "sns",
    "CloudWatchClient": "cloudwatch",
    "SFNClient": "stepfunctions",
    "CloudWatchLogsClient": "logs",
    "TaggingClient": "resourcegroupstaggingapi",
    "DynamoDBClient": "dynamodb",
    "S3Client": "s3",
    "ResourceGroupsTaggingAPIClient": "resourcegroupstaggingapi",
}
# Powertools providers wrap a client: provider method → the API it calls.
PROVIDER_CALLS = {
    ("SSMProvider", "get"): ("ssm", "get_parameter"),
    ("S3DocumentProvider", "document"): ("s3", "get_object"),
}
# What an action needs besides itself: S3 answers a missing key with 404 (not 403) only to a caller
# that may list the bucket. (The bucket's SSE-KMS key is aws/s3, whose key policy grants its use
# through S3 to the account's principals: no kms:Decrypt grant.)
IMPLIED_ACTIONS = {"s3:GetObject": {"s3:ListBucket"}}


# --- loading ----------------------------------------------------------------------------------------


@cache
def raw() -> dict[str, Any]:
    return load_template()


@cache
def cfn() -> dict[str, Any]:
    return transformed(raw())


def resources(kind: str, template: dict[str, Any] | None = None) -> dict[str, dict[str, Any]]:
    source = cfn() if template is None else template
    return {name: r for name, r in source["Resources"].items() if r["Type"] == kind}


def resource(name: str) -> dict[str, Any]:
    found: dict[str, Any] = cfn()["Resources"][name]
    return found


def only(kind: str) -> tuple[str, dict[str, Any]]:
    found = resources(kind)
    assert len(found) == 1, f"expected one {kind}, found {sorted(found)}"
    return next(iter(found.items()))


def sub_text(value: Any) -> str:
    if isinstance(value, dict) and "Fn::Sub" in value:
        value = value["Fn::Sub"]
    if isinstance(value, list):
        value = value[0]
    assert isinstance(value, str), value
    return value


# --- the CodeDeploy wiring SAM generates -----------------------------------------------------------


def test_sam_creates_the_codedeploy_application_for_lambda() -> None:
    name, application = only("AWS::CodeDeploy::Application")
    assert name == "ServerlessDeploymentApplication"
    assert application["Properties"]["ComputePlatform"] == "Lambda"


def test_the_deployment_group_rolls_back_on_failure_alarm_and_request() -> None:
    _, group = only("AWS::CodeDeploy::DeploymentGroup")
    properties = group["Properties"]
    assert properties["ApplicationName"] == {"Ref": "ServerlessDeploymentApplication"}
    assert properties["AutoRollbackConfiguration"]["Enabled"] is True
    assert set(properties["AutoRollbackConfiguration"]["Events"]) == AUTO_ROLLBACK_EVENTS
    assert properties["AlarmConfiguration"]["Enabled"] is True
    assert properties["AlarmConfiguration"]["Alarms"] == [
        {"Name": {"Ref": "OrdersNewVersionErrorRateAlarm"}},
        {"Name": {"Ref": "OrdersNewVersionLatencyAlarm"}},
    ]
    assert properties["DeploymentConfigName"] == {
        "Fn::Sub": ["CodeDeployDefault.Lambda${ConfigName}", {"ConfigName": "Canary10Percent5Minutes"}]
    }
    assert properties["DeploymentStyle"] == {
        "DeploymentType": "BLUE_GREEN",
        "DeploymentOption": "WITH_TRAFFIC_CONTROL",
    }
    # our scoped service role, not SAM's generated CodeDeployServiceRole (AWSCodeDeployRoleForLambda)
    assert properties["ServiceRoleArn"] == {"Fn::GetAtt": ["OrdersDeploymentRole", "Arn"]}


@pytest.mark.parametrize(
    "deployment_type", ["AllAtOnce", "Linear10PercentEvery1Minute", "Canary10Percent30Minutes"]
)
def test_the_deployment_type_parameter_picks_the_codedeploy_config(deployment_type: str) -> None:
    # NOTE: SAM resolves DeploymentPreference.Type from the parameter values at transform time
    # (CloudFormation runs the transform with the stack's actual parameters).
    template = transformed(raw(), {"DeploymentType": deployment_type})
    (group,) = resources("AWS::CodeDeploy::DeploymentGroup", template).values()
    assert group["Properties"]["DeploymentConfigName"]["Fn::Sub"][1] == {"ConfigName": deployment_type}


def test_the_hooks_sit_on_the_alias_update_policy() -> None:
    name, alias = only("AWS::Lambda::Alias")
    assert name == "OrdersFunctionAliaslive"
    assert alias["Properties"]["Name"] == "live"
    update = alias["UpdatePolicy"]["CodeDeployLambdaAliasUpdate"]
    assert update["ApplicationName"] == {"Ref": "ServerlessDeploymentApplication"}
    assert update["DeploymentGroupName"] == {"Ref": "OrdersFunctionDeploymentGroup"}
    for function, hook in HOOKS.items():
        assert update[hook] == {"Ref": function}


@pytest.mark.parametrize("stage", STAGES)
def test_hook_functions_are_named_codedeployhook(stage: str) -> None:
    resolve = Resolver(stage, raw())
    alias = resource("OrdersFunctionAliaslive")["UpdatePolicy"]["CodeDeployLambdaAliasUpdate"]
    for hook in HOOKS.values():
        function = resource(alias[hook]["Ref"])
        name = resolve(function["Properties"]["FunctionName"])
        assert name.startswith("CodeDeployHook_"), (
            f"{hook} → {name}: CodeDeploy's role invokes CodeDeployHook_* only"
        )
        assert len(name) <= 64


def test_the_per_version_alarms_watch_the_version_sam_publishes() -> None:
    ((version_name, _),) = resources("AWS::Lambda::Version").items()
    assert version_name.startswith("OrdersFunctionVersion")
    expected = [
        {"Name": "FunctionName", "Value": {"Ref": "OrdersFunction"}},
        {"Name": "Resource", "Value": {"Fn::Sub": "${OrdersFunction}:live"}},
        {"Name": "ExecutedVersion", "Value": {"Fn::GetAtt": [version_name, "Version"]}},
    ]
    rate = resource("OrdersNewVersionErrorRateAlarm")["Properties"]
    stats = {m["Id"]: m["MetricStat"]["Metric"] for m in rate["Metrics"] if "MetricStat" in m}
    assert {m["MetricName"] for m in stats.values()} == {"Errors", "Invocations"}
    for metric in stats.values():
        assert metric["Namespace"] == "AWS/Lambda"
        assert metric["Dimensions"] == expected
    latency = resource("OrdersNewVersionLatencyAlarm")["Properties"]
    assert latency["Dimensions"] == expected
    assert latency["MetricName"] == "Duration"


def test_orders_deploys_config_only_changes_too() -> None:
    orders = raw()["Resources"]["OrdersFunction"]["Properties"]
    assert orders["AutoPublishAlias"] == "live"
    assert orders["AutoPublishAliasAllProperties"] is True
    assert orders["DeploymentPreference"]["Type"] == {"Ref": "DeploymentType"}


# --- functions, settings, logs ---------------------------------------------------------------------


@pytest.mark.parametrize("stage", STAGES)
def test_guard_environments_validate_against_the_settings_model(stage: str) -> None:
    resolve = Resolver(stage, raw())
    for name in GUARD_FUNCTIONS:
        variables = resolve(resource(name)["Properties"]["Environment"]["Variables"])
        settings = HookSettings.from_environ(variables)
        assert settings.stage.value == stage
        assert settings.policy_bucket == f"deployguard-{stage}-policies-{ACCOUNT}-{REGION}"
        assert settings.alert_topic_arn == f"arn:aws:sns:{REGION}:{ACCOUNT}:deployguard-{stage}-alerts"
        assert variables["POWERTOOLS_SERVICE_NAME"] == "deployguard"
        assert variables["POWERTOOLS_METRICS_NAMESPACE"] == "DeployGuard"
        assert variables["POWERTOOLS_LOG_LEVEL"] in {"DEBUG", "INFO"}
        timeout = int(resolve(resource(name)["Properties"]["Timeout"]))
        assert settings.time_reserve_seconds < timeout / 2, f"{name}: the reserve eats the timeout"
    post = resolve(resource("PostTrafficHookFunction")["Properties"]["Environment"]["Variables"])
    assert HookSettings.from_environ(post).bake_state_machine_arn == (
        f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:deployguard-{stage}-bake"
    )


@pytest.mark.parametrize("stage", STAGES)
def test_near_timeout_alarms_fire_at_80_percent_of_the_timeout(stage: str) -> None:
    config = raw()["Mappings"]["StageConfig"][stage]
    for hook in ("PreTraffic", "PostTraffic"):
        assert config[f"{hook}NearTimeoutMs"] == config[f"{hook}Timeout"] * 800


def test_every_function_traces_and_writes_to_its_own_log_group_with_retention() -> None:
    log_groups = resources("AWS::Logs::LogGroup")
    resolve = Resolver("prod", raw())
    for name, function in resources("AWS::Lambda::Function").items():
        properties = function["Properties"]
        assert properties["TracingConfig"] == {"Mode": "Active"}, name
        assert properties["Runtime"] == "python3.12", name
        group = properties["LoggingConfig"]["LogGroup"]["Ref"]
        assert (
            resolve(log_groups[group]["Properties"]["LogGroupName"])
            == f"/aws/lambda/{resolve(properties['FunctionName'])}"
        )
        assert "RetentionInDays" in log_groups[group]["Properties"]


def test_the_layer_ships_runtime_dependencies_only() -> None:
    layer = raw()["Resources"]["DeployGuardLayer"]
    assert layer["Properties"]["ContentUri"] == "layers/deployguard/"
    assert layer["Properties"]["CompatibleRuntimes"] == ["python3.12"]
    assert layer["Metadata"]["BuildMethod"] == "python3.12"
    # sam build installs the layer's packages from layers/deployguard/requirements.txt, the layer's
    # hash lock (make lock; tests/unit/test_supply_chain.py checks the locks themselves).
    asked = {
        normalize(re.split(r"[=<>!~\[ ;]", line.strip())[0])
        for line in (ROOT / "requirements" / "layer.in").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    assert asked == {"aws-lambda-powertools", "pydantic", "pyyaml", "google-re2"}
    shipped = {pin.name for pin in read_lock(LAYER_LOCK)}
    assert asked <= shipped
    assert not shipped & {"boto3", "botocore", "s3transfer", "moto", "pytest", "hypothesis", "rich"}
    for name in GUARD_FUNCTIONS:
        assert raw()["Resources"][name]["Properties"]["Layers"] == [{"Ref": "DeployGuardLayer"}]
    assert "Layers" not in raw()["Resources"]["OrdersFunction"]["Properties"]


ALARM_STATE_CHANGE = {
    "source": ["aws.cloudwatch"],
    "detail-type": ["CloudWatch Alarm State Change"],
    "detail": {"state": {"value": ["ALARM"]}},
}


def rule_pattern(prefixes: list[str]) -> dict[str, Any]:
    """The rollback rule's event pattern as CloudFormation resolves it for GuardedAlarmPrefixes."""
    _, rule = only("AWS::Events::Rule")
    condition, every, narrowed = rule["Properties"]["EventPattern"]["Fn::If"]
    assert raw()["Conditions"][condition] == {
        "Fn::Equals": [{"Fn::Join": ["", {"Ref": "GuardedAlarmPrefixes"}]}, ""]
    }
    if not "".join(prefixes):
        pattern: dict[str, Any] = every
        return pattern
    separator, (head, inner, tail) = narrowed["Fn::Join"]
    inner_separator, reference = inner["Fn::Join"]
    assert (separator, reference) == ("", {"Ref": "GuardedAlarmPrefixes"})
    text = separator.join([head, inner_separator.join(prefixes), tail])
    narrowed_pattern: dict[str, Any] = json.loads(text)  # EventPattern takes the JSON text
    return narrowed_pattern


def test_the_alarm_rule_sends_alarms_entering_alarm_to_the_rollback_function_with_a_dead_letter_queue() -> (
    None
):
    _, rule = only("AWS::Events::Rule")
    assert rule_pattern([""]) == ALARM_STATE_CHANGE  # the parameter's default: every alarm
    (target,) = rule["Properties"]["Targets"]
    assert target["Arn"] == {"Fn::GetAtt": ["AlarmRollbackFunction", "Arn"]}
    assert target["DeadLetterConfig"] == {"Arn": {"Fn::GetAtt": ["AlarmRollbackDeadLetterQueue", "Arn"]}}
    assert target["RetryPolicy"] == {"MaximumEventAgeInSeconds": 900, "MaximumRetryAttempts": 3}


def test_guarded_alarm_prefixes_narrow_the_rule_to_those_alarm_names() -> None:
    parameter = raw()["Parameters"]["GuardedAlarmPrefixes"]
    assert (parameter["Type"], parameter["Default"]) == ("CommaDelimitedList", "")
    assert not re.fullmatch(parameter["AllowedPattern"], 'a"b') and not re.fullmatch(
        parameter["AllowedPattern"], "a\\b"
    ), "a quote or backslash would break the JSON pattern"

    pattern = rule_pattern(["deployguard-prod-orders-", "payments-"])

    assert pattern == {
        **ALARM_STATE_CHANGE,
        "detail": {
            "state": {"value": ["ALARM"]},
            "alarmName": [{"prefix": "deployguard-prod-orders-"}, {"prefix": "payments-"}],
        },
    }


def test_undelivered_alarm_events_are_kept_and_alarmed_on() -> None:
    queue = resource("AlarmRollbackDeadLetterQueue")["Properties"]
    assert queue["MessageRetentionPeriod"] == 1209600 and queue["SqsManagedSseEnabled"] is True
    (statement,) = resource("AlarmRollbackDeadLetterQueuePolicy")["Properties"]["PolicyDocument"]["Statement"]
    assert statement["Principal"] == {"Service": "events.amazonaws.com"}
    assert statement["Action"] == "sqs:SendMessage"
    rule, _ = only("AWS::Events::Rule")
    assert statement["Condition"] == {"ArnEquals": {"aws:SourceArn": {"Fn::GetAtt": [rule, "Arn"]}}}
    alarm = resource("AlarmRollbackDeadLetterAlarm")["Properties"]
    assert (alarm["Namespace"], alarm["MetricName"]) == ("AWS/SQS", "ApproximateNumberOfMessagesVisible")
    assert alarm["Dimensions"] == [
        {"Name": "QueueName", "Value": {"Fn::GetAtt": ["AlarmRollbackDeadLetterQueue", "QueueName"]}}
    ]
    assert (alarm["ComparisonOperator"], alarm["Threshold"]) == ("GreaterThanOrEqualToThreshold", 1)
    assert alarm["AlarmActions"] == [{"Ref": "AlertTopic"}]


@pytest.mark.parametrize(("concurrency", "reserved"), [("5", True), ("0", False)])
def test_the_rollback_function_has_reserved_concurrency_unless_set_to_0(
    concurrency: str, reserved: bool
) -> None:
    assert raw()["Parameters"]["AlarmRollbackConcurrency"]["Default"] == 5
    resolve = Resolver("prod", raw())
    resolve.parameters["AlarmRollbackConcurrency"] = concurrency
    condition, when, otherwise = resource("AlarmRollbackFunction")["Properties"][
        "ReservedConcurrentExecutions"
    ]["Fn::If"]
    assert (when, otherwise) == ({"Ref": "AlarmRollbackConcurrency"}, {"Ref": "AWS::NoValue"})
    assert resolve.condition(condition) is reserved


def test_the_bake_workflow_is_a_standard_state_machine_over_the_bake_step() -> None:
    machine = raw()["Resources"]["BakeStateMachine"]["Properties"]
    assert machine["Type"] == "STANDARD"
    assert machine["DefinitionUri"] == "statemachine/bake.asl.json"
    assert machine["DefinitionSubstitutions"] == {
        "BakeStepFunctionArn": {"Fn::GetAtt": ["BakeStepFunction", "Arn"]}
    }
    definition = ROOT / "statemachine" / "bake.asl.json"
    if definition.exists():
        text = definition.read_text()
        json.loads(text)
        assert set(re.findall(r"\$\{(\w+)\}", text)) == set(machine["DefinitionSubstitutions"])


def _lambda_arn(pattern: str) -> str:
    """A resolved resource as an ARN pattern: the resolver gives a function's GetAtt as '<name>.Arn'."""
    name, dot_arn, qualifier = pattern.partition(".Arn")
    return f"arn:{PARTITION}:lambda:{REGION}:{ACCOUNT}:function:{name}{qualifier}" if dot_arn else pattern


def _grants(template: dict[str, Any], stage: str, action: str) -> dict[str, dict[str, list[str]]]:
    """role → {'Allow': [ARN patterns], 'Deny': [...]} of every statement (of the transformed
    template) naming ``action`` or a wildcard over it, resolved for ``stage`` with ``template``'s
    parameters as CloudFormation would."""
    resolve = Resolver(stage, template)
    service = action.split(":", 1)[0]
    found: dict[str, dict[str, list[str]]] = {}
    for role, statement in statements():
        actions = as_list(statement["Action"])
        if not any(fnmatch.fnmatchcase(action, a) or a in ("*", f"{service}:*") for a in actions):
            continue
        arns = [_lambda_arn(str(arn)) for arn in as_list(resolve(statement["Resource"]))]
        found.setdefault(role, {"Allow": [], "Deny": []})[statement["Effect"]] += arns
    return found


def _may(grants: dict[str, list[str]], arn: str) -> bool:
    def covered(patterns: list[str]) -> bool:
        return any(fnmatch.fnmatchcase(arn, p) for p in patterns)

    return covered(grants["Allow"]) and not covered(grants["Deny"])


@pytest.mark.parametrize("stage", [s.value for s in Stage])
@pytest.mark.parametrize("guarded", ["", "*", "*bake*"])
def test_only_the_bake_workflow_may_invoke_the_bake_step(stage: str, guarded: str) -> None:
    """The bake step reports a deployment's status from the state it is given: only the state
    machine's role may hand it one (a hook's smoke-test grant on guarded functions never reaches it,
    whatever GuardedFunctionPattern says), and no resource policy lets anyone else in."""
    template = json.loads(json.dumps(raw()))  # the resolver reads parameters and names from it
    template["Parameters"]["GuardedFunctionPattern"]["Default"] = guarded
    step = f"arn:{PARTITION}:lambda:{REGION}:{ACCOUNT}:function:deployguard-{stage}-bake-step"
    invokers = {
        role
        for role, grants in _grants(template, stage, "lambda:InvokeFunction").items()
        if _may(grants, step) or _may(grants, f"{step}:live")
    }
    assert invokers == {"BakeStateMachineRole"}
    assert not [
        name
        for name, permission in resources("AWS::Lambda::Permission").items()
        if "BakeStepFunction" in json.dumps(permission["Properties"]["FunctionName"])
    ]


@pytest.mark.parametrize("stage", [s.value for s in Stage])
def test_only_the_post_traffic_hook_may_start_the_bake_workflow(stage: str) -> None:
    machine = f"arn:{PARTITION}:states:{REGION}:{ACCOUNT}:stateMachine:deployguard-{stage}-bake"
    starters = {
        role: grants["Allow"]
        for role, grants in _grants(raw(), stage, "states:StartExecution").items()
        if _may(grants, machine)
    }
    assert starters == {"PostTrafficHookRole": [machine]}
    trust = resource("BakeStateMachineRole")["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    assert [s["Principal"] for s in trust] == [{"Service": "states.amazonaws.com"}]


def test_outputs_are_exported_for_other_stacks() -> None:
    outputs = raw()["Outputs"]
    for name in (
        "PreTrafficHookArn",
        "PostTrafficHookArn",
        "PreTrafficHookName",
        "PostTrafficHookName",
        "LayerArn",
        "AlertTopicArn",
    ):
        assert outputs[name]["Export"]["Name"] == {"Fn::Sub": f"${{AWS::StackName}}-{name}"}


# --- IAM ---------------------------------------------------------------------------------------------


def statements() -> Iterator[tuple[str, dict[str, Any]]]:
    """Every statement of every identity policy in the transformed template."""
    for name, role in resources("AWS::IAM::Role").items():
        for policy in role["Properties"].get("Policies", []):
            for statement in policy["PolicyDocument"]["Statement"]:
                yield name, statement
    for kind in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"):
        for name, item in resources(kind).items():
            for statement in item["Properties"]["PolicyDocument"]["Statement"]:
                yield name, statement


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def resource_strings(value: Any) -> list[str]:
    """Resource ARN templates of a statement, both branches of an Fn::If; Ref/GetAtt → '<Name>'."""
    found: list[str] = []
    for item in as_list(value):
        if isinstance(item, str):
            found.append(item)
        elif "Fn::If" in item:
            found += resource_strings(item["Fn::If"][1]) + resource_strings(item["Fn::If"][2])
        elif "Fn::Sub" in item:
            found.append(sub_text(item))
        elif "Ref" in item or "Fn::GetAtt" in item:
            found.append(f"<{item.get('Ref') or item['Fn::GetAtt'][0]}>")
        else:
            raise AssertionError(f"unexpected resource {item}")
    return found


def is_write(action: str) -> bool:
    return not action.split(":", 1)[1].startswith(READ_VERBS)


def scoped(arn: str) -> bool:
    """A resource of this stack, or an ARN whose resource part names the stage, a pattern parameter
    or a literal name: never every resource of a type in the account."""
    if arn.startswith("<") or re.match(r"^\$\{[A-Za-z0-9]+\.Arn\}(:\*)?$", arn):
        return True
    parts = arn.split(":", 5)
    if len(parts) < 6:
        return False
    kind, _, name = parts[5].replace("/", ":", 1).partition(":")
    if "${Stage}" in name or "${Guarded" in name:
        return True
    return len(re.sub(r"\$\{[^}]+\}|[*?/:]", "", name or kind)) >= 3 and "*" not in (name or kind)[:1]


def test_no_role_uses_managed_policies() -> None:
    for name, role in resources("AWS::IAM::Role").items():
        assert not role["Properties"].get("ManagedPolicyArns"), (
            f"{name}: managed policies (e.g. {sorted(MANAGED_POLICIES)}) carry '*' write actions; use inline statements"
        )


def test_no_allow_statement_grants_a_write_action_on_a_wildcard_resource() -> None:
    checked = 0
    for role, statement in statements():
        if statement["Effect"] != "Allow":
            continue
        actions = as_list(statement["Action"])
        arns = resource_strings(statement["Resource"])
        assert "*" not in {a.split(":", 1)[-1] for a in actions}, f"{role}: wildcard action {actions}"
        if "*" in arns:
            assert arns == ["*"] and set(actions) <= NO_RESOURCE_LEVEL, (
                f"{role} {statement.get('Sid')}: '*' only for actions without resource-level permissions"
            )
            assert "NoResourceLevelPermissions" in statement.get("Sid", ""), f"{role}: say why '*' in the Sid"
            continue
        for action in actions:
            if is_write(action):
                checked += 1
                for arn in arns:
                    assert scoped(arn) or stage_tagged(statement), (
                        f"{role} {statement.get('Sid')}: {action} on {arn}"
                    )
    assert checked > 10


def stage_tagged(statement: dict[str, Any]) -> bool:
    """The statement applies only to resources tagged deployguard:stage=<Stage> (attribute-based)."""
    equals = statement.get("Condition", {}).get("StringEquals", {})
    return bool(equals.get("aws:ResourceTag/deployguard:stage") == {"Ref": "Stage"})


def test_every_lambda_action_on_guarded_functions_requires_the_stage_tag() -> None:
    """Scope by tag: a guard role reads, invokes or repoints a function only when it is tagged
    deployguard:stage=<Stage>; ListTags alone is unconditioned (the guard reads the tag to judge
    scope). Nothing depends on a function's name."""
    checked = 0
    for role, statement in statements():
        arns = resource_strings(statement["Resource"])
        if statement["Effect"] != "Allow" or not any(":function:*" in arn for arn in arns):
            continue
        if as_list(statement["Action"]) == ["lambda:ListTags"]:
            assert "Condition" not in statement, role
            continue
        checked += 1
        assert stage_tagged(statement), f"{role} {statement.get('Sid')}: no deployguard:stage condition"
        assert not any("${Stage}" in arn for arn in arns), f"{role}: a name pattern is not the scope"
    assert checked == 7


def test_the_hooks_can_report_a_status_for_any_deployment() -> None:
    """An application outside any naming pattern still gets its status: CodeDeploy never waits out
    its hour because the hook's report was denied."""
    for role in ("PreTrafficHookRole", "PostTrafficHookRole", "BakeStepRole"):
        (resources,) = [
            resource_strings(statement["Resource"])
            for name, statement in statements()
            if name == role
            and "codedeploy:PutLifecycleEventHookExecutionStatus" in as_list(statement["Action"])
        ]
        assert resources == ["*"], role


def test_deployguard_never_invokes_or_repoints_its_own_functions() -> None:
    denied: dict[str, set[str]] = {}
    for role, statement in statements():
        if statement["Effect"] == "Deny":
            for action in as_list(statement["Action"]):
                denied.setdefault(role, set()).add(action)
                assert any("CodeDeployHook_*" in arn for arn in resource_strings(statement["Resource"]))
    assert denied == {
        "PreTrafficHookRole": {"lambda:InvokeFunction"},
        "PostTrafficHookRole": {"lambda:InvokeFunction"},
        "AlarmRollbackRole": {"lambda:UpdateAlias"},
    }


def granted(role: str) -> set[str]:
    return {
        action
        for name, statement in statements()
        if name == role and statement["Effect"] == "Allow"
        for action in as_list(statement["Action"])
    }


@cache
def operation_names(service: str) -> dict[str, str]:
    client = boto3.client(service, region_name=REGION, aws_access_key_id="x", aws_secret_access_key="x")  # type: ignore[call-overload]
    mapping: dict[str, str] = client.meta.method_to_api_mapping
    return mapping


def iam_action(service: str, method: str) -> str:
    operation = operation_names(service)[method]
    return f"{SERVICE_PREFIX.get(service, service)}:{BOTO_TO_IAM.get((service, operation), operation)}"


def _annotation_names(node: ast.expr | None) -> set[str]:
    return (
        {n.id for n in ast.walk(node) if isinstance(n, ast.Name)}
        | {n.value for n in ast.walk(node) if isinstance(n, ast.Constant) and isinstance(n.value, str)}
        if node is not None
        else set()
    )


def _client_attributes(init: ast.FunctionDef) -> dict[str, tuple[str, str | None]]:
    """self.<attribute> → (service, provider class or None), from __init__'s annotated parameters."""
    parameters = {a.arg: _annotation_names(a.annotation) for a in init.args.args + init.args.kwonlyargs}
    services = {
        name: next((CLIENT_SERVICES[t] for t in types if t in CLIENT_SERVICES), None)
        for name, types in parameters.items()
    }
    attributes: dict[str, tuple[str, str | None]] = {}
    for node in ast.walk(init):
        if not (isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Attribute)):
            continue
        target = node.targets[0].attr
        if isinstance(node.value, ast.Call) and isinstance(node.value.func, ast.Name):
            provider = node.value.func.id
            for name in (n.id for n in ast.walk(node.value) if isinstance(n, ast.Name)):
                if services.get(name):
                    attributes[target] = (str(services[name]), provider)
            continue
        for name in (n.id for n in ast.walk(node.value) if isinstance(n, ast.Name)):
            if services.get(name):
                attributes[target] = (str(services[name]), None)
                break
    return attributes


def _client_attribute(node: ast.expr) -> str | None:
    """'x' for ``self.x`` or ``self.x()`` (a client, or a factory that makes one)."""
    node = node.func if isinstance(node, ast.Call) else node
    if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "self":
        return node.attr
    return None


def _local_clients(method: ast.FunctionDef) -> dict[str, str]:
    """Local names bound to a client: ``client = self._tagging()`` → {'client': '_tagging'}."""
    found: dict[str, str] = {}
    for node in ast.walk(method):
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            attribute = _client_attribute(node.value)
            if attribute:
                found[node.targets[0].id] = attribute
    return found


def _api_of(call: ast.Call, clients: dict[str, tuple[str, str | None]], local: dict[str, str]) -> str | None:
    """The IAM action of ``self.<client>.<method>(…)``, ``self.<client>().<method>(…)`` or
    ``<local client>.<method>(…)``, if the call is one."""
    func = call.func
    if not isinstance(func, ast.Attribute):
        return None
    receiver = func.value
    attribute = local.get(receiver.id) if isinstance(receiver, ast.Name) else _client_attribute(receiver)
    if attribute not in clients:
        return None
    service, provider = clients[str(attribute)]
    if provider is not None:
        service, method = PROVIDER_CALLS.get((provider, func.attr), (service, func.attr))
        return iam_action(service, method)
    return iam_action(service, func.attr)


def _self_calls(method: ast.FunctionDef) -> set[str]:
    return {
        call.func.attr
        for call in ast.walk(method)
        if isinstance(call, ast.Call)
        and isinstance(call.func, ast.Attribute)
        and isinstance(call.func.value, ast.Name)
        and call.func.value.id == "self"
    }


@cache
def adapter_actions() -> dict[str, set[str]]:
    """'Class.method' → IAM actions it calls, read from the adapters' source (helper methods included)."""
    direct: dict[str, set[str]] = {}
    helpers: dict[str, set[str]] = {}
    for path in sorted(ADAPTERS.glob("*.py")):
        for cls in (n for n in ast.parse(path.read_text()).body if isinstance(n, ast.ClassDef)):
            methods = {m.name: m for m in cls.body if isinstance(m, ast.FunctionDef)}
            if "__init__" not in methods:
                continue
            clients = _client_attributes(methods["__init__"])
            for name, method in methods.items():
                local = _local_clients(method)
                calls = (_api_of(c, clients, local) for c in ast.walk(method) if isinstance(c, ast.Call))
                direct[f"{cls.name}.{name}"] = {action for action in calls if action}
                helpers[f"{cls.name}.{name}"] = {f"{cls.name}.{other}" for other in _self_calls(method)}
    closed: dict[str, set[str]] = {}
    for key in direct:
        seen: set[str] = set()
        todo = [key]
        while todo:
            current = todo.pop()
            if current not in seen and current in direct:
                seen.add(current)
                todo += helpers[current]
        closed[key] = set().union(*(direct[m] for m in seen))
    return closed


def test_the_adapter_reader_sees_the_calls_we_know_of() -> None:
    actions = adapter_actions()
    assert actions["CodeDeploy.report"] == {"codedeploy:PutLifecycleEventHookExecutionStatus"}
    assert actions["Lambda.invoke"] == {"lambda:InvokeFunction"}
    assert actions["PolicyStore.load"] == {"s3:GetObject"}
    assert actions["PolicyStore.load_all"] == {"s3:GetObject", "s3:ListBucket"}
    assert {"codedeploy:GetDeployment", "codedeploy:GetApplicationRevision"} <= actions["CodeDeploy.resolve"]


@pytest.mark.parametrize("role", sorted(ROLE_ADAPTER_METHODS))
def test_each_role_grants_exactly_what_its_adapters_call(role: str) -> None:
    actions = adapter_actions()
    unknown = sorted(m for m in ROLE_ADAPTER_METHODS[role] if m not in actions)
    assert not unknown, f"{role}: no such adapter method {unknown} in {ADAPTERS}"
    needed = set().union(*(actions[m] for m in ROLE_ADAPTER_METHODS[role]))
    needed |= set().union(*(IMPLIED_ACTIONS.get(a, set()) for a in needed))
    assert granted(role) - INFRASTRUCTURE_ACTIONS == needed


def test_codedeploy_may_invoke_only_the_two_hooks_and_shift_only_the_orders_alias() -> None:
    role = resource("OrdersDeploymentRole")["Properties"]
    assert role["AssumeRolePolicyDocument"]["Statement"][0]["Principal"] == {
        "Service": "codedeploy.amazonaws.com"
    }
    (policy,) = role["Policies"]
    by_sid = {s["Sid"]: s for s in policy["PolicyDocument"]["Statement"]}
    assert by_sid["InvokeHooks"]["Resource"] == [
        {"Fn::GetAtt": [name, "Arn"]} for name in ("PreTrafficHookFunction", "PostTrafficHookFunction")
    ]
    shift = [sub_text(r) for r in by_sid["ShiftOrdersAlias"]["Resource"]]
    assert all(":function:deployguard-${Stage}-orders" in arn for arn in shift)


# --- the offline IAM lint (make iam-lint: parliament over tests/tools/iam_lint.py's policies) ------


def test_the_iam_lint_sees_every_policy_as_concrete_arns() -> None:
    """parliament judges ARNs, not intrinsics: every statement of every role's policy reaches it,
    for every stage, with every Resource resolved to an ARN of this account (or '*')."""
    linted = iam_lint.policies(cfn())
    where = {policy.where.split(": ", 1)[1].split("/", 1)[0] for policy in linted}
    roles_with_policies = {
        name for name, role in resources("AWS::IAM::Role").items() if role["Properties"].get("Policies")
    }
    assert roles_with_policies <= where
    for stage in STAGES:
        assert any(policy.where.startswith(f"{stage}, ") for policy in linted)
    for policy in linted:
        for statement in as_list(policy.document["Statement"]):
            for arn in as_list(statement.get("Resource", [])):
                assert isinstance(arn, str), f"{policy.where}: unresolved {arn}"
                concrete = arn.startswith(f"arn:{PARTITION}:") and f":{ACCOUNT}:" in arn and "${" not in arn
                # an S3 ARN names no account: the stage's policy bucket has the account in its name
                concrete |= arn.startswith(f"arn:{PARTITION}:s3:::deployguard-") and f"-{ACCOUNT}-" in arn
                assert arn == "*" or concrete, f"{policy.where}: {arn}"


@pytest.mark.parametrize(
    ("arn", "unbounded"),
    [
        ("*", True),
        (f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:*", True),
        (f"arn:aws:lambda:*:{ACCOUNT}:function:deployguard-dev-orders", True),
        (f"arn:aws:sns:{REGION}:{ACCOUNT}:*", True),
        (f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:*-dev-*", False),
        (f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:/aws/lambda/deployguard-dev-orders:*", False),
        (f"arn:aws:sns:{REGION}:{ACCOUNT}:deployguard-dev-alerts", False),
    ],
)
def test_the_iam_lint_knows_a_wildcard_resource(arn: str, unbounded: bool) -> None:
    assert iam_lint.unbounded(arn) is unbounded


def test_every_iam_lint_suppression_names_an_action_we_grant_and_says_why() -> None:
    granted_anywhere = {action for _, statement in statements() for action in as_list(statement["Action"])}
    for (issue, action), reason in iam_lint.SUPPRESSED.items():
        assert re.fullmatch(r"[A-Z_]+", issue)
        assert action in granted_anywhere, f"stale suppression: nothing grants {action}"
        assert len(reason) >= 120, f"say why {issue} for {action} is not a defect"
    documented = (ROOT / "docs" / "deploying.md").read_text()
    for _, action in iam_lint.SUPPRESSED:
        assert action in documented, f"docs/deploying.md does not list the suppression for {action}"


# --- dashboard and saved queries -------------------------------------------------------------------


def _render_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "render_template_parts", ROOT / "scripts" / "render_template_parts.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_generated_part_of_the_template_is_up_to_date() -> None:
    text = (ROOT / "template.yaml").read_text()
    assert _render_script().render(text) == text, "run `make render`"


def test_the_dashboard_is_exactly_what_the_code_builds() -> None:
    script = _render_script()
    dashboard = raw()["Resources"][script.DASHBOARD_LOGICAL_ID]["Properties"]
    assert json.loads(sub_text(dashboard["DashboardBody"])) == dashboard_body(**script.DASHBOARD_OPTIONS)
    names = [sub_text(raw()["Resources"][g]["Properties"]["LogGroupName"]) for g in script.GUARD_LOG_GROUPS]
    assert list(script.DASHBOARD_OPTIONS["log_groups"]) == names


def test_the_saved_queries_are_exactly_the_codes_queries() -> None:
    definitions = resources("AWS::Logs::QueryDefinition", raw())
    by_name = {
        sub_text(d["Properties"]["Name"]).rsplit("/", 1)[-1]: d["Properties"] for d in definitions.values()
    }
    assert set(by_name) == set(QUERIES)
    for name, query in QUERIES.items():
        assert by_name[name]["QueryString"] == query
        assert by_name[name]["LogGroupNames"] == [{"Ref": g} for g in _render_script().GUARD_LOG_GROUPS]


# --- samconfig and the example policies -----------------------------------------------------------


def test_samconfig_deploys_each_stage_as_its_own_stack() -> None:
    config = tomllib.loads((ROOT / "samconfig.toml").read_text())
    stacks = set()
    for stage in STAGES:
        deploy = config[stage]["deploy"]["parameters"]
        assert deploy["stack_name"] == f"deployguard-{stage}"
        assert f"Stage={stage}" in deploy["parameter_overrides"].split()
        assert "CAPABILITY_IAM" in deploy["capabilities"]
        assert deploy["confirm_changeset"] is (stage == "prod")
        stacks.add(deploy["stack_name"])
        match = re.search(r"DeploymentType=(\S+)", deploy["parameter_overrides"])
        assert match and match.group(1) in raw()["Parameters"]["DeploymentType"]["AllowedValues"]
    assert len(stacks) == len(STAGES)


@pytest.mark.parametrize("stage", STAGES)
def test_the_stage_policy_is_valid_and_names_this_templates_resources(stage: str) -> None:
    baseline = load_baseline((ROOT / "policies" / stage / "baseline.yaml").read_text(), stage=Stage(stage))
    properties = raw()["Resources"]["OrdersFunction"]["Properties"]
    application = properties["Tags"][APP_TAG]  # the document the hooks read for the function
    path = ROOT / "policies" / stage / "apps" / f"{application}.yaml"
    document = application_document(path.read_text(), str(path))
    policy = effective_policy(baseline, document, str(path), application=application, stage=Stage(stage))
    resolve = Resolver(stage, raw())
    orders = resolve(properties["FunctionName"])
    assert policy.for_function(orders) is not None, f"{path} does not guard {orders}"
    alarms = {
        resolve(a["Properties"]["AlarmName"]) for a in resources("AWS::CloudWatch::Alarm", raw()).values()
    }
    for entry in policy.functions.values():
        if entry.alarms is None:
            continue
        for name in entry.alarms.select.names:
            assert name in alarms, f"{path}: alarm {name} is not in template.yaml"
        for prefix in entry.alarms.select.prefixes:
            assert any(fnmatch.fnmatchcase(a, prefix + "*") for a in alarms), (
                f"{path}: prefix {prefix} selects nothing"
            )
        database = resolve(raw()["Mappings"]["StageConfig"][stage]["OrdersDatabaseUrl"])
        for rule in entry.config.rules:
            if rule.variable == "DATABASE_URL":
                assert any(re.search(p, database) for p in rule.allow) or not rule.allow
                assert not any(re.search(p, database) for p in rule.deny)


# --- README.md and docs/attach.md: the copy-paste snippets work --------------------------------------------------------------

SNIPPET_DOCS = ("README.md", "docs/attach.md")


def snippets() -> dict[str, str]:
    found: dict[str, str] = {}
    for doc in SNIPPET_DOCS:
        text = (ROOT / doc).read_text()
        for body, name in re.findall(r"```yaml\n(# snippet: ([\w-]+)\n.*?)```", text, re.S):
            assert name not in found, f"{doc}: a second snippet named {name}"
            found[name] = body
    return found


def test_the_docs_hold_every_tested_snippet() -> None:
    assert set(snippets()) == {"sam-quickstart", "sam-app", "cloudformation", "appspec"}


@pytest.mark.parametrize("name", ["sam-quickstart", "sam-app"])
def test_the_sam_snippet_puts_the_imported_hooks_on_its_alias(name: str) -> None:
    outputs = raw()["Outputs"]
    template = transformed(yaml_parse(snippets()[name]))
    (alias,) = resources("AWS::Lambda::Alias", template).values()
    update = alias["UpdatePolicy"]["CodeDeployLambdaAliasUpdate"]
    for hook, output in (
        ("BeforeAllowTrafficHook", "PreTrafficHookName"),
        ("AfterAllowTrafficHook", "PostTrafficHookName"),
    ):
        assert update[hook] == {"Fn::ImportValue": f"deployguard-prod-{output}"}
        assert outputs[output]["Value"] == {"Ref": output.replace("Name", "Function")}


@pytest.mark.parametrize("name", ["sam-quickstart", "sam-app", "cloudformation"])
def test_every_attach_snippet_tags_its_function_with_the_stage(name: str) -> None:
    """The scope is the tag: a snippet without it would attach a function DeployGuard then
    treats as unguarded."""
    template = (
        transformed(yaml_parse(snippets()[name])) if name.startswith("sam") else yaml_parse(snippets()[name])
    )
    (function,) = resources("AWS::Lambda::Function", template).values()
    tags = {tag["Key"]: tag["Value"] for tag in function["Properties"]["Tags"]}
    assert tags[STAGE_TAG] == "prod"
    assert tags["deployguard:app"] == "payments"


def test_the_example_app_is_tagged_for_the_stack_stage() -> None:
    tags = raw()["Resources"]["OrdersFunction"]["Properties"]["Tags"]
    assert tags == {STAGE_TAG: {"Ref": "Stage"}, "deployguard:app": "orders"}


@pytest.mark.parametrize(
    ("parameters", "deployed"),
    [
        ({}, True),  # dev, auto
        ({"Stage": "prod"}, False),
        ({"Stage": "staging"}, False),
        ({"Stage": "prod", "ExampleApp": "true"}, True),
        ({"ExampleApp": "false"}, False),
    ],
)
def test_the_example_app_deploys_in_dev_only_unless_told(parameters: dict[str, str], deployed: bool) -> None:
    """Every resource of the example app (function, alias, version, alarms, roles, log group, its
    CodeDeploy application and group, its output) is behind DeployExampleApp, and nothing else
    refers to one of them."""
    template = cfn()
    example = {name for name, r in template["Resources"].items() if r.get("Condition") == "DeployExampleApp"}
    assert {"OrdersFunction", "OrdersFunctionAliaslive", "OrdersNewVersionErrorRateAlarm"} <= example
    assert {"ServerlessDeploymentApplication", "OrdersFunctionDeploymentGroup"} <= example
    assert {r["Type"] for name, r in template["Resources"].items() if name in example} >= {
        "AWS::Lambda::Function",
        "AWS::Lambda::Version",
        "AWS::Lambda::Alias",
        "AWS::CloudWatch::Alarm",
        "AWS::IAM::Role",
        "AWS::Logs::LogGroup",
        "AWS::CodeDeploy::Application",
        "AWS::CodeDeploy::DeploymentGroup",
    }
    for name, r in template["Resources"].items():
        if name not in example:
            text = json.dumps(r)
            assert not any(f'"{other}"' in text or f"${{{other}" in text for other in example), name
    assert template["Outputs"]["OrdersLiveAlias"]["Condition"] == "DeployExampleApp"
    resolve = Resolver(parameters.get("Stage", "dev"), template, parameters)
    assert resolve.condition("DeployExampleApp") is deployed


def test_the_cloudformation_snippet_passes_cfn_lint() -> None:
    matches = cfnlint.api.lint(snippets()["cloudformation"], regions=[REGION])
    assert not matches, "\n".join(str(m) for m in matches)


@pytest.mark.parametrize("stage", ["prod"])
def test_the_appspec_snippet_names_the_hooks_and_parses(stage: str) -> None:
    text = snippets()["appspec"]
    target = parse_appspec(text)
    assert (target.function_name, target.alias, target.current_version, target.target_version) == (
        "payments-prod-api",
        "live",
        "7",
        "8",
    )
    resolve = Resolver(stage, raw())
    for function in HOOKS:
        assert resolve(raw()["Resources"][function]["Properties"]["FunctionName"]) in text


def test_the_release_pipeline_tests_then_deploys_each_stage_after_publishing_its_policy() -> None:
    workflow = yaml_parse((ROOT / ".github" / "workflows" / "release.yml").read_text())
    jobs = workflow["jobs"]
    assert "make test" in [step.get("run") for step in jobs["test"]["steps"]]
    previous = "test"
    for stage in STAGES:
        job = jobs[f"deploy-{stage}"]
        assert job["needs"] == previous, "each stage runs only after the previous one succeeded"
        assert job["environment"] == stage
        runs = [step.get("run", "") for step in job["steps"]]
        # the CLI and aws-sam-cli, each installed from its hash lock by `make release-tools`
        install = runs.index("make release-tools")
        baseline = runs.index(
            f".tools/cli/bin/deployguard policy publish --stage {stage} --baseline policies/{stage}/baseline.yaml"
        )
        publish = runs.index(
            f".tools/cli/bin/deployguard policy publish --stage {stage} --app orders "
            f"policies/{stage}/apps/orders.yaml"
        )
        assert baseline < publish, "the application's document is checked against the baseline's floors"
        deploy = next(
            i for i, run in enumerate(runs) if f".tools/sam/bin/sam deploy --config-env {stage}" in run
        )
        assert install < publish < deploy
        previous = f"deploy-{stage}"


def test_every_log_group_outlives_its_stack() -> None:
    """The log groups hold the audit trail (every outcome record): deleting the stack, or a change
    that replaces a log group, must not erase it."""
    for template in (raw(), cfn()):
        groups = resources("AWS::Logs::LogGroup", template)
        assert set(groups) >= {f"{name.removesuffix('Function')}LogGroup" for name in GUARD_FUNCTIONS}
        for name, group in groups.items():
            assert group.get("DeletionPolicy") == "Retain", f"{name}: DeletionPolicy: Retain"
            assert group.get("UpdateReplacePolicy") == "Retain", f"{name}: UpdateReplacePolicy: Retain"
            assert "RetentionInDays" in group["Properties"], f"{name}: a retained group still expires"


def test_the_encryption_skips_rest_on_the_leak_property_tests() -> None:
    """Logs and alerts go without a customer managed KMS key because no secret value reaches them:
    each such skip names the property tests that prove it, and they exist."""
    reasons = [
        skip["comment"]
        for item in raw()["Resources"].values()
        for skip in item.get("Metadata", {}).get("checkov", {}).get("skip", [])
        if skip["id"] in {"CKV_AWS_26", "CKV_AWS_158"}
    ]
    assert reasons
    for reason in reasons:
        named = re.findall(r"tests/[\w/]+\.py", reason)
        assert named, f"the skip does not name the tests behind it: {reason}"
        for test in named:
            assert (ROOT / test).is_file(), test
            assert "given(" in (ROOT / test).read_text(), f"{test}: not a property test"


def test_every_checkov_skip_says_why() -> None:
    skipped = 0
    for name, item in raw()["Resources"].items():
        for skip in item.get("Metadata", {}).get("checkov", {}).get("skip", []):
            assert re.fullmatch(r"CKV_AWS_\d+", skip["id"]), f"{name}: {skip}"
            assert len(skip.get("comment", "")) >= 60, f"{name}: justify skipping {skip['id']}"
            skipped += 1
    assert skipped > 0
