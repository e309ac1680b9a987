"""DeployGuard: guards for AWS Lambda deployments at CodeDeploy's lifecycle hooks.

This package is what the Lambda layer ships (under /opt/python). It holds the domain logic
(policy, config validation, smoke tests, hook orchestration) and thin AWS adapters.
"""

__version__ = "0.1.0"
