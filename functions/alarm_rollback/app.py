"""Alarm rollback (EventBridge "CloudWatch Alarm State Change" to ALARM): stop the guarded
function's in-flight deployment and put its alias back on the previous version at once.

Thin by design: all logic lives in the ``deployguard`` layer package.
"""

from __future__ import annotations

import os
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from deployguard.entrypoints import alarm_rollback
from deployguard.observability import logger


@logger.inject_lambda_context(correlation_id_path="detail.alarmName", clear_state=True)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return alarm_rollback(event, context, os.environ)
