"""``deployguard rehearse``: whole guarded deployments of the example application on an embedded AWS.

The modules, from the bottom up: :mod:`.clock` (virtual time), :mod:`.wiring` (what template.yaml
deploys), :mod:`.lambdas` (the guard functions' real handlers, run in-process as Lambda would),
:mod:`.traffic` (simulated traffic and its AWS/Lambda metrics), :mod:`.alarms` (CloudWatch alarm
evaluation and its EventBridge events), :mod:`.engine` (CodeDeploy's part), :mod:`.world` (moto
set-up; Step Functions is moto's own interpreter, routed by
:mod:`deployguard_cli.localaws.moto_stepfunctions`), :mod:`.scenarios` (the five stories and what
each must end in) and :mod:`.runner` (one scenario, start to finish).
"""
