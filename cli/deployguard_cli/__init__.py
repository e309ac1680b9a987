"""DeployGuard's command line, local AWS and rehearsal engine. Never shipped in the Lambda layer."""
