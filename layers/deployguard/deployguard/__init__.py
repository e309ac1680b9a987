"""DeployGuard: guards for AWS Lambda deployments at CodeDeploy's lifecycle hooks.

This package is what the Lambda layer ships (under /opt/python). Its parts and their arrows:

- ``entrypoints``: the composition root, one function per guard function; the only module
  outside ``aws`` that imports an adapter;
- the use cases, one per function, none importing another: ``pre_traffic``, ``post_traffic``,
  ``bake_step``, ``alarm_rollback``;
- what they share: ``hook`` (the lifecycle hook protocol), ``guard`` (is the function guarded, is
  the deployment bypassed), ``watch`` (one poll of alarms and metrics), ``restore`` (stop, then
  put the alias back), and the domain (policy, checks, findings, outcome records…);
- ``ports``: the Protocols the use cases need from AWS; ``aws``: the adapters implementing them.
"""

__version__ = "0.1.0"
