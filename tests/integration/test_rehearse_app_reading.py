"""How ``deployguard rehearse --template`` reads a team's SAM app before it plays anything: which
function, which parameters, which code, which live version — and the clear error when it cannot."""

from __future__ import annotations

import contextlib
import io
import shlex
import tempfile
import textwrap
import types
from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, given, settings

from deployguard_cli import main as cli
from deployguard_cli.rehearsal.runner import default_root
from deployguard_cli.rehearsal.userapp import (
    Options,
    RehearsalSetupError,
    _setup_command,
    prepared,
    read_user_app,
    samconfig,
    tree_of,
)
from deployguard_cli.rehearsal.wiring import Resolver, TemplateError
from tests.support.sam_apps import commit_all
from tests.support.secrets import Planted, assert_no_piece, planted

TWO_GUARDED = """\
Transform: AWS::Serverless-2016-10-31
Parameters:
  Stage: {Type: String}
  HookEnabled: {Type: String, Default: "false"}
Conditions:
  IsProd: !Equals [!Ref Stage, prod]
Globals:
  Function:
    Runtime: python3.12
    Timeout: 7
    Environment:
      Variables: {STAGE: !Ref Stage, SHARED: from-globals}
Resources:
  Orders:
    Type: AWS::Serverless::Function
    Properties:
      FunctionName: !Sub "orders-${Stage}"
      CodeUri: orders/
      Handler: app.handler
      AutoPublishAlias: live
      Environment:
        Variables: {TABLE: !Sub "${Stage}-orders", SHARED: from-function}
      DeploymentPreference:
        Type: Canary10Percent5Minutes
        Alarms: [!Ref OrdersErrors, arn-of-an-alarm-elsewhere]
        Hooks: {PreTraffic: !Ref OwnHook}
  Billing:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: billing/
      Handler: app.handler
      AutoPublishAlias: live
      DeploymentPreference: {Type: AllAtOnce}
  OnlyInProd:
    Type: AWS::Serverless::Function
    Condition: IsProd
    Properties:
      CodeUri: orders/
      Handler: app.handler
      AutoPublishAlias: live
      DeploymentPreference: {Type: AllAtOnce}
  OwnHook:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: orders/
      Handler: app.handler
      DeploymentPreference: {Enabled: !Ref HookEnabled}
      Environment:
        Variables: {VERSION: !Ref Orders.Version}
  OrdersErrors:
    Type: AWS::CloudWatch::Alarm
    Properties:
      Namespace: AWS/Lambda
      MetricName: Errors
      Dimensions:
        - {Name: FunctionName, Value: !Ref Orders}
        - {Name: Resource, Value: !Sub "${Orders}:live"}
        - {Name: ExecutedVersion, Value: !GetAtt Orders.Version.Version}
      Statistic: Sum
      Period: 60
      EvaluationPeriods: 1
      Threshold: 0
      ComparisonOperator: GreaterThanThreshold
"""


@pytest.fixture
def app(tmp_path: Path) -> Path:
    for folder in ("orders", "billing"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "app.py").write_text("def handler(event, context):\n    return event\n")
    (tmp_path / "template.yaml").write_text(TWO_GUARDED)
    return tmp_path


def read(app: Path, **overrides: object) -> object:
    arguments: dict[str, object] = {
        "function": None,
        "parameters": {"Stage": "dev"},
        "stack_name": "team-dev",
        "stage": "dev",
        "application": "team",
    }
    return read_user_app(app / "template.yaml", **{**arguments, **overrides})  # type: ignore[arg-type]


def test_two_guarded_functions_need_function_and_the_message_names_them(app: Path) -> None:
    with pytest.raises(
        RehearsalSetupError, match=r"guards 2 functions \(Orders, Billing\): name one with --function"
    ):
        read(app)


def test_function_is_found_by_logical_id_or_name_with_globals_merged(app: Path) -> None:
    by_logical = read(app, function="Orders")
    by_name = read(app, function="orders-dev")

    assert by_logical == by_name
    spec = by_logical.function  # type: ignore[attr-defined]
    assert (spec.name, spec.runtime, spec.timeout, spec.handler) == (
        "orders-dev",
        "python3.12",
        7,
        "app.handler",
    )
    assert spec.environment == {"STAGE": "dev", "SHARED": "from-function", "TABLE": "dev-orders"}
    assert spec.tags == {"deployguard:stage": "dev", "deployguard:app": "team"}


def test_the_deployment_preference_its_alarms_and_the_hooks_it_replaces(app: Path) -> None:
    user_app = read(app, function="Orders")

    assert (user_app.deployment_type, user_app.alias) == ("Canary10Percent5Minutes", "live")  # type: ignore[attr-defined]
    (alarm,) = user_app.alarms  # type: ignore[attr-defined]
    request = alarm.for_version("7")
    assert {d["Name"]: d["Value"] for d in request["Dimensions"]} == {
        "FunctionName": "orders-dev",
        "Resource": "orders-dev:live",
        "ExecutedVersion": "7",
    }
    notes = "\n".join(user_app.notes)  # type: ignore[attr-defined]
    assert "alarm arn-of-an-alarm-elsewhere is not declared in the template" in notes
    assert "its hooks (PreTraffic: OwnHook) are replaced by DeployGuard's" in notes
    assert "tagged deployguard:stage=dev" in notes


def test_a_disabled_preference_and_a_false_condition_are_skipped(app: Path) -> None:
    user_app = read(app, function="Billing")

    assert user_app.skipped == ("OnlyInProd", "OwnHook")  # type: ignore[attr-defined]
    with pytest.raises(RehearsalSetupError, match="--function OnlyInProd: no function"):
        read(app, function="OnlyInProd")


def test_every_parameter_without_a_value_is_named_with_the_flag_to_pass(app: Path) -> None:
    with pytest.raises(
        TemplateError, match=r"need a value: Stage \(String\); pass --parameter-overrides Stage=VALUE"
    ):
        read(app, function="Orders", parameters={})


def test_a_runtime_that_cannot_run_here_is_refused_by_name(app: Path) -> None:
    (app / "template.yaml").write_text(TWO_GUARDED.replace("Runtime: python3.12", "Runtime: java21"))

    with pytest.raises(RehearsalSetupError, match="runtime java21 cannot be rehearsed here"):
        read(app, function="Orders")


def test_what_sam_build_made_is_deployed_instead_of_the_source(app: Path) -> None:
    built = app / ".aws-sam" / "build" / "Orders"
    built.mkdir(parents=True)

    user_app = read(app, function="Orders")

    assert user_app.function.code_uri == built.resolve()  # type: ignore[attr-defined]


def test_samconfig_parameter_overrides_in_both_forms(tmp_path: Path) -> None:
    (tmp_path / "samconfig.toml").write_text(
        textwrap.dedent(
            """\
            version = 0.1
            [default.deploy.parameters]
            stack_name = "orders-stack"
            parameter_overrides = "Stage=dev Owner=\\"the team\\""
            [prod.deploy.parameters]
            parameter_overrides = ["Stage=prod", "Owner=ops"]
            """
        )
    )

    assert samconfig(tmp_path) == ({"Stage": "dev", "Owner": "the team"}, "orders-stack")
    assert samconfig(tmp_path, "prod") == ({"Stage": "prod", "Owner": "ops"}, None)


def test_the_live_version_is_the_last_commit_not_the_working_tree(app: Path) -> None:
    commit_all(app)
    (app / "orders" / "app.py").write_text("def handler(event, context):\n    return 'new'\n")

    live = tree_of(None, app / "template.yaml", default_head=True)
    try:
        assert live.label.startswith("HEAD (")
        assert "return event" in (live.template.parent / "orders" / "app.py").read_text()
    finally:
        live.cleanup()
    assert not live.template.exists()  # the checkout is gone
    with pytest.raises(RehearsalSetupError, match="--from no-such-ref: not a commit"):
        tree_of("no-such-ref", app / "template.yaml", default_head=True)


def test_outside_git_the_live_version_is_the_working_tree(app: Path) -> None:
    live = tree_of(None, app / "template.yaml", default_head=True)

    assert live.template == (app / "template.yaml").resolve()
    assert "not in a git repository" in live.label


def test_the_command_says_which_flag_fixes_a_missing_parameter(app: Path) -> None:
    err = io.StringIO()  # NOTE: not capsys: the guard's loggers would keep its stream past the test

    with contextlib.redirect_stderr(err):
        code = cli.main(["rehearse", "--template", str(app / "template.yaml"), "--function", "Orders"])

    assert code == 2
    assert "--parameter-overrides Stage=VALUE" in err.getvalue()


def test_a_folder_can_be_the_live_version_and_a_ref_cannot_be_an_option(app: Path, tmp_path: Path) -> None:
    live_folder = tmp_path / "live"
    live_folder.mkdir()
    (live_folder / "template.yaml").write_text(TWO_GUARDED)

    live = tree_of(str(live_folder), app / "template.yaml", default_head=True)

    assert live.template == live_folder.resolve() / "template.yaml"
    with pytest.raises(RehearsalSetupError, match=r"holds no template\.yaml"):
        tree_of(str(app / "orders"), app / "template.yaml", default_head=True)
    with pytest.raises(RehearsalSetupError, match=r"--from --output=x: not a commit"):
        tree_of("--output=x", app / "template.yaml", default_head=True)


# --- hostile and odd templates, trees and commands (issue 16's review) -------------------------------
def _rehearse(*args: str) -> tuple[int, str]:
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        code = cli.main(["rehearse", "--json", *args])
    return code, err.getvalue()


GUARDED = """\
Transform: AWS::Serverless-2016-10-31
Conditions:
  Never: !Equals [a, b]
Resources:
  Fn:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: src/
      Handler: app.handler
      Runtime: python3.12
      Timeout: !If [Never, 9, 3]
      AutoPublishAlias: live
      DeploymentPreference:
        Type: AllAtOnce
"""


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (("      AutoPublishAlias: live\n", ""), "Fn has a DeploymentPreference but no AutoPublishAlias"),
        (("CodeUri: src/", "CodeUri: s3://bucket/fn.zip"), "CodeUri s3://bucket/fn.zip is in S3"),
        (("CodeUri: src/", "CodeUri: {Bucket: b, Key: fn.zip}"), "is in S3"),
        (
            ("Timeout: !If [Never, 9, 3]", "Timeout: abc"),
            "Fn's Timeout 'abc' is not a number",
        ),
        (("Runtime: python3.12", "Runtime: python3.12\n      Architectures: arm64"), "must be a list"),
        (
            ("Runtime: python3.12", "Runtime: python3.12\n      Tags: [a]"),
            "not a template the rehearsal can read",
        ),
        (("Timeout: !If [Never, 9, 3]", "Timeout: !If [Never]"), "ValueError"),
        (("Never: !Equals [a, b]", "Never: !Condition Never"), "RecursionError"),
        (("Runtime: python3.12", "Runtime: python3.12\n      MemorySize: 64"), "refused Fn"),
    ],
    ids=[
        "no-alias",
        "s3",
        "s3-mapping",
        "timeout",
        "architectures",
        "tags",
        "if-arity",
        "recursive",
        "memory",
    ],
)
def test_a_template_aws_would_refuse_gets_exit_2_and_a_message_not_a_traceback(
    tmp_path: Path, change: tuple[str, str], message: str
) -> None:
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "app.py").write_text("def handler(event, context):\n    return {}\n")
    (tmp_path / "template.yaml").write_text(GUARDED.replace(*change))

    code, err = _rehearse("--template", str(tmp_path / "template.yaml"))

    assert (code, message in err, "Traceback" in err) == (2, True, False), err


def test_intrinsics_around_the_preference_its_alarms_and_list_parameters_are_evaluated(
    tmp_path: Path,
) -> None:
    """``Fn::If`` around the preference, its Alarms and its entries; a preference from Globals;
    ``List<…>`` parameters are lists (``!Select`` takes a member, not a character)."""
    (tmp_path / "src").mkdir()
    (tmp_path / "template.yaml").write_text(
        textwrap.dedent(
            """\
            Parameters:
              Stage: {Type: String, Default: prod}
              Subnets: {Type: 'List<AWS::EC2::Subnet::Id>', Default: 'subnet-1,subnet-2'}
              Secret: {Type: 'AWS::SSM::Parameter::Value<String>', Default: /team/secret}
            Conditions:
              IsProd: !Equals [!Ref Stage, prod]
            Globals:
              Function:
                DeploymentPreference: {Type: Linear10PercentEvery1Minute}
            Resources:
              Fn:
                Type: AWS::Serverless::Function
                Properties:
                  CodeUri: src/
                  Handler: app.handler
                  Runtime: python3.12
                  AutoPublishAlias: live
                  Environment:
                    Variables: {SUBNET: !Select [1, !Ref Subnets], SECRET: !Ref Secret}
                  DeploymentPreference:
                    Alarms: !If [IsProd, [!If [IsProd, !Ref Errors, !Ref AWS::NoValue]], !Ref AWS::NoValue]
              Errors:
                Type: AWS::CloudWatch::Alarm
                Properties: {AlarmName: fn-errors, MetricName: Errors, Namespace: AWS/Lambda, Threshold: 0}
            """
        )
    )

    user_app = read(tmp_path, parameters={})

    assert user_app.deployment_type == "Linear10PercentEvery1Minute"  # type: ignore[attr-defined]
    assert [a.name for a in user_app.alarms] == ["fn-errors"]  # type: ignore[attr-defined]
    assert user_app.function.environment["SUBNET"] == "subnet-2"  # type: ignore[attr-defined]
    assert any("Secret are SSM parameter types" in n for n in user_app.notes)  # type: ignore[attr-defined]


def test_globals_are_merged_as_sam_merges_them(tmp_path: Path) -> None:
    """SAM's Globals: maps merge key by key (the function's value wins), lists are Globals' items
    then the function's, and an intrinsic on the function replaces Globals' value whole."""
    for folder in ("src", "shared", "extra"):
        (tmp_path / folder).mkdir()
    (tmp_path / "template.yaml").write_text(
        textwrap.dedent(
            """\
            Parameters:
              Stage: {Type: String, Default: prod}
            Conditions:
              IsProd: !Equals [!Ref Stage, prod]
            Globals:
              Function:
                Runtime: python3.12
                Layers: [!Ref Shared]
                EventInvokeConfig: {MaximumRetryAttempts: 0}
                Environment:
                  Variables: {FROM_GLOBALS: "yes"}
                DeploymentPreference:
                  Type: Canary10Percent5Minutes
                  Alarms: [!Ref GlobalErrors]
                  Hooks: {PreTraffic: !Ref PreHook}
            Resources:
              Fn:
                Type: AWS::Serverless::Function
                Properties:
                  CodeUri: src/
                  Handler: app.handler
                  AutoPublishAlias: live
                  Layers: [!Ref Extra]
                  Environment: !If [IsProd, {Variables: {ONLY_PROD: "1"}}, !Ref AWS::NoValue]
                  DeploymentPreference:
                    Alarms: [!Ref FnErrors]
                    Hooks: {PostTraffic: !Ref PostHook}
              Shared: {Type: AWS::Serverless::LayerVersion, Properties: {ContentUri: shared/}}
              Extra: {Type: AWS::Serverless::LayerVersion, Properties: {ContentUri: extra/}}
              GlobalErrors:
                Type: AWS::CloudWatch::Alarm
                Properties: {AlarmName: global-errors, MetricName: Errors, Namespace: AWS/Lambda, Threshold: 0}
              FnErrors:
                Type: AWS::CloudWatch::Alarm
                Properties: {AlarmName: fn-errors, MetricName: Errors, Namespace: AWS/Lambda, Threshold: 0}
            """
        )
    )

    user_app = read(tmp_path, parameters={}, function="Fn")
    spec = user_app.function  # type: ignore[attr-defined]

    assert spec.environment == {"ONLY_PROD": "1"}  # the function's !If replaced Globals' variables
    assert spec.layers == ((tmp_path / "shared").resolve(), (tmp_path / "extra").resolve())
    assert spec.max_retry_attempts == 0  # Globals' EventInvokeConfig
    assert user_app.deployment_type == "Canary10Percent5Minutes"  # type: ignore[attr-defined]
    assert [a.name for a in user_app.alarms] == ["global-errors", "fn-errors"]  # type: ignore[attr-defined]
    notes = "\n".join(user_app.notes)  # type: ignore[attr-defined]
    assert "its hooks (PreTraffic: PreHook, PostTraffic: PostHook) are replaced" in notes


def test_the_live_commit_of_a_template_in_a_subfolder_holds_its_code_beside_it(tmp_path: Path) -> None:
    """infra/template.yaml with CodeUri ../src: the commit's src/ is the live code; code outside
    the repository is not in any commit of it, and --to names the flag when its folder is wrong."""
    repo = tmp_path / "repo"
    (repo / "infra").mkdir(parents=True)
    (repo / "src").mkdir()
    (repo / "src" / "app.py").write_text("def handler(event, context):\n    return 'live'\n")
    (repo / "infra" / "template.yaml").write_text(GUARDED.replace("CodeUri: src/", "CodeUri: ../src/"))
    commit_all(repo)

    live = tree_of(None, repo / "infra" / "template.yaml", default_head=True)
    try:
        assert "'live'" in (live.template.parent.parent / "src" / "app.py").read_text()
    finally:
        live.cleanup()
    with pytest.raises(RehearsalSetupError, match="--to /no/such/folder: no such folder"):
        tree_of("/no/such/folder", repo / "infra" / "template.yaml", default_head=False)

    (tmp_path / "shared").mkdir()
    (repo / "infra" / "template.yaml").write_text(GUARDED.replace("CodeUri: src/", "CodeUri: ../../shared/"))
    commit_all(repo)
    code, err = _rehearse("--template", str(repo / "infra" / "template.yaml"))
    assert (code, "CodeUri is outside the repository" in err) == (2, True), err


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(secret=planted(known=True))
def test_a_failing_setup_command_tells_no_piece_of_a_secret(tmp_path: Path, secret: Planted) -> None:
    """--setup that prints the function's secret and fails — the secret in its command line too,
    as `aws ssm put-parameter --value …` has it, and the live version's secret as well as the new one's."""
    assume(secret.variable is not None)
    command = f"echo {shlex.quote(secret.value)}; echo {shlex.quote(secret.value)} >&2; exit 3"
    live = {str(secret.variable): secret.value}
    setup = _setup_command(command, tmp_path, ({"OTHER": "x"}, live))
    world = types.SimpleNamespace(functions_endpoint="http://127.0.0.1:1")

    with pytest.raises(RehearsalSetupError) as raised:
        setup(world)  # type: ignore[arg-type]

    assert "failed (exit 3)" in str(raised.value)
    assert_no_piece(secret.secret, str(raised.value))


def test_variables_naming_the_apps_other_resources_get_their_names_arns_or_a_placeholder(
    tmp_path: Path,
) -> None:
    (tmp_path / "src").mkdir()
    (tmp_path / "template.yaml").write_text(
        textwrap.dedent(
            """\
            Transform: AWS::Serverless-2016-10-31
            Resources:
              Orders:
                Type: AWS::Serverless::Function
                Properties:
                  Runtime: python3.12
                  CodeUri: src/
                  Handler: app.handler
                  AutoPublishAlias: live
                  DeploymentPreference: {Type: AllAtOnce}
                  Environment:
                    Variables:
                      TABLE: !Ref Table
                      TABLE_ARN: !GetAtt Table.Arn
                      STREAM: !GetAtt Table.StreamArn
                      QUEUE_URL: !Ref Queue
                      QUEUE_ARN: !GetAtt Queue.Arn
              Table:
                Type: AWS::DynamoDB::Table
                Properties: {TableName: orders}
              Queue:
                Type: AWS::SQS::Queue
                Properties: {QueueName: work}
            """
        )
    )

    user_app = read(tmp_path, parameters={})

    assert user_app.function.environment == {  # type: ignore[attr-defined]
        "TABLE": "orders",
        "TABLE_ARN": "arn:aws:dynamodb:us-east-1:123456789012:table/orders",
        "STREAM": "deploy-time:Table.StreamArn",
        "QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/123456789012/work",
        "QUEUE_ARN": "arn:aws:sqs:us-east-1:123456789012:work",
    }
    assert any("STREAM name an attribute known only once deployed" in n for n in user_app.notes)  # type: ignore[attr-defined]


def test_the_example_apps_scenario_flags_are_refused_with_a_template() -> None:
    err = io.StringIO()

    with contextlib.redirect_stderr(err):
        code = cli.main(["rehearse", "--template", "template.yaml", "--scenario", "healthy"])

    assert code == 2
    assert "with --template, choose the faults to play with --faults" in err.getvalue()


def test_what_the_rehearsal_writes_for_itself_is_gone_after_it(
    app: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The live commit's checkout and the starter policy (no policy beside the template) live in
    temporary folders that the plan removes when its ``with`` block ends."""
    commit_all(app)
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    options = Options(template=app / "template.yaml", function="Orders", parameters={"Stage": "dev"})

    with prepared(options, deployguard_root=default_root()) as plan:
        assert plan.policy_source == "deployguard init's starting policy"
        assert sorted(p.name.split("-")[1] for p in scratch.iterdir()) == ["from", "policy"]

    assert list(scratch.iterdir()) == []


def test_a_sub_literal_is_written_as_cloudformation_writes_it() -> None:
    # Source: the Fn::Sub reference: "To write a dollar sign and curly braces (${}) literally, add an
    # exclamation point (!) after the open curly brace, such as ${!Literal}. CloudFormation resolves
    # this text as ${Literal}."
    resolver = Resolver({"Resources": {}}, parameters={}, stack_name="team-dev")

    assert resolver.resolve({"Fn::Sub": "${!Literal}-${AWS::Region}"}) == "${Literal}-us-east-1"


def test_an_sdk_package_in_a_layers_versioned_folder_is_the_functions_own(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Lambda's Node.js runtimes read ``/opt/nodejs/nodeNN/node_modules`` too: an SDK package there
    is the function's own, so the rehearsal installs none at set-up (npm is offline here: an
    install would fail and be noted)."""
    monkeypatch.setenv("DEPLOYGUARD_NODE_SDK_CACHE", str(tmp_path / "sdk-cache"))
    monkeypatch.setenv("npm_config_offline", "true")
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "app.js").write_text(
        "const { S3Client } = require('@aws-sdk/client-s3');\nexports.handler = async () => 'ok';\n"
    )
    package = tmp_path / "layer" / "nodejs" / "node18" / "node_modules" / "@aws-sdk" / "client-s3"
    package.mkdir(parents=True)
    (package / "package.json").write_text('{"name": "@aws-sdk/client-s3", "version": "3.0.0"}')
    (tmp_path / "template.yaml").write_text(
        textwrap.dedent(
            """\
            Resources:
              Fn:
                Type: AWS::Serverless::Function
                Properties:
                  CodeUri: src/
                  Handler: app.handler
                  Runtime: nodejs18.x
                  AutoPublishAlias: live
                  Layers: [!Ref Deps]
                  DeploymentPreference: {Type: AllAtOnce}
              Deps: {Type: AWS::Serverless::LayerVersion, Properties: {ContentUri: layer/}}
            """
        )
    )

    user_app = read(tmp_path, parameters={})

    assert not [note for note in user_app.notes if "client-s3" in note]  # type: ignore[attr-defined]
    assert not (tmp_path / "sdk-cache").exists()


def test_only_the_layers_a_function_names_are_looked_up_and_the_first_match_wins(tmp_path: Path) -> None:
    """A layer the function does not use never stops its rehearsal (here its name is an intrinsic
    the rehearsal does not evaluate); two layers of one name give the first, as before."""
    for folder in ("src", "a", "b"):
        (tmp_path / folder).mkdir()
    (tmp_path / "template.yaml").write_text(
        textwrap.dedent(
            """\
            Resources:
              Fn:
                Type: AWS::Serverless::Function
                Properties:
                  CodeUri: src/
                  Handler: app.handler
                  Runtime: python3.12
                  AutoPublishAlias: live
                  Layers: [!Ref A]
                  DeploymentPreference: {Type: AllAtOnce}
              Unused:
                Type: AWS::Serverless::LayerVersion
                Properties: {LayerName: !Select [0, !GetAZs ""], ContentUri: src/}
              A: {Type: AWS::Serverless::LayerVersion, Properties: {LayerName: deps, ContentUri: a/}}
              B: {Type: AWS::Serverless::LayerVersion, Properties: {LayerName: deps, ContentUri: b/}}
            """
        )
    )

    spec = read(tmp_path, parameters={}).function  # type: ignore[attr-defined]

    assert spec.layers == ((tmp_path / "a").resolve(),)
