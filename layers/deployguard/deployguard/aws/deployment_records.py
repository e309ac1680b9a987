"""DynamoDB: the deployment records the pre-traffic hook writes and the alarm rollback reads
(``deployguard.lookup``). One item per function and alias (partition key ``function_name``, sort
key ``alias``), the newest deployment the hook saw start, expiring with the table's TTL; its
``tags`` (a map) are the function's scope tags the hook read, absent when it read none."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, Protocol

from botocore.exceptions import ClientError

from deployguard.aws.errors import aws_call, error_code
from deployguard.aws.warm_cache import WarmCache
from deployguard.lookup import RECORD_TTL, SCOPE_TAGS, DeploymentRecord

# The table's key (template.yaml's DeploymentRecordsTable must declare exactly this): attribute, key type
TABLE_KEYS = (("function_name", "HASH"), ("alias", "RANGE"))
TTL_ATTRIBUTE = "expires_at"
RECORDS_KEPT = 1024  # functions whose records are remembered while warm
RECORDS_MAX_AGE = 60.0  # seconds a function's records are remembered (they are verified anyway)


class DynamoDBClient(Protocol):
    """The DynamoDB calls DeployGuard makes (boto3's client satisfies it)."""

    def put_item(self, **kwargs: Any) -> Mapping[str, Any]: ...
    def query(self, **kwargs: Any) -> Mapping[str, Any]: ...


class DeploymentRecords:
    """The ``DeploymentRecordsPort`` over one table. Raises AwsCallError."""

    def __init__(
        self,
        client: Callable[[], DynamoDBClient],
        table_name: str,
        *,
        max_age: float = RECORDS_MAX_AGE,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        # NOTE: the client is made on first use: an invocation that neither writes nor reads a
        # record (an alarm that guards nothing) does not pay for it.
        self._client = client
        self._table = table_name
        self._remembered: WarmCache[str, list[DeploymentRecord]] = WarmCache(RECORDS_KEPT, max_age, clock)

    def record(self, entry: DeploymentRecord) -> bool:
        """PutItem, unless the table holds a newer deployment of the function and alias (then False:
        a late retry of an older hook never hides a newer deployment)."""
        created = entry.created_at.astimezone(UTC).isoformat()  # NOTE: compared as text: one zone
        item = {
            "function_name": {"S": entry.function_name},
            "alias": {"S": entry.alias},
            "deployment_id": {"S": entry.deployment_id},
            "application_name": {"S": entry.application_name},
            "deployment_group_name": {"S": entry.deployment_group_name},
            "created_at": {"S": created},
            TTL_ATTRIBUTE: {"N": str(int((entry.created_at + RECORD_TTL).timestamp()))},
            **({"appspec": {"S": entry.appspec}} if entry.appspec else {}),
            **(
                {"tags": {"M": {k: {"S": v} for k, v in entry.tags.items()}}}
                if entry.tags is not None
                else {}
            ),
        }
        with aws_call("PutItem"):
            try:
                self._client().put_item(
                    TableName=self._table,
                    Item=item,
                    ConditionExpression="attribute_not_exists(function_name) OR created_at <= :created",
                    ExpressionAttributeValues={":created": {"S": created}},
                )
            except ClientError as exc:
                if error_code(exc) == "ConditionalCheckFailedException":
                    return False
                raise
        self._remembered.forget(entry.function_name)
        return True

    def latest(self, function_name: str) -> list[DeploymentRecord]:
        """The function's records (one per alias), remembered for ``max_age`` seconds; items that
        are not records are skipped (a record is a hint: the reader verifies it)."""
        kept = self._remembered.get(function_name)
        if kept is not None:
            return list(kept)
        items: list[Mapping[str, Any]] = []
        start: Mapping[str, Any] | None = None
        while True:
            with aws_call("Query"):
                page = self._client().query(
                    TableName=self._table,
                    KeyConditionExpression="function_name = :name",
                    ExpressionAttributeValues={":name": {"S": function_name}},
                    **({"ExclusiveStartKey": start} if start else {}),
                )
            items += page.get("Items", [])
            start = page.get("LastEvaluatedKey")
            if not start:
                break
        found = [record for record in map(_record, items) if record is not None]
        self._remembered.put(function_name, found)
        return list(found)


def _record(item: Mapping[str, Any]) -> DeploymentRecord | None:
    def text(name: str) -> str:
        value = item.get(name)
        return str(value.get("S", "")) if isinstance(value, Mapping) else ""

    try:
        created = datetime.fromisoformat(text("created_at"))
    except ValueError:
        return None
    fields = [text(name) for name in ("function_name", "alias", "deployment_id", "application_name")]
    group = text("deployment_group_name")
    if created.tzinfo is None or not all(fields) or not group:
        return None
    function_name, alias, deployment_id, application = fields
    return DeploymentRecord(
        function_name=function_name,
        alias=alias,
        deployment_id=deployment_id,
        application_name=application,
        deployment_group_name=group,
        created_at=created,
        appspec=text("appspec") or None,
        tags=_tags(item.get("tags")),
    )


def _tags(value: Any) -> dict[str, str] | None:
    """A record's tags: a map of strings (SCOPE_TAGS only); None when absent or of another shape (then
    the rollback reads the function's tags itself)."""
    tags = value.get("M") if isinstance(value, Mapping) else None
    if not isinstance(tags, Mapping):
        return None
    found: dict[str, str] = {}
    for key, tagged in tags.items():
        if key in SCOPE_TAGS:
            if not (isinstance(tagged, Mapping) and isinstance(tagged.get("S"), str)):
                return None
            found[str(key)] = tagged["S"]
    return found
