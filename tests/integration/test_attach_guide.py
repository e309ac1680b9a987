"""docs/attach-in-10-minutes.md followed end to end on a public SAM app (aws-samples'
aws-safe-lambda-deployments, tests/fixtures/sam_apps): init → lint → attach → lint → policy publish
→ a guarded deployment on the embedded AWS, where a good release passes and a bad one fails.

The embedded AWS is served over HTTP (``deployguard localaws serve``'s server), so the sample's own
code really runs on its Node.js runtime and its S3 calls come back to the same embedded AWS."""

from __future__ import annotations

import copy
import json
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import boto3
import pytest
import requests
import yaml

from deployguard import entrypoints
from deployguard.appspec import DeploymentTarget, render_appspec
from deployguard.runtimes import RUNTIMES
from deployguard.stages import APP_TAG, STAGE_TAG
from deployguard_cli.localaws import node_sdk
from deployguard_cli.localaws.lambda_runner import zip_directory
from deployguard_cli.localaws.server import LocalAws
from deployguard_cli.main import main
from deployguard_cli.template_lint import deployguard_hook
from deployguard_cli.templates import Template, read_template
from tests.support.aws import ROLE_POLICY, deployment_group, start_deployment
from tests.support.handlers import FakeLambdaContext, load_handler
from tests.support.outcomes import captured_output, outcome_lines
from tests.support.release import HOOK_ENV, POLICY_BUCKET

if TYPE_CHECKING:
    from mypy_boto3_lambda.literals import RuntimeType

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "tests" / "fixtures" / "sam_apps" / "aws-safe-lambda-deployments"
STAGE, APP, STACK = "staging", "buckets", "buckets-staging"
FUNCTION = "returnS3Buckets"
# What CloudFormation names the function and SAM its CodeDeploy application and group.
FUNCTION_NAME = f"{STACK}-{FUNCTION}-1A2B3C4D5E6F"
APPLICATION = f"{STACK}-ServerlessDeploymentApplication-1A2B3C4D"
GROUP = f"{STACK}-{FUNCTION}DeploymentGroup-1A2B3C4D"
# The guide's step 3 moves the function to nodejs24.x, which ships the AWS SDK v3 and not v2's
# aws-sdk the sample requires: its code moves to v3's S3 client, whose methods take the same callbacks.
SDK_V3_MIGRATION = {
    "var AWS = require('aws-sdk');\nvar s3 = new AWS.S3();": (
        "var { S3 } = require('@aws-sdk/client-s3');\nvar s3 = new S3();"
    ),
    "s3.listBuckets(function": "s3.listBuckets({}, function",
}


@pytest.fixture(autouse=True)
def served(aws_env: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The embedded AWS on a free port; every client of this process (the CLI, the hook) uses it."""
    with LocalAws(port=0) as server:
        monkeypatch.setenv("AWS_ENDPOINT_URL", server.endpoint)
        entrypoints.reset()
        try:
            yield server.endpoint
        finally:
            requests.post(f"{server.endpoint}/moto-api/reset", timeout=10)
            entrypoints.reset()


@pytest.fixture
def app(tmp_path: Path) -> Path:
    """The sample as a team has it: its sample event in events/ (where `sam local invoke -e` and
    `deployguard init` look) and, as a real app has, one setting in its environment."""
    folder = tmp_path / "app"
    shutil.copytree(SAMPLE, folder)
    (folder / "events").mkdir()
    shutil.move(folder / "s3.json", folder / "events" / "s3.json")
    template = folder / "template.yaml"
    template.write_text(
        template.read_text().replace(
            "      AutoPublishAlias: live\n",
            "      AutoPublishAlias: live\n      Environment:\n        Variables:\n          LIST_LIMIT: '100'\n",
            1,
        )
    )
    return folder


def attach(template: Template, *, stage: str, app: str) -> dict[str, Any]:
    """The guide's step 3 as edits to the template: each guarded function gets the scope tags,
    AutoPublishAliasAllProperties, DeployGuard's two hooks (the app's own hook functions go), a
    per-version errors alarm, and a supported runtime."""
    document: dict[str, Any] = json.loads(json.dumps(template.document, default=str))
    resources = document["Resources"]
    for function in (f for f in template.functions if f.guarded):
        properties = resources[function.logical_id]["Properties"]
        properties["Tags"] = {**properties.get("Tags", {}), STAGE_TAG: stage, APP_TAG: app}
        properties["AutoPublishAliasAllProperties"] = True
        preference = properties["DeploymentPreference"]
        for own in (h.get("Ref") for h in preference.get("Hooks", {}).values() if isinstance(h, dict)):
            resources.pop(own, None)
        preference["Hooks"] = {
            event: {"Fn::ImportValue": f"deployguard-{stage}-{event}HookName"}
            for event in ("PreTraffic", "PostTraffic")
        }
        alarm = f"{function.logical_id}NewVersionErrors"
        preference["Alarms"] = [{"Ref": alarm}]
        resources[alarm] = new_version_errors_alarm(
            function.logical_id, f"{app}-{function.logical_id}-errors"
        )
        runtime = RUNTIMES.get(properties.get("Runtime", ""))
        if runtime is not None and runtime.successor:
            properties["Runtime"] = runtime.successor
    return document


def new_version_errors_alarm(function: str, name: str) -> dict[str, Any]:
    return {
        "Type": "AWS::CloudWatch::Alarm",
        "Properties": {
            "AlarmName": name,
            "Namespace": "AWS/Lambda",
            "MetricName": "Errors",
            "Dimensions": [
                {"Name": "FunctionName", "Value": {"Ref": function}},
                {"Name": "Resource", "Value": {"Fn::Sub": f"${{{function}}}:live"}},
                {"Name": "ExecutedVersion", "Value": {"Fn::GetAtt": [function, "Version", "Version"]}},
            ],
            "Statistic": "Sum",
            "Period": 60,
            "EvaluationPeriods": 1,
            "Threshold": 1,
            "ComparisonOperator": "GreaterThanOrEqualToThreshold",
        },
    }


class Deployed:
    """What `sam deploy` of the attached template leaves in the account, and each later release
    through CodeDeploy with DeployGuard's pre-traffic hook invoked as CodeDeploy invokes it."""

    def __init__(self, template: Template, code: bytes) -> None:
        (self.function,) = (f for f in template.functions if f.guarded)
        self.lam = boto3.client("lambda")
        role = boto3.client("iam").create_role(
            RoleName=f"{FUNCTION}-role", AssumeRolePolicyDocument=ROLE_POLICY
        )
        self.lam.create_function(
            FunctionName=FUNCTION_NAME,
            Runtime=cast("RuntimeType", self.function.runtime),
            Role=role["Role"]["Arn"],
            Handler=str(self.function.properties["Handler"]),
            Code={"ZipFile": code},
            Environment={"Variables": self.environment},
            Tags={str(k): str(v) for k, v in self.function.tags.items()},
        )
        self.version = self.lam.publish_version(FunctionName=FUNCTION_NAME)["Version"]
        self.lam.create_alias(FunctionName=FUNCTION_NAME, Name="live", FunctionVersion=self.version)
        deployment_group(
            APPLICATION, GROUP, deploymentConfigName="CodeDeployDefault.LambdaLinear10PercentEvery1Minute"
        )

    @property
    def environment(self) -> dict[str, str]:
        return {str(k): str(v) for k, v in self.function.environment.items()}

    def release(
        self, environment: dict[str, str], description: str, code: bytes | None = None
    ) -> tuple[list[str], dict[str, Any]]:
        """Publish a version with ``environment`` (and ``code``), deploy it, run the pre-traffic
        hook: the statuses it reported and its outcome record."""
        from deployguard_cli.localaws import moto_codedeploy

        if code is not None:
            self.lam.update_function_code(FunctionName=FUNCTION_NAME, ZipFile=code)
        self.lam.update_function_configuration(
            FunctionName=FUNCTION_NAME, Environment={"Variables": environment}, Description=description
        )
        target = self.lam.publish_version(FunctionName=FUNCTION_NAME)["Version"]
        appspec = render_appspec(
            DeploymentTarget(
                function_name=FUNCTION_NAME, alias="live", current_version=self.version, target_version=target
            )
        )
        deployment_id = start_deployment(APPLICATION, GROUP, appspec)
        execution_id = moto_codedeploy.start_lifecycle_event(deployment_id, "BeforeAllowTraffic")
        with captured_output() as out:
            load_handler("pre_traffic").handler(
                {"DeploymentId": deployment_id, "LifecycleEventHookExecutionId": execution_id},
                FakeLambdaContext(),
            )
        (record,) = outcome_lines(out.getvalue())
        statuses = [r.status for r in moto_codedeploy.hook_reports(deployment_id)]
        # as CodeDeploy goes on: a passed release takes the alias (the canary is not played here)
        moto_codedeploy.set_deployment_status(deployment_id, statuses[-1])
        if statuses == ["Succeeded"]:
            self.lam.update_alias(FunctionName=FUNCTION_NAME, Name="live", FunctionVersion=target)
            self.version = target
        return statuses, record


@pytest.fixture
def hook_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in HOOK_ENV.items():
        monkeypatch.setenv(key, value)


Cli = Callable[..., tuple[int, str]]


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> Cli:
    def run(*argv: str) -> tuple[int, str]:
        code = main(list(argv))
        captured = capsys.readouterr()
        return code, captured.out + captured.err

    return run


def test_the_guide_takes_a_public_sam_app_to_a_guarded_deployment(
    app: Path, tmp_path: Path, cli: Cli, hook_env: None
) -> None:
    template_file = app / "template.yaml"
    policy_file = app / f"deployguard-{STAGE}.yaml"

    # 1. init: a starting policy from the template, which `policy check` accepts
    code, out = cli("init", str(template_file), "--stage", STAGE, "--app", APP)
    assert code == 0, out
    assert f"deployguard policy publish --stage {STAGE} --app {APP} {policy_file}" in out
    assert cli("policy", "check", str(policy_file))[0] == 0

    # 2. lint: the sample's wiring keeps DeployGuard out, and says why
    code, out = cli("lint", str(template_file), "--stage", STAGE, "--app", APP)
    assert code == 1
    # its own pre-traffic hook, no scope tags, nodejs6.10
    assert all(finding in out for finding in ("LNT005", "LNT011", "LNT012", "LNT013"))

    # 3. attach: the guide's template edits; lint is then clean
    attached_file = app / "template.json"
    attached_document = attach(read_template(template_file), stage=STAGE, app=APP)
    attached_file.write_text(json.dumps(attached_document, indent=2))
    handler = app / "returnS3Buckets.js"  # nodejs24.x ships the SDK v3: the code moves to it
    migrated = handler.read_text()
    for old, new in SDK_V3_MIGRATION.items():
        assert migrated.count(old) == 1
        migrated = migrated.replace(old, new)
    handler.write_text(migrated)
    code, out = cli("lint", str(attached_file), "--stage", STAGE, "--app", APP, "--json")
    assert (code, json.loads(out)["findings"]) == (0, [])
    attached = read_template(attached_file)
    hooks = attached.functions[0].properties["DeploymentPreference"]["Hooks"]
    assert {event: deployguard_hook(value) for event, value in hooks.items()} == {
        "PreTraffic": "PreTraffic",
        "PostTraffic": "PostTraffic",
    }

    # init again on the attached template: the new per-version alarm joins the selection
    code, out = cli(
        "init", str(attached_file), "--stage", STAGE, "--app", APP, "--out", str(policy_file), "--force"
    )
    assert code == 0, out
    entry = yaml.safe_load(policy_file.read_text())["functions"][FUNCTION]
    assert entry["alarms"] == {"select": {"names": [f"{APP}-{FUNCTION}-errors"]}}
    assert (entry["config"]["required"], entry["smoke"]) == (
        ["LIST_LIMIT"],
        [{"name": "s3", "payload_file": "events/s3.json"}],
    )

    # 4. policy publish (the platform team published the stage's baseline first)
    boto3.client("s3").create_bucket(Bucket=POLICY_BUCKET)
    baseline = tmp_path / "baseline.yaml"
    baseline.write_text(f"version: 1\nstage: {STAGE}\nunguarded: fail\n")
    assert (
        cli("policy", "publish", "--stage", STAGE, "--baseline", "--bucket", POLICY_BUCKET, str(baseline))[0]
        == 0
    )
    code, out = cli(
        "policy", "publish", "--stage", STAGE, "--app", APP, "--bucket", POLICY_BUCKET, str(policy_file)
    )
    assert code == 0, out

    # before the first deploy (nothing deployed yet): the first release, checked from the template
    code, out = cli(
        "check",
        "--stage",
        STAGE,
        "--function",
        FUNCTION,
        "--template",
        str(attached_file),
        "--bucket",
        POLICY_BUCKET,
    )
    assert code == 0, out
    assert "[PASS] policy" in out and "guarded by functions.returnS3Buckets" in out
    assert "[PASS] config" in out and "[skip] smoke:s3" in out

    # 5. deploy: a release through CodeDeploy is guarded; a good one passes, a broken one fails
    # (the app's code as `sam build` packages it: the template's folder, CodeUri's default)
    deployed = Deployed(attached, zip_directory(app))
    # the SDK nodejs24.x ships, on the machine before the smoke test's clock runs (a fresh CI
    # machine installs it with npm in about 10 s: `rehearse --template` does the same at set-up)
    assert (
        "@aws-sdk/client-s3" not in node_sdk.provide("nodejs24.x", code_roots=[app], module_dirs=[]).missing
    )
    statuses, record = deployed.release(deployed.environment, "release 2")
    assert statuses == ["Succeeded"], record["reason"]
    assert [(c["name"], c["result"]) for c in record["checks"]] == [
        ("policy", "passed"),
        ("config", "passed"),
        ("smoke:s3", "passed"),
    ]
    # the sample's real code ran, and its S3 call reached the embedded AWS (the policy bucket)
    answer = deployed.lam.invoke(FunctionName=FUNCTION_NAME, Qualifier="live", Payload=b"{}")
    assert json.loads(answer["Payload"].read()) == {"statusCode": 200, "body": 1}

    broken = copy.deepcopy(deployed.environment)
    del broken["LIST_LIMIT"]
    statuses, record = deployed.release(broken, "release 3: LIST_LIMIT dropped")
    assert statuses == ["Failed"]
    config = next(c for c in record["checks"] if c["name"] == "config")
    assert "CFG001" in {f["code"] for f in config["findings"]}

    # the sample's code as it was (aws-sdk, which nodejs24.x does not ship) fails its smoke case
    statuses, record = deployed.release(deployed.environment, "release 4: SDK v2 code", zip_directory(SAMPLE))
    assert statuses == ["Failed"]
    smoke = next(c for c in record["checks"] if c["name"] == "smoke:s3")
    assert smoke["result"] == "failed"
    assert smoke["message"].startswith(
        "the function raised Runtime.ImportModuleError: Error: Cannot find module 'aws-sdk'\n"
        "The nodejs24.x runtime ships the AWS SDK v3 (@aws-sdk/*), not aws-sdk"
    )
