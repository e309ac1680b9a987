"""Builders for real moto resources: a Lambda function with versions and an alias, a CodeDeploy
Lambda deployment between two versions, and a published guard policy."""

from __future__ import annotations

import hashlib
import io
import json
import textwrap
import zipfile
from dataclasses import dataclass, field
from typing import Any

import boto3

from deployguard.appspec import DeploymentTarget, render_appspec

ROLE_POLICY = json.dumps(
    {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}
        ],
    }
)

# The guarded function: it answers a quote from its environment, so each version's config
# really changes what it does. TOTAL_AS is how the version returns its total.
APP_CODE = textwrap.dedent(
    """
    import os, time

    def handler(event, context):
        if event.get("action") == "sleep":
            time.sleep(float(event["seconds"]))
        if event.get("action") == "boom":
            raise RuntimeError("boom on purpose")
        custom = getattr(getattr(context, "client_context", None), "custom", None) or {}
        total = 12 if os.environ.get("TOTAL_AS", "number") == "number" else "12.00"
        return {"total": total, "currency": "EUR", "stage": os.environ.get("STAGE"),
                "synthetic": custom.get("deployguard-synthetic") == "true"}
    """
)


def code_zip(source: str = APP_CODE) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("app.py", source)
    return buffer.getvalue()


GOOD_ENV = {
    "STAGE": "staging",
    "DATABASE_URL": "postgres://db.staging.example.com/orders",
    "DB_PASSWORD_PARAM": "/orders/staging/db-password",
}

POLICY: dict[str, Any] = {
    "version": 1,
    "stage": "staging",
    "functions": {
        "orders": {
            "config": {
                "required": ["DATABASE_URL"],
                "rules": [
                    {
                        "variable": "DATABASE_URL",
                        "part": "host",
                        "allow": [r"\.staging\."],
                        "deny": [r"\.prod\."],
                    }
                ],
                "references": {"required": ["DB_PASSWORD_PARAM"]},
            },
            "smoke": [
                {
                    "name": "quote",
                    "payload": {"action": "quote"},
                    "expect": [
                        {"path": "$.total", "equals": 12},
                        {"path": "$.currency", "equals": "EUR"},
                        {"path": "$.synthetic", "equals": True},
                    ],
                    "max_latency_ms": 5000,
                },
                {
                    "name": "stage",
                    "payload": {"action": "ping"},
                    "expect": [{"path": "$.stage", "equals": "staging"}],
                },
            ],
        }
    },
}

POLICY_PARAMETER = "/deployguard/staging/policy"
HOOK_ENV = {"DEPLOYGUARD_STAGE": "staging", "DEPLOYGUARD_POLICY_PARAMETER": POLICY_PARAMETER}


@dataclass
class Release:
    """A function 'orders' with versions 1 (live) and 2 (candidate) and a CodeDeploy deployment."""

    target_env: dict[str, str] = field(default_factory=lambda: dict(GOOD_ENV))
    target_code: str = APP_CODE
    policy: dict[str, Any] | None = field(default_factory=lambda: json.loads(json.dumps(POLICY)))
    function_name: str = "orders"
    deployment_id: str = ""
    execution_id: str = ""

    def create(self) -> Release:
        from deployguard_cli.localaws import moto_codedeploy

        iam = boto3.client("iam")
        role = iam.create_role(RoleName="orders-role", AssumeRolePolicyDocument=ROLE_POLICY)["Role"]["Arn"]
        lam = boto3.client("lambda")
        lam.create_function(
            FunctionName=self.function_name,
            Runtime="python3.12",
            Role=role,
            Handler="app.handler",
            Code={"ZipFile": code_zip()},
            Timeout=10,
            Environment={"Variables": GOOD_ENV},
        )
        lam.publish_version(FunctionName=self.function_name)
        lam.update_function_code(FunctionName=self.function_name, ZipFile=code_zip(self.target_code))
        lam.update_function_configuration(
            FunctionName=self.function_name, Environment={"Variables": self.target_env}
        )
        lam.publish_version(FunctionName=self.function_name)
        lam.create_alias(FunctionName=self.function_name, Name="live", FunctionVersion="1")

        boto3.client("ssm").put_parameter(
            Name="/orders/staging/db-password", Value="not-read", Type="SecureString"
        )
        if self.policy is not None:
            boto3.client("ssm").put_parameter(
                Name=POLICY_PARAMETER, Value=json.dumps(self.policy), Type="String"
            )

        codedeploy = boto3.client("codedeploy")
        codedeploy.create_application(applicationName="orders-app", computePlatform="Lambda")
        codedeploy.create_deployment_group(
            applicationName="orders-app",
            deploymentGroupName="orders-group",
            serviceRoleArn="arn:aws:iam::123456789012:role/codedeploy",
            deploymentConfigName="CodeDeployDefault.LambdaCanary10Percent5Minutes",
            deploymentStyle={"deploymentType": "BLUE_GREEN", "deploymentOption": "WITH_TRAFFIC_CONTROL"},
        )
        target = DeploymentTarget(
            function_name=self.function_name, alias="live", current_version="1", target_version="2"
        )
        content = render_appspec(target)

        self.deployment_id = codedeploy.create_deployment(
            applicationName="orders-app",
            deploymentGroupName="orders-group",
            revision={
                "revisionType": "AppSpecContent",
                "appSpecContent": {
                    "content": content,
                    "sha256": hashlib.sha256(content.encode()).hexdigest(),
                },
            },
        )["deploymentId"]
        self.execution_id = moto_codedeploy.start_lifecycle_event(self.deployment_id, "BeforeAllowTraffic")
        return self

    @property
    def event(self) -> dict[str, str]:
        return {"DeploymentId": self.deployment_id, "LifecycleEventHookExecutionId": self.execution_id}

    def reports(self) -> list[str]:
        from deployguard_cli.localaws import moto_codedeploy

        return [r.status for r in moto_codedeploy.hook_reports(self.deployment_id)]
