"""The load test (``make load``, ``scripts/load.py``) reduced to a fleet of 10 and 20 alarm events: guarded deployments
whose hooks all start within a second, then an alarm storm, through AWS's rate quotas
(``deployguard_cli.localaws.quotas``). Throttling must not fail a good release, nor a rollback."""

from __future__ import annotations

import pytest

from scripts import load
from tests.support.release import HOOK_ENV


def test_a_fleet_deployed_at_once_and_an_alarm_storm_fail_nothing_spuriously(
    aws_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key, value in HOOK_ENV.items():
        monkeypatch.setenv(key, value)

    # NOTE: the policy names the deployment groups, so the storm does not wait on the lookup of the
    # account's deployments (measured by `make load` and scripts/bench_rollback.py)
    phases = load.run(10, 20, named_groups=True, log=lambda _text: None)

    assert [phase.name for phase in phases] == ["pre-traffic hooks", "post-traffic hooks", "alarm storm"]
    for phase in phases:
        assert phase.failures == [], phase.report()
    assert phases[0].peak > 1  # the hooks really ran at once
    assert "GetFunctionEventInvokeConfig" not in {operation for _service, operation in phases[0].calls}
    # CodeDeploy shifted every deployment's traffic inside the first burst, under the same quota
    assert phases[0].calls["lambda", "UpdateAlias"] >= 10 and phases[1].runs == 10
    # the rollbacks quote no AWS error: no version's environment is read for their records
    assert ("lambda", "GetFunctionConfiguration") not in phases[2].calls
