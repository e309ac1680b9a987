"""CloudWatch on moto: ``PutCompositeAlarm``, which moto 5.2 lacks.

moto stores composite alarms already (an ``Alarm`` with a ``rule``, which ``DescribeAlarms`` returns
under ``CompositeAlarms``) but answers ``PutCompositeAlarm`` with NotImplementedError. Its
``PutMetricAlarm`` handler reads ``AlarmRule`` for exactly this reuse, so :func:`install` routes
``PutCompositeAlarm`` there. The composite alarm's state is not computed from its rule: set it with
``SetAlarmState``, as for any alarm in moto.
"""

from __future__ import annotations

import threading
from typing import Final

from moto.cloudwatch.responses import CloudWatchResponse
from moto.core.responses import ActionResult

_PATCH_MARK: Final = "_deployguard_moto_cloudwatch"
_lock = threading.Lock()


def _put_composite_alarm(self: CloudWatchResponse) -> ActionResult:
    if not self._get_param("AlarmRule"):
        from moto.cloudwatch.exceptions import ValidationError  # noqa: PLC0415 - moto is heavy

        raise ValidationError(
            "1 validation error detected: Value null at 'alarmRule' failed to satisfy constraint"
        )
    return CloudWatchResponse.put_metric_alarm(self)


def install() -> None:
    """Add PutCompositeAlarm to moto's CloudWatch (in-process ``mock_aws`` and moto servers). Idempotent."""
    with _lock:
        if getattr(CloudWatchResponse, _PATCH_MARK, False):
            return
        CloudWatchResponse.put_composite_alarm = _put_composite_alarm  # type: ignore[attr-defined]
        setattr(CloudWatchResponse, _PATCH_MARK, True)
