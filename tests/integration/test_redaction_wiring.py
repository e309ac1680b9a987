"""The invocation's redactor is built from the real versions' environments on moto: both versions
read, each once, and every value that could be a secret masked."""

from __future__ import annotations

import pytest

from deployguard import entrypoints
from deployguard.redaction import version_redactor
from tests.support.aws import Version, counted_calls, function_with_versions

SECRET = "s3cr3t-Pa55w0rd-for-the-db"
OLD_SECRET = "0ld-pa55w0rd-still-live-1"


@pytest.mark.usefixtures("aws")
def test_the_redactor_masks_the_secrets_of_both_versions_and_reads_each_version_once() -> None:
    # GIVEN a function whose live and new versions hold different secrets
    function_with_versions(
        "orders",
        [
            Version(environment={"DB_PASSWORD": OLD_SECRET, "LOG_LEVEL": "INFO"}),
            Version(environment={"DB_PASSWORD": SECRET, "LOG_LEVEL": "INFO"}),
        ],
    )

    # WHEN the redactor of the deployment 1 -> 2 is built (the target named twice)
    with counted_calls() as calls:
        redactor = version_redactor(entrypoints.lambda_adapter(), "orders", ["2", "1", "2", None])

    # THEN each version's environment was read once, and both secrets are masked but not the level
    assert calls.count("GetFunctionConfiguration") == 2
    text = redactor(f"connect failed: password {SECRET} rejected (old {OLD_SECRET}); LOG_LEVEL=INFO")
    assert SECRET not in text and OLD_SECRET not in text
    assert "INFO" in text
