"""S3 on moto with the object-size limit of a single PUT, as AWS enforces it.

moto 5.2 stores an object of any size from one PutObject. AWS does not: "The largest object that can
be uploaded in a single PUT is 5 GB" (Amazon S3 quotas; https://docs.aws.amazon.com/AmazonS3/latest/userguide/qfacts.html),
and a larger body fails with ``EntityTooLarge`` (HTTP 400, "Your proposed upload exceeds the
maximum allowed object size."). After :func:`install`, moto does the same, so the policy store's
publish path meets the error it would meet on AWS. (Multipart uploads, up to 5 TiB, are not
limited here: DeployGuard does not use them.)

DeployGuard's own, much smaller, cap per policy document (``deployguard.documents.MAX_DOCUMENT_BYTES``)
is enforced by DeployGuard itself before any upload, with an error naming the cap.
"""

from __future__ import annotations

import functools
import threading
from typing import Any, Final

from moto.s3.exceptions import S3ClientError
from moto.s3.models import S3Backend

MAX_SINGLE_PUT_BYTES: int = 5 * 1024**3
"""5 GB: the largest object one PutObject may upload (tests lower it to exercise the error)."""

_PATCH_MARK: Final = "_deployguard_moto_s3_limits"
_lock = threading.Lock()


class EntityTooLarge(S3ClientError):
    def __init__(self, size: int) -> None:
        super().__init__("EntityTooLarge", "Your proposed upload exceeds the maximum allowed object size.")
        self.proposed_size = size
        self.max_size_allowed = MAX_SINGLE_PUT_BYTES


def install() -> None:
    """Enforce the single-PUT size limit on moto's S3 (idempotent)."""
    with _lock:
        if getattr(S3Backend, _PATCH_MARK, False):
            return
        original = S3Backend.put_object

        @functools.wraps(original)
        def put_object(
            self: S3Backend, bucket_name: str, key_name: str, value: bytes, *args: Any, **kwargs: Any
        ) -> Any:
            if kwargs.get("multipart") is None and len(value) > MAX_SINGLE_PUT_BYTES:
                raise EntityTooLarge(len(value))
            return original(self, bucket_name, key_name, value, *args, **kwargs)

        S3Backend.put_object = put_object  # type: ignore[method-assign]
        setattr(S3Backend, _PATCH_MARK, True)
