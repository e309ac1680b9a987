"""``deployguard rehearse``: whole guarded deployments of the example application on an embedded AWS.

The modules, from the bottom up: :mod:`.clock` (virtual time), :mod:`.wiring` (what template.yaml
deploys), :mod:`.lambdas` (the guard functions' real handlers, run in-process as Lambda would),
:mod:`.traffic` (simulated traffic and its AWS/Lambda metrics), :mod:`.alarms` (CloudWatch alarm
evaluation and EventBridge delivery), :mod:`.stepfunctions` (the bake workflow's waits),
:mod:`.engine` (CodeDeploy's part), :mod:`.world` (moto set-up), :mod:`.scenarios` (the five
stories and what each must end in) and :mod:`.runner` (one scenario, start to finish).
"""
