"""Helpers that run the real SAM / CloudFormation tooling (aws-sam-translator) for tests and make."""
