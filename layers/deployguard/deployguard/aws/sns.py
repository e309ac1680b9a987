"""SNS: publish DeployGuard's alerts to one topic (``DEPLOYGUARD_ALERT_TOPIC_ARN``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from deployguard.aws.errors import aws_call
from deployguard.notify import Alert

if TYPE_CHECKING:
    from mypy_boto3_sns import SNSClient
    from mypy_boto3_sns.type_defs import MessageAttributeValueTypeDef


class Sns:
    """The ``AlertPublisher`` port. Raises AwsCallError; ``record_outcome`` logs it and carries on."""

    def __init__(self, client: Callable[[], SNSClient], topic_arn: str) -> None:
        # NOTE: the client is made on the first alert: most hook runs publish none, and a client
        # costs tens of milliseconds of cold start.
        self._client = client
        self._topic_arn = topic_arn

    @property
    def topic_arn(self) -> str:
        return self._topic_arn

    def publish(self, alert: Alert) -> None:
        attributes: dict[str, MessageAttributeValueTypeDef] = {
            name: {"DataType": "String", "StringValue": value} for name, value in alert.attributes.items()
        }
        fifo = (
            {"MessageGroupId": alert.deployment_id, "MessageDeduplicationId": alert.deduplication_id}
            if self._topic_arn.endswith(".fifo")
            else {}
        )
        with aws_call("Publish"):
            self._client().publish(
                TopicArn=self._topic_arn,
                Subject=alert.subject,
                Message=alert.message,
                MessageAttributes=attributes,
                **fifo,
            )
