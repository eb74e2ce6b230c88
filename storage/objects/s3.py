"""Objects in an S3 bucket (AWS, MinIO, Ceph RGW) via one thread-safe boto3 client."""

from __future__ import annotations

import hashlib
import io
import logging
from typing import Any, BinaryIO, cast

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from storage.errors import ObjectNotFound, PacsError, StorageFull, StorageUnavailable

log = logging.getLogger(__name__)

MiB = 1 << 20
_MIN_PART = 5 * MiB  # S3 rejects non-final multipart parts smaller than this
_NOT_FOUND = {"NoSuchKey", "NotFound", "404"}
_FULL = {"EntityTooLarge", "QuotaExceeded", "XMinioStorageFull", "XMinioAdminBucketQuotaExceeded"}


def _code(exc: BaseException | None) -> tuple[str, int]:
    """S3 error code and HTTP status of a ClientError (``("", 0)`` for anything else)."""
    if not isinstance(exc, ClientError):
        return "", 0
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
    return str(exc.response.get("Error", {}).get("Code", "")), int(status or 0)


def _translate(exc: Exception, what: str) -> PacsError:
    """Map a botocore failure to the domain error callers are allowed to see."""
    if isinstance(exc, ClientError):
        code, status = _code(exc)
        if code in _NOT_FOUND or (status == 404 and code != "NoSuchBucket"):
            return ObjectNotFound(f"{what} not found")
        if code in _FULL or status == 507:
            return StorageFull(f"object storage is full ({code})")
        return StorageUnavailable(f"object storage failed on {what}: {code or status}")
    return StorageUnavailable(f"object storage unreachable on {what}: {type(exc).__name__}")


def _read_full(data: BinaryIO, size: int) -> bytes:
    """Read exactly ``size`` bytes unless the stream ends; short reads are legal for pipes."""
    chunks, wanted = [], size
    while wanted > 0 and (chunk := data.read(wanted)):
        chunks.append(chunk)
        wanted -= len(chunk)
    return b"".join(chunks)


class _Body(io.RawIOBase):
    """The GetObject stream, so that a connection dropped mid-read is a StorageUnavailable."""

    def __init__(self, body: Any, what: str) -> None:
        self._body, self._what = body, what

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        try:
            return cast(bytes, self._body.read(None if size is None or size < 0 else size))
        except (BotoCoreError, OSError) as exc:
            raise _translate(exc, self._what) from exc

    def readinto(self, buffer: Any) -> int:
        chunk = self.read(len(buffer))
        buffer[: len(chunk)] = chunk
        return len(chunk)

    def close(self) -> None:
        if not self.closed:
            self._body.close()
        super().close()


class S3Store:
    """Keys live at ``PREFIX/key`` in ``bucket``; puts are single requests or multipart.

    boto3 clients are thread-safe (sessions are not), so each store owns one client from
    its own session with a connection pool large enough for the DIMSE worker threads.
    Credentials and region come from the standard AWS variables and config files.
    """

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        endpoint_url: str | None = None,
        *,
        multipart_threshold: int = 8 * MiB,
        connect_timeout: float = 10.0,
        max_attempts: int = 5,
        create_bucket: bool = True,
    ) -> None:
        if not bucket:
            raise ValueError("an S3 storage URL needs a bucket: s3://BUCKET/PREFIX")
        self.bucket, self.prefix = bucket, prefix.strip("/")
        self.url, self.multipart_threshold = f"s3://{bucket}/{self.prefix}", multipart_threshold
        config = Config(
            retries={"mode": "standard", "max_attempts": max_attempts},
            max_pool_connections=32,
            connect_timeout=connect_timeout,
        )
        self._client: Any = boto3.session.Session().client(
            "s3", endpoint_url=endpoint_url, config=config
        )
        self._bucket_ready = not create_bucket
        if create_bucket:
            try:
                self._ensure_bucket()
            except StorageUnavailable as exc:
                # The server may come up after us; put() retries, check() reports it.
                log.warning("could not ensure bucket %s: %s", bucket, exc)

    def _call(self, what: str, method: str, **kwargs: Any) -> Any:
        """One client call on our bucket, with botocore errors translated at this edge."""
        try:
            return getattr(self._client, method)(Bucket=self.bucket, **kwargs)
        except (BotoCoreError, ClientError) as exc:
            raise _translate(exc, what) from exc

    def _ensure_bucket(self) -> None:
        """Create the bucket if missing: convenient for MinIO and tests, harmless on AWS."""
        what = f"bucket {self.bucket}"
        try:
            self._call(what, "head_bucket")
        except StorageUnavailable as exc:
            if not isinstance(exc.__cause__, ClientError):
                raise  # unreachable: try again on the next put
            # It answered (e.g. 403 without s3:ListBucket): puts will tell whether we may write.
        except ObjectNotFound:
            region = self._client.meta.region_name
            extra: dict[str, Any] = {}
            if region and region not in ("us-east-1", "aws-global"):
                extra["CreateBucketConfiguration"] = {"LocationConstraint": region}
            try:
                self._call(what, "create_bucket", **extra)
            except StorageUnavailable as exc:
                if _code(exc.__cause__)[0] != "BucketAlreadyOwnedByYou":
                    raise
        self._bucket_ready = True

    def _key(self, key: str) -> str:
        if not key or key.startswith("/") or ".." in key.split("/"):
            raise ValueError(f"invalid object key: {key!r}")
        return f"{self.prefix}/{key}" if self.prefix else key

    def put(self, key: str, data: BinaryIO, *, size: int | None = None) -> str:
        full, digest = self._key(key), hashlib.sha256()
        if not self._bucket_ready:
            self._ensure_bucket()
        # Read one byte past the threshold: only then do we know a multipart is needed.
        head = _read_full(data, self.multipart_threshold + 1)
        try:
            if len(head) <= self.multipart_threshold:
                digest.update(head)
                self._client.put_object(Bucket=self.bucket, Key=full, Body=head)
            else:
                self._multipart(full, data, head, digest)
        except (BotoCoreError, ClientError) as exc:
            raise _translate(exc, f"put {key}") from exc
        return digest.hexdigest()

    def _multipart(self, full: str, data: BinaryIO, head: bytes, digest: Any) -> None:
        """Stream ``head`` then ``data`` in parts, holding about one part in memory."""
        part_size = max(self.multipart_threshold, _MIN_PART)
        upload_id = self._client.create_multipart_upload(Bucket=self.bucket, Key=full)["UploadId"]
        parts: list[dict[str, Any]] = []
        try:
            buffer = head
            while True:
                if len(buffer) < part_size:
                    buffer += _read_full(data, part_size - len(buffer))
                if not buffer:
                    break
                chunk, buffer = buffer[:part_size], buffer[part_size:]
                digest.update(chunk)
                number = len(parts) + 1
                answer = self._client.upload_part(
                    Bucket=self.bucket, Key=full, UploadId=upload_id, PartNumber=number, Body=chunk
                )
                parts.append({"ETag": answer["ETag"], "PartNumber": number})
            self._client.complete_multipart_upload(
                Bucket=self.bucket, Key=full, UploadId=upload_id, MultipartUpload={"Parts": parts}
            )
        except BaseException:
            try:  # otherwise the orphaned parts are billed until a lifecycle rule drops them
                self._client.abort_multipart_upload(
                    Bucket=self.bucket, Key=full, UploadId=upload_id
                )
            except (BotoCoreError, ClientError):
                log.warning("could not abort multipart upload of %s", full)
            raise

    def open(self, key: str) -> BinaryIO:
        what = f"object {key}"
        answer = self._call(what, "get_object", Key=self._key(key))
        return cast(BinaryIO, _Body(answer["Body"], what))

    def read_range(self, key: str, start: int, end: int) -> bytes:
        what = f"object {key}"
        if end <= start:
            if not self.exists(key):
                raise ObjectNotFound(f"{what} not found")
            return b""
        try:
            answer = self._call(
                what, "get_object", Key=self._key(key), Range=f"bytes={start}-{end - 1}"
            )
        except StorageUnavailable as exc:
            if _code(exc.__cause__)[0] == "InvalidRange":  # start past the end: empty, like a file
                return b""
            raise
        with _Body(answer["Body"], what) as body:
            return body.read()

    def delete(self, key: str) -> None:
        # DeleteObject of a missing key already succeeds on S3: idempotent for free.
        self._call(f"delete {key}", "delete_object", Key=self._key(key))

    def exists(self, key: str) -> bool:
        try:
            self._call(f"object {key}", "head_object", Key=self._key(key))
        except ObjectNotFound:
            return False
        return True

    def keys(self) -> list[str]:
        base = f"{self.prefix}/" if self.prefix else ""
        found: list[str] = []
        try:
            pages = self._client.get_paginator("list_objects_v2")
            for page in pages.paginate(Bucket=self.bucket, Prefix=base):
                found.extend(item["Key"][len(base) :] for item in page.get("Contents", []))
        except (BotoCoreError, ClientError) as exc:
            raise _translate(exc, f"listing of {self.url}") from exc
        return sorted(found)

    def check(self) -> None:
        try:
            self._call(f"bucket {self.bucket}", "head_bucket")
        except PacsError as exc:  # a missing bucket is an outage, not a missing object
            raise StorageUnavailable(
                f"object storage bucket {self.bucket} does not answer"
            ) from exc
