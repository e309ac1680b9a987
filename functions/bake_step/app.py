"""The bake workflow's Task (statemachine/bake.asl.json): one poll of the guarded alarms and the
new version's metrics; reports the AfterAllowTraffic status itself when the verdict is final.
The event is ``{"input": <the workflow's document>, "execution_name": …}``; ``"action": "fail"``
(the workflow's Catch) reports Failed.

Thin by design: all logic lives in the ``deployguard`` layer package.
"""

from __future__ import annotations

import os
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from deployguard.entrypoints import bake_step
from deployguard.observability import logger


@logger.inject_lambda_context(
    correlation_id_path="input.state.deployment_id || deployment_id || state.deployment_id", clear_state=True
)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return bake_step(event, context, os.environ)
