"""The embedded local AWS: moto, extended where it falls short of the real APIs DeployGuard uses."""
