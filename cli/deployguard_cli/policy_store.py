"""The policy store as the CLI writes and reads it: a stage's baseline and its applications'
documents in the policy bucket (``deployguard.aws.policy_store`` has the layout and the hooks' reader).

Publishing never overwrites someone else's change silently: the document's ETag is read first and
the PutObject is conditional on it (``IfMatch``; ``IfNoneMatch: "*"`` when there is no document
yet). If another publisher stored a version in between, S3 answers 412 PreconditionFailed (or 409
ConditionalRequestConflict while the other upload is in flight) and the publish stops with a
:class:`PublishConflict` that says to check the new version and publish again.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Any

from botocore.exceptions import ClientError

from deployguard.aws.errors import aws_call, error_code
from deployguard.documents import MAX_DOCUMENT_BYTES, DocumentLimitError, parse_json
from deployguard.errors import DeployGuardError
from deployguard.stages import Stage, application_key, applications_prefix, baseline_key

BUCKET_VARIABLE = "DEPLOYGUARD_POLICY_BUCKET"
BUCKET_NAME = "deployguard-{stage}-policies-{account}-{region}"
"""The name template.yaml gives the stage's policy bucket (its output ``PolicyBucketName``)."""

CONFLICT_CODES = ("PreconditionFailed", "ConditionalRequestConflict")


class PublishError(DeployGuardError):
    code = "POLICY_PUBLISH"


class PublishConflict(PublishError):
    """Another publisher changed the document between our read and our write."""


def default_bucket(stage: Stage, account: str, region: str) -> str:
    return BUCKET_NAME.format(stage=stage.value, account=account, region=region)


def resolve_bucket(flag: str | None, stage: Stage) -> str:
    """``--bucket``, else ``$DEPLOYGUARD_POLICY_BUCKET``, else the name template.yaml gives the
    stage's bucket in the caller's account and region (STS GetCallerIdentity)."""
    if flag:
        return flag
    if os.environ.get(BUCKET_VARIABLE):
        return os.environ[BUCKET_VARIABLE]
    import boto3  # noqa: PLC0415 — only when the name is derived

    session = boto3.session.Session()
    with aws_call("GetCallerIdentity"):
        account = session.client("sts").get_caller_identity()["Account"]
    return default_bucket(stage, account, session.region_name or "us-east-1")


def read_document(s3: Any, bucket: str, key: str) -> tuple[str, str] | None:
    """The stored document's (ETag, text); None when there is none."""
    try:
        answer = s3.get_object(Bucket=bucket, Key=key)
    except ClientError as exc:
        if error_code(exc) in ("NoSuchKey", "404"):
            return None
        with aws_call("GetObject"):
            raise
    return str(answer["ETag"]), answer["Body"].read().decode("utf-8")


def encode(document: Mapping[str, Any], key: str) -> bytes:
    """``document`` as the hooks will read it (compact JSON), within DeployGuard's per-document
    limits (:mod:`deployguard.documents`): PublishError naming the limit otherwise."""
    body = json.dumps(document, separators=(",", ":"), ensure_ascii=False)
    data = body.encode()
    if len(data) > MAX_DOCUMENT_BYTES:
        raise PublishError(
            f"{key} would be {len(data):,} bytes, over DeployGuard's cap of {MAX_DOCUMENT_BYTES:,} bytes "
            "per document (MAX_DOCUMENT_BYTES): split the application into several applications (one "
            "document each), use a glob 'match' for functions guarded alike, or shorten smoke payloads"
        )
    try:
        parse_json(body)
    except DocumentLimitError as exc:
        raise PublishError(f"{key} would be over a limit the hooks read with: {exc} ({exc.fix})") from exc
    return data


def put_document(s3: Any, bucket: str, key: str, data: bytes, *, etag: str | None) -> str:
    """Store ``data`` at ``key`` only if the object is still what we read (``etag``; None: there was
    none). Its new ETag; PublishConflict when another publisher was first."""
    condition = {"IfMatch": etag} if etag is not None else {"IfNoneMatch": "*"}
    try:
        answer = s3.put_object(Bucket=bucket, Key=key, Body=data, ContentType="application/json", **condition)
    except ClientError as exc:
        if error_code(exc) in CONFLICT_CODES:
            raise PublishConflict(
                f"s3://{bucket}/{key} changed while this publish ran (another publisher stored a version "
                f"first; S3 answered {error_code(exc)}): nothing was overwritten — look at the new "
                "version (`deployguard policy show`), merge your change into it, and publish again"
            ) from exc
        with aws_call("PutObject"):
            raise
    return str(answer.get("ETag", ""))


def application_names(s3: Any, bucket: str, stage: Stage) -> list[str]:
    prefix = applications_prefix(stage)
    names: list[str] = []
    with aws_call("ListObjectsV2"):
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            for item in page.get("Contents", []):
                name = str(item["Key"]).removeprefix(prefix)
                if name.endswith(".json") and "/" not in name:
                    names.append(name.removesuffix(".json"))
    return names


def split_policy(document: Mapping[str, Any], application: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """A whole-stage policy document (the format before the store: ``unguarded``, ``rollback`` and
    ``functions`` in one) as a baseline and one application's document."""
    baseline = {k: document[k] for k in ("version", "stage", "unguarded", "rollback") if k in document}
    app = {
        "version": document.get("version", 1),
        "stage": document.get("stage"),
        "application": application,
        "functions": document.get("functions"),
    }
    return baseline, app


def store_split(s3: Any, bucket: str, document: Mapping[str, Any], application: str) -> None:
    """Store a whole-stage policy as its baseline and ``application``'s document, unconditionally
    (the embedded AWS of the tests and the rehearsal: nobody else publishes there)."""
    baseline, app = split_policy(document, application)
    stage = Stage(str(document.get("stage")))
    s3.put_object(Bucket=bucket, Key=baseline_key(stage), Body=json.dumps(baseline).encode())
    s3.put_object(Bucket=bucket, Key=application_key(stage, application), Body=json.dumps(app).encode())
