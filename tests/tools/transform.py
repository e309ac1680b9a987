"""template.yaml through aws-sam-translator's ``transform()``: the CloudFormation SAM deploys.

Used by tests/unit/test_template.py (assertions on the generated resources) and by ``make
validate`` (checkov scans the transformed template too, where SAM's generated resources live).
Offline: local code paths become placeholder S3 URIs (as ``sam validate`` does) and managed
policy names resolve through a fixed stub instead of IAM.

    .venv/bin/python -m tests.tools.transform template.yaml --output .aws-sam/transformed-template.json
"""

from __future__ import annotations

import argparse
import copy
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from samtranslator.translator.transform import transform
from samtranslator.yaml_helper import yaml_parse

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "template.yaml"
REGION = "us-east-1"
PLACEHOLDER_BUCKET = "s3://deployguard-placeholder-bucket"

# Code locations SAM CLI packages (sam build / sam package), per resource type.
_LOCAL_URIS = {
    "AWS::Serverless::Function": "CodeUri",
    "AWS::Serverless::LayerVersion": "ContentUri",
    "AWS::Serverless::StateMachine": "DefinitionUri",
}

# Managed policies SAM may attach by name. DeployGuard's roles are explicit, so none is expected;
# the stub keeps transform() offline and makes any use visible in the output.
MANAGED_POLICIES = {
    "AWSLambdaBasicExecutionRole": "arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole",
    "AWSXrayWriteOnlyAccess": "arn:aws:iam::aws:policy/AWSXrayWriteOnlyAccess",
    "AWSCodeDeployRoleForLambda": "arn:aws:iam::aws:policy/service-role/AWSCodeDeployRoleForLambda",
}


class ManagedPolicyLoaderStub:
    """Stands in for samtranslator's IAM-backed ManagedPolicyLoader."""

    def load(self) -> dict[str, str]:
        return dict(MANAGED_POLICIES)


def load_template(path: Path = TEMPLATE) -> dict[str, Any]:
    """template.yaml as CloudFormation JSON (short-form tags become Fn:: / Ref)."""
    template: dict[str, Any] = yaml_parse(path.read_text())
    return template


def with_placeholder_uris(template: Mapping[str, Any]) -> dict[str, Any]:
    """A copy whose local code paths are placeholder S3 URIs, as `sam validate` does."""
    result = copy.deepcopy(dict(template))
    for name, resource in result.get("Resources", {}).items():
        key = _LOCAL_URIS.get(resource.get("Type", ""))
        properties = resource.get("Properties", {})
        if key and isinstance(properties.get(key), str) and not properties[key].startswith("s3://"):
            properties[key] = f"{PLACEHOLDER_BUCKET}/{name}"
    return result


def transformed(
    template: Mapping[str, Any] | None = None, parameters: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """The CloudFormation template SAM generates from ``template`` (default: template.yaml)."""
    os.environ.setdefault("AWS_DEFAULT_REGION", REGION)
    source = with_placeholder_uris(template if template is not None else load_template())
    output: dict[str, Any] = transform(source, dict(parameters or {}), ManagedPolicyLoaderStub())
    return output


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("template", type=Path, nargs="?", default=TEMPLATE)
    parser.add_argument("--output", type=Path, required=True)
    args = parser.parse_args(argv)
    args.output.write_text(json.dumps(transformed(load_template(args.template)), indent=2, default=str))
    print(f"{args.output}: transformed {args.template} with aws-sam-translator")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
