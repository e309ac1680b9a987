"""The embedded local AWS: moto, extended where it falls short of the real APIs DeployGuard uses.

:func:`install_extensions` installs them all, for an in-process ``mock_aws`` (the rehearsal's
:class:`~deployguard_cli.rehearsal.world.World`) and a moto server in this process
(``deployguard localaws serve``, :mod:`deployguard_cli.localaws.server`) alike: one place says
which extensions make up the local AWS.
"""

from __future__ import annotations


def install_extensions() -> None:
    """Patch moto with DeployGuard's extensions (each ``install`` is idempotent): CodeDeploy's
    hook APIs, Lambda Invoke running real code, UpdateAlias's ``RevisionId`` lock, Lambda's
    function-configuration limits, CloudWatch's composite alarms, S3's single-PUT limit, and Step
    Functions' corrections (its routing onto the
    rehearsal's virtual clock stays inert until :func:`~deployguard_cli.localaws.moto_stepfunctions.routed`).

    Not here: the API rate quotas (:mod:`~deployguard_cli.localaws.quotas`), which a caller turns on
    for a block.
    """
    # NOTE: imported here: moto is heavy, and importing a sibling module must not pull it in.
    from deployguard_cli.localaws import (  # noqa: PLC0415
        lambda_runner,
        moto_cloudwatch,
        moto_codedeploy,
        moto_lambda_alias,
        moto_lambda_limits,
        moto_s3_limits,
        moto_stepfunctions,
    )

    for extension in (
        moto_codedeploy,
        lambda_runner,
        moto_lambda_alias,
        moto_lambda_limits,
        moto_cloudwatch,
        moto_s3_limits,
        moto_stepfunctions,
    ):
        extension.install()
