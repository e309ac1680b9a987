"""CodeDeployHook_ post-traffic (AfterAllowTraffic): smoke-test the live alias, check the guarded
alarms and the new version's own metrics, then report — or start the bake workflow, which reports.

Thin by design: the decorator stack sets up logging (correlation id = the deployment id); all
logic lives in the ``deployguard`` layer package.
"""

from __future__ import annotations

import os
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from deployguard.entrypoints import post_traffic_hook
from deployguard.observability import logger


@logger.inject_lambda_context(correlation_id_path="DeploymentId", clear_state=True)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return post_traffic_hook(event, context, os.environ)
