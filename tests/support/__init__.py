"""What tests/ and scripts/ share to build a world and read what DeployGuard wrote.

- ``handlers``: the repository's events and handlers as tests load them, a Lambda context (no AWS);
- ``outcomes``: DeployGuard's log lines and EMF metrics captured, fakes of its ports, outcome
  records to start from (no AWS);
- ``aws``: an embedded AWS (moto with DeployGuard's extensions) and builders for what lives in it:
  a function with versions and an alias, a CodeDeploy deployment, alarms and their state change
  events, the AWS calls of DeployGuard's own clients counted or made to fail;
- ``release``: the 'orders' release under CodeDeploy with the staging policy, as the integration
  tests and the benchmarks deploy it.

The benchmarks import it as ``tests.support`` because they run as modules from the repository root
(``python -m scripts.bench``, which ``make bench`` does); nothing edits ``sys.path``.
"""
