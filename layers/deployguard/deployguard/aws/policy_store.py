"""The stage's guard policy, read from the policy bucket (S3) through a Powertools provider.

Layout (one versioned, SSE-KMS bucket per DeployGuard deployment):

- ``<stage>/baseline.json``: the stage's baseline (platform team): defaults, floors, ``unguarded``;
- ``<stage>/apps/<application>.json``: one application's functions (its team).

A function belongs to the application its ``deployguard:app`` tag names. Its effective policy is the
baseline's defaults with its application's entry merged over them, checked against the floors
(:func:`deployguard.policy.effective_policy`).

Reads are cheap when nothing changed: the provider keeps each document for ``max_age`` seconds
(Powertools' cache), then revalidates it with a conditional GetObject (``IfNoneMatch`` the ETag it
holds): S3 answers 304 with no body, and the parsed policy, kept per pair of ETags, is reused —
no download, no parse. A missing application document is not an error: the function is unguarded
(the baseline's ``unguarded`` decides) and the finding names the fix. A missing baseline, an
unreadable or invalid document, or one over DeployGuard's size cap is a PolicyError, which fails the
deployment with the reason.

Parsing needs pydantic and the policy models: the largest part of a cold start after boto3 itself
(≈ 0.4 G instructions, ``scripts/bench.py``). It is not paid at init: :meth:`PolicyStore.prepare`
builds the parser on a background thread when an invocation starts, so it overlaps the network
waits of the calls before the policy is needed instead of following them; :meth:`PolicyStore.load`
waits for it before parsing.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Protocol, cast

from aws_lambda_powertools.utilities.parameters.base import BaseProvider
from aws_lambda_powertools.utilities.parameters.exceptions import GetParameterError
from botocore.exceptions import ClientError

from deployguard.aws.errors import error_code
from deployguard.documents import MAX_DOCUMENT_BYTES
from deployguard.errors import PolicyError
from deployguard.stages import APP_TAG, Stage, application_key, applications_prefix, baseline_key

if TYPE_CHECKING:
    from deployguard.policy import Baseline, Policy

NOT_MODIFIED = "304"  # the error code botocore gives a conditional GetObject that matched the ETag
MISSING = ("NoSuchKey", "404")


class S3Client(Protocol):
    """The S3 calls DeployGuard's hooks make (boto3's client satisfies it)."""

    meta: Any  # botocore's client metadata (its event hooks)

    def get_object(self, **kwargs: Any) -> Mapping[str, Any]: ...
    def list_objects_v2(self, **kwargs: Any) -> Mapping[str, Any]: ...


class Document:
    """One stored document as last read: its ETag and text (None: there is no such object)."""

    __slots__ = ("etag", "text")

    def __init__(self, etag: str | None, text: str | None) -> None:
        self.etag = etag
        self.text = text


class S3DocumentProvider(BaseProvider):
    """Powertools parameters provider over one bucket: ``get(key)`` returns a :class:`Document`,
    revalidated by ETag once ``max_age`` has passed (a 304 reuses the text it holds)."""

    def __init__(self, client: Callable[[], S3Client], bucket: str) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self._client = client  # made on first use (see PolicyStore)
        self._bucket = bucket
        self._held: dict[str, Document] = {}
        self.not_modified = 0  # conditional reads S3 answered with 304 (what the tests and bench count)

    def _get(self, name: str, **sdk_options: Any) -> Any:
        held = self._held.get(name)
        condition = {"IfNoneMatch": held.etag} if held is not None and held.etag else {}
        try:
            answer = self._client().get_object(Bucket=self._bucket, Key=name, **condition)
        except ClientError as exc:
            code = error_code(exc)
            if code == NOT_MODIFIED and held is not None:
                self.not_modified += 1
                return held
            if code in MISSING:
                document = Document(None, None)
                self._held[name] = document
                return document
            raise
        size = int(answer.get("ContentLength", 0))
        if size > MAX_DOCUMENT_BYTES:
            answer["Body"].close()
            raise DocumentTooLarge(name, size)
        document = Document(str(answer["ETag"]), answer["Body"].read().decode("utf-8", errors="replace"))
        self._held[name] = document
        return document

    def _get_multiple(self, path: str, **sdk_options: Any) -> dict[str, str]:
        raise NotImplementedError("the policy store reads documents one by one")

    def document(self, key: str, max_age: int) -> Document:
        value: Any = self.get(key, max_age=max_age)  # what _get returned: a Document
        return cast("Document", value)


class DocumentTooLarge(Exception):
    def __init__(self, key: str, size: int) -> None:
        super().__init__(
            f"{key} is {size:,} bytes, over DeployGuard's cap of {MAX_DOCUMENT_BYTES:,} bytes per "
            "document (MAX_DOCUMENT_BYTES)"
        )


class PolicyStore:
    """The ``PolicySource`` port over the policy bucket. ``load`` raises PolicyError."""

    def __init__(self, client: Callable[[], S3Client], bucket: str, *, max_age: int) -> None:
        self._client = client  # a factory: an S3 client costs ~90 ms to make, paid off the init path
        self._bucket = bucket
        self._provider = S3DocumentProvider(client, bucket)
        self._max_age = max_age
        self._baseline: tuple[str, Baseline] | None = None
        self._parsed: dict[str, tuple[str, dict[str, Any]]] = {}  # application → ETag, parsed document
        # (application, function or None) → (document ETag, baseline ETag), effective policy
        self._effective: dict[tuple[str, str | None], tuple[tuple[str, str], Policy]] = {}
        self._parser: threading.Thread | None = None
        self._lock = threading.Lock()
        self._listed: dict[Stage, tuple[float, list[str]]] = {}  # stage → (when, application names)
        self.parses = 0  # documents parsed (the tests and the benchmark count them)
        self.validations = 0  # effective policies validated

    @property
    def not_modified(self) -> int:
        return self._provider.not_modified

    def prepare(self) -> None:
        """Start building the policy parser in the background (once; later calls do nothing)."""
        with self._lock:
            if self._parser is None:
                self._parser = threading.Thread(
                    target=_build_parser, args=(self._client,), name="deployguard-policy-parser", daemon=True
                )
                self._parser.start()

    def _read(self, key: str, stage: Stage) -> Document:
        try:
            return self._provider.document(key, self._max_age)
        except GetParameterError as exc:
            cause = exc.__context__
            why = (
                f"GetObject failed with {error_code(cause)}"
                if isinstance(cause, ClientError)
                else str(cause)
                if isinstance(cause, DocumentTooLarge)
                else f"GetObject failed with {type(cause or exc).__name__}"
            )
            fix = (
                "the bucket does not exist: check DEPLOYGUARD_POLICY_BUCKET (the stack's output PolicyBucketName)"
                if isinstance(cause, ClientError) and error_code(cause) == "NoSuchBucket"
                else "check the function's permissions on the bucket (s3:GetObject on <stage>/*, s3:ListBucket)"
                if isinstance(cause, ClientError) and error_code(cause) in ("AccessDenied", "403")
                else "publish a smaller document"
                if isinstance(cause, DocumentTooLarge)
                else "it is retried at the next invocation"
            )
            raise PolicyError(
                f"the {stage.value} policy could not be read from s3://{self._bucket}/{key} ({why}): {fix}"
            ) from exc

    def _ready(self) -> None:
        if self._parser is not None:
            self._parser.join()  # never two builds of the same models at once

    def baseline(self, stage: Stage) -> tuple[str, Baseline]:
        """The stage's baseline and its ETag (parsed once per ETag)."""
        key = baseline_key(stage)
        document = self._read(key, stage)
        if document.text is None or document.etag is None:
            raise PolicyError(
                f"the {stage.value} baseline s3://{self._bucket}/{key} is not published: publish it with "
                f"`deployguard policy publish --stage {stage.value} --baseline FILE`"
            )
        if self._baseline is None or self._baseline[0] != document.etag:
            self._ready()
            # NOTE: imported here, not at module level: pydantic is not part of the init (see above)
            from deployguard.policy import load_baseline

            self.parses += 1
            self._baseline = (
                document.etag,
                load_baseline(document.text, f"s3://{self._bucket}/{key}", stage=stage, json_only=True),
            )
        return self._baseline

    def load(self, stage: Stage, application: str | None, function_name: str | None = None) -> Policy:
        """The effective policy of ``application``'s functions (None: the function has no
        ``deployguard:app`` tag; its policy names no function and says why). With
        ``function_name``, only the entry guarding it is validated (what a hook needs)."""
        from deployguard.policy import (
            application_document,
            effective_policy,
            unnamed_policy,
            valid_application_name,
        )

        baseline_etag, baseline = self.baseline(stage)
        if application is None:
            return unnamed_policy(
                baseline,
                f"the function has no {APP_TAG} tag: tag it with its application "
                f"(SAM: `Tags: {{{APP_TAG}: <application>}}`) and publish that application's policy "
                f"with `deployguard policy publish --stage {stage.value} --app <application> FILE`",
            )
        if not valid_application_name(application):
            return unnamed_policy(
                baseline,
                f"its {APP_TAG} tag is not an application name (lowercase letters, digits, '.', '_', '-'; "
                "at most 63): fix the tag",
            )
        key = application_key(stage, application)
        document = self._read(key, stage)
        if document.text is None or document.etag is None:
            return unnamed_policy(
                baseline,
                f"application {application} has no {stage.value} policy (s3://{self._bucket}/{key}): "
                f"publish it with `deployguard policy publish --stage {stage.value} --app {application} FILE`",
            )
        versions = (document.etag, baseline_etag)
        cached = self._effective.get((application, function_name))
        if cached is not None and cached[0] == versions:
            return cached[1]
        self._ready()
        source = f"s3://{self._bucket}/{key}"
        parsed = self._parsed.get(application)
        if parsed is None or parsed[0] != document.etag:  # parsed once per version of the document
            self.parses += 1
            parsed = (document.etag, application_document(document.text, source, json_only=True))
            self._parsed[application] = parsed
        self.validations += 1
        policy = effective_policy(
            baseline, parsed[1], source, application=application, stage=stage, function_name=function_name
        )
        self._effective[(application, function_name)] = (versions, policy)
        return policy

    def load_all(self, stage: Stage) -> Policy:
        """Every application's entries in one policy (the alarm rollback: which function an alarm
        guards). An entry key two applications share is kept as ``<application>/<key>``."""
        from deployguard.policy import Policy

        _, baseline = self.baseline(stage)
        functions: dict[str, Any] = {}
        for application in self._applications(stage):
            policy = self.load(stage, application)
            for key, entry in policy.functions.items():
                functions[f"{application}/{key}" if key in functions else key] = entry
        return Policy.model_construct(
            version=1,
            stage=baseline.stage,
            unguarded=baseline.unguarded,
            rollback=baseline.rollback,
            functions=functions,
        )

    def _applications(self, stage: Stage) -> list[str]:
        """The stage's application names, listed at most once per ``max_age`` seconds."""
        listed = self._listed.get(stage)
        if listed is not None and time.monotonic() - listed[0] < self._max_age:
            return listed[1]
        names = self._list_applications(stage)
        self._listed[stage] = (time.monotonic(), names)
        return names

    def _list_applications(self, stage: Stage) -> list[str]:
        prefix = applications_prefix(stage)
        names: list[str] = []
        token: dict[str, str] = {}
        while True:
            try:
                answer = self._client().list_objects_v2(Bucket=self._bucket, Prefix=prefix, **token)
            except ClientError as exc:
                raise PolicyError(
                    f"the {stage.value} application policies could not be listed in s3://{self._bucket}/{prefix} "
                    f"(ListObjectsV2 failed with {error_code(exc)})"
                ) from exc
            for item in answer.get("Contents", []):
                name = str(item["Key"]).removeprefix(prefix)
                if name.endswith(".json") and "/" not in name:
                    names.append(name.removesuffix(".json"))
            if not answer.get("IsTruncated"):
                return names
            token = {"ContinuationToken": str(answer["NextContinuationToken"])}


def _build_parser(client: Callable[[], S3Client]) -> None:
    """The policy parser and the S3 client, made while the invocation's first calls wait on the
    network (each only a head start: load() makes whatever is missing, and reports its errors)."""
    try:
        client()
        from deployguard.policy import build_parser

        build_parser()
    except Exception:  # noqa: S110 — only the head start is lost: load() imports, parses and reports
        pass
