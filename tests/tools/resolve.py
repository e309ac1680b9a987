"""Resolve a template's intrinsic functions for one stage, as CloudFormation would.

Shared by tests/unit/test_template.py (the guards' environments, names and policies) and
tests/tools/iam_lint.py (every IAM statement as the concrete ARNs an account would see). Standard
library only: iam_lint runs it in the parliament tool's own virtual environment.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

ACCOUNT, REGION, PARTITION = "123456789012", "us-east-1", "aws"


class Resolver:
    """Resolve Ref / Fn::Sub / Fn::FindInMap / Fn::GetAtt / Fn::If / Fn::Join / Fn::Split /
    Fn::Select for one stage.

    Works on template.yaml as parsed and on SAM's transformed template. ``Ref`` gives what
    CloudFormation's Ref gives (a function's name, a topic's or state machine's ARN, a queue's
    URL); ``Fn::GetAtt [X, Arn]`` gives the ARN of the resource types DeployGuard's policies name,
    and ``"X.Attribute"`` for any other attribute.
    """

    def __init__(
        self, stage: str, template: dict[str, Any], parameters: Mapping[str, str] | None = None
    ) -> None:
        self.stage, self.template = stage, template
        self.parameters = {name: str(p.get("Default", "")) for name, p in template["Parameters"].items()}
        self.parameters.update(parameters or {})
        self.parameters["Stage"] = stage
        self.list_parameters = {
            name
            for name, p in template["Parameters"].items()
            if str(p.get("Type", "")).startswith(("CommaDelimitedList", "List<"))
        }

    def ref(self, name: str) -> str:
        pseudo = {"AWS::Region": REGION, "AWS::AccountId": ACCOUNT, "AWS::Partition": PARTITION}
        if name in pseudo:
            return pseudo[name]
        if name in self.parameters:
            return self.parameters[name]
        item = self.template["Resources"][name]
        properties = item.get("Properties", {})
        kind = item["Type"]
        if kind == "AWS::SNS::Topic":
            return f"arn:{PARTITION}:sns:{REGION}:{ACCOUNT}:{self._name(name, properties, 'TopicName')}"
        if kind == "AWS::SQS::Queue":
            return f"https://sqs.{REGION}.amazonaws.com/{ACCOUNT}/{self._name(name, properties, 'QueueName')}"
        if kind.endswith("StateMachine"):
            machine = self._name(name, properties, "Name", "StateMachineName")
            return f"arn:{PARTITION}:states:{REGION}:{ACCOUNT}:stateMachine:{machine}"
        if kind.endswith("Function"):
            return self._name(name, properties, "FunctionName")
        if kind == "AWS::Logs::LogGroup":
            return self._name(name, properties, "LogGroupName")
        if kind == "AWS::DynamoDB::Table":
            return self._name(name, properties, "TableName")
        if kind == "AWS::S3::Bucket":
            return self._name(name, properties, "BucketName")
        return name

    def _name(self, logical_id: str, properties: Mapping[str, Any], *keys: str) -> str:
        """The resource's physical name from its name property (CloudFormation generates one from
        the logical id when the template sets none)."""
        for key in keys:
            if key in properties:
                return str(self(properties[key]))
        return f"{logical_id}-GENERATED"

    def arn(self, name: str) -> str | None:
        """``Fn::GetAtt [name, Arn]`` for the resource types whose ARN policies name."""
        item = self.template["Resources"][name]
        kind = item["Type"]
        base = f"arn:{PARTITION}"
        if kind.endswith("Function"):
            return f"{base}:lambda:{REGION}:{ACCOUNT}:function:{self.ref(name)}"
        if kind == "AWS::Logs::LogGroup":
            return f"{base}:logs:{REGION}:{ACCOUNT}:log-group:{self.ref(name)}:*"
        if kind == "AWS::SQS::Queue":
            return f"{base}:sqs:{REGION}:{ACCOUNT}:{self.ref(name).rsplit('/', 1)[-1]}"
        if kind.endswith("StateMachine") or kind == "AWS::SNS::Topic":
            return self.ref(name)
        if kind == "AWS::Events::Rule":
            rule = self._name(name, item.get("Properties", {}), "Name")
            return f"{base}:events:{REGION}:{ACCOUNT}:rule/{rule}"
        if kind == "AWS::CloudWatch::Alarm":
            alarm = self._name(name, item.get("Properties", {}), "AlarmName")
            return f"{base}:cloudwatch:{REGION}:{ACCOUNT}:alarm:{alarm}"
        if kind == "AWS::IAM::Role":
            role = self._name(name, item.get("Properties", {}), "RoleName")
            return f"{base}:iam::{ACCOUNT}:role/{role}"
        if kind == "AWS::DynamoDB::Table":
            return f"{base}:dynamodb:{REGION}:{ACCOUNT}:table/{self.ref(name)}"
        if kind == "AWS::S3::Bucket":
            return f"{base}:s3:::{self.ref(name)}"  # S3 ARNs name no region or account
        return None

    def __call__(self, value: Any) -> Any:
        if isinstance(value, str | int | float | bool):
            return str(value) if not isinstance(value, str) else value
        if isinstance(value, list):
            return [self(v) for v in value]
        assert isinstance(value, dict), value
        if len(value) != 1 or not next(iter(value)).startswith(("Fn::", "Ref")):
            return {key: self(item) for key, item in value.items()}
        ((function, argument),) = value.items()
        intrinsics: dict[str, Callable[[Any], Any]] = {
            "Ref": self._ref,
            "Fn::FindInMap": self._find_in_map,
            "Fn::Sub": self._sub,
            "Fn::GetAtt": self._get_att,
            "Fn::If": self._if,
            "Fn::Join": self._join,
            "Fn::Split": self._split,
            "Fn::Select": self._select,
        }
        if function not in intrinsics:
            raise AssertionError(f"unsupported intrinsic {function}")
        return intrinsics[function](argument)

    def _ref(self, name: str) -> Any:
        if name in self.list_parameters:
            return self.parameters[name].split(",")
        return self.ref(name)

    def _find_in_map(self, argument: list[Any]) -> str:
        mapping, key, field = (self(a) for a in argument)
        return str(self.template["Mappings"][mapping][key][field])

    def _sub(self, argument: Any) -> str:
        text, variables = (argument, {}) if isinstance(argument, str) else argument
        return re.sub(r"\$\{([^}!]+)\}", lambda m: self._sub_var(m.group(1), variables), text)

    def _get_att(self, argument: Any) -> str:
        name, attribute = argument if isinstance(argument, list) else argument.split(".", 1)
        arn = self.arn(name) if attribute == "Arn" else None
        return arn if arn is not None else f"{self.ref(name)}.{attribute}"

    def _if(self, argument: list[Any]) -> Any:
        condition, when_true, when_false = argument
        return self(when_true if self.condition(condition) else when_false)

    def _join(self, argument: list[Any]) -> str:
        separator, items = argument
        values = self(items)
        return str(separator).join(str(item) for item in (values if isinstance(values, list) else [values]))

    def _split(self, argument: list[Any]) -> list[str]:
        separator, text = argument
        return str(self(text)).split(str(separator))

    def _select(self, argument: list[Any]) -> Any:
        index, items = argument
        return self(items)[int(self(index))]

    def _sub_var(self, name: str, variables: dict[str, Any]) -> str:
        if name in variables:
            return str(self(variables[name]))
        if "." in name and not name.startswith("AWS::"):
            return str(self({"Fn::GetAtt": name.split(".", 1)}))
        return self.ref(name)

    def condition(self, name: str) -> bool:
        expression = self.template["Conditions"][name]
        return self._truth(expression)

    def _truth(self, expression: Any) -> bool:
        ((function, argument),) = expression.items()
        if function == "Fn::Equals":
            return bool(self(argument[0]) == self(argument[1]))
        if function == "Fn::Not":
            return not self._truth(argument[0])
        if function == "Fn::And":
            return all(self._truth(item) for item in argument)
        if function == "Fn::Or":
            return any(self._truth(item) for item in argument)
        if function == "Condition":
            return self.condition(argument)
        raise AssertionError(f"unsupported condition {function}")
