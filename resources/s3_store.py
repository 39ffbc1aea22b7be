"""The object store on S3 or any S3-compatible server (MinIO, R2, Ceph, moto).

S3 already gives the guarantees the pipeline relies on: a PUT is atomic (a reader sees
the old object or the new one), and `If-None-Match: *` makes a write-once create. Where
a server does not implement conditional writes, `put_if_absent` falls back to
check-then-put; that is safe for the cache because its blobs are addressed by their own
content and every manifest for a key describes a complete entry, so a lost race only
means one of two valid manifests is kept.

Errors are turned into one `StoreError` sentence that names the setting to fix
(bucket, endpoint or credentials); credentials themselves never appear in messages.
"""

from __future__ import annotations

import hashlib
from typing import Any, Optional

from botocore.exceptions import BotoCoreError, ClientError, EndpointConnectionError, NoCredentialsError

from resources.object_store import (ListPage, ObjectInfo, ObjectNotFound, ObjectStore, Refused, StoreError, TooLarge,
                                    check_key, key_problem)

_NOT_FOUND = {"NoSuchKey", "404", "NotFound"}
_AUTH = {"InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied", "InvalidToken", "ExpiredToken", "403"}
_NOT_IMPLEMENTED = {"NotImplemented", "501"}


def _epoch(when: Any) -> float:
    """botocore's LastModified (a datetime) as epoch seconds; 0.0 when absent."""
    return when.timestamp() if hasattr(when, "timestamp") else 0.0


class S3ObjectStore(ObjectStore):
    def __init__(self, client: Any, bucket: str, prefix: str = "", endpoint_url: str | None = None):
        if not bucket:
            raise StoreError("no S3 bucket configured; set ADGEN_STORE__BUCKET")
        self.client = client
        self.bucket = bucket
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        self.endpoint_url = endpoint_url
        self._conditional_writes: Optional[bool] = None

    # --- helpers -------------------------------------------------------------------------

    def _k(self, key: str) -> str:
        return self.prefix + check_key(key)

    def _where(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}" + (f" at {self.endpoint_url}" if self.endpoint_url else "")

    def _error(self, exc: Exception, action: str, key: str) -> StoreError:
        if isinstance(exc, ClientError):
            code = str(exc.response.get("Error", {}).get("Code", ""))
            if code == "NoSuchBucket":
                return StoreError(f"S3 bucket {self.bucket!r} does not exist at {self.endpoint_url or 'AWS'}; "
                                  "create it or set ADGEN_STORE__BUCKET")
            if code in _AUTH:
                return StoreError(f"S3 refused the credentials while trying to {action} {key!r} in {self._where()} "
                                  f"({code}); check AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY or the profile")
            return StoreError(f"S3 error {code or 'unknown'} while trying to {action} {key!r} in {self._where()}")
        if isinstance(exc, NoCredentialsError):
            return StoreError("no S3 credentials found; set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or AWS_PROFILE)")
        if isinstance(exc, EndpointConnectionError):
            return StoreError(f"cannot reach the S3 endpoint {self.endpoint_url or 'AWS'} to {action} {key!r}; "
                              "check that the server is up or set ADGEN_STORE__ENDPOINT_URL")
        return StoreError(f"S3 {type(exc).__name__} while trying to {action} {key!r} in {self._where()}: {exc}")

    @staticmethod
    def _code(exc: ClientError) -> str:
        return str(exc.response.get("Error", {}).get("Code", ""))

    # --- ObjectStore ---------------------------------------------------------------------

    def get(self, key: str, max_bytes: Optional[int] = None) -> bytes:
        try:
            resp = self.client.get_object(Bucket=self.bucket, Key=self._k(key))
            body = resp["Body"]
            if max_bytes is None:
                return body.read()
            try:  # the size from the response headers, before any byte of the body is read
                if int(resp.get("ContentLength", 0)) > max_bytes:
                    raise TooLarge(key, int(resp["ContentLength"]), max_bytes)
                data = body.read(max_bytes + 1)
                if len(data) > max_bytes:
                    raise TooLarge(key, len(data), max_bytes)
                return data
            finally:
                body.close()
        except ClientError as exc:
            if self._code(exc) in _NOT_FOUND:
                raise ObjectNotFound(f"no object {key!r} in {self._where()}") from None
            raise self._error(exc, "read", key) from None
        except (BotoCoreError, OSError) as exc:
            raise self._error(exc, "read", key) from None

    @staticmethod
    def _extra(data: bytes, content_type: str | None) -> dict:
        extra: dict = {"Metadata": {"sha256": hashlib.sha256(data).hexdigest()}}
        if content_type:
            extra["ContentType"] = content_type
        return extra

    def put(self, key: str, data: bytes, content_type: str | None = None) -> None:
        extra = self._extra(data, content_type)
        try:
            self.client.put_object(Bucket=self.bucket, Key=self._k(key), Body=data, **extra)
        except (ClientError, BotoCoreError, OSError) as exc:
            raise self._error(exc, "write", key) from None

    def put_if_absent(self, key: str, data: bytes, content_type: str | None = None) -> bool:
        extra = self._extra(data, content_type)
        if self._conditional_writes is not False:
            try:
                self.client.put_object(Bucket=self.bucket, Key=self._k(key), Body=data, IfNoneMatch="*", **extra)
                self._conditional_writes = True
                return True
            except ClientError as exc:
                code = self._code(exc)
                if code in ("PreconditionFailed", "412", "ConditionalRequestConflict", "409"):
                    return False
                if code not in _NOT_IMPLEMENTED:
                    raise self._error(exc, "write", key) from None
                self._conditional_writes = False  # server without conditional writes
            except (BotoCoreError, OSError) as exc:
                raise self._error(exc, "write", key) from None
        if self.info(key) is not None:
            return False
        self.put(key, data, content_type)
        return True

    def _head(self, key: str) -> Optional[dict]:
        """HEAD of the object, None when it does not exist."""
        try:
            return self.client.head_object(Bucket=self.bucket, Key=self._k(key))
        except ClientError as exc:
            if self._code(exc) in _NOT_FOUND:
                return None
            raise self._error(exc, "inspect", key) from None
        except (BotoCoreError, OSError) as exc:
            raise self._error(exc, "inspect", key) from None

    def info(self, key: str) -> Optional[ObjectInfo]:
        head = self._head(key)
        if head is None:
            return None
        return ObjectInfo(key=key, size=int(head["ContentLength"]), version=head["ETag"].strip('"'),
                          modified=_epoch(head.get("LastModified")))

    def list_page(self, prefix: str, start_after: str | None = None, limit: int = 1000) -> ListPage:
        args = {"Bucket": self.bucket, "Prefix": self.prefix + prefix, "MaxKeys": max(1, min(limit, 1000))}
        if start_after:
            args["StartAfter"] = self.prefix + start_after
        try:
            resp = self.client.list_objects_v2(**args)
        except (ClientError, BotoCoreError, OSError) as exc:
            raise self._error(exc, "list", prefix) from None
        n = len(self.prefix)
        objects, refused, keys = [], [], []
        for o in resp.get("Contents", []):
            key = o["Key"][n:]
            keys.append(key)
            problem = key_problem(key)
            if problem is None:
                objects.append(ObjectInfo(key, int(o["Size"]), o["ETag"].strip('"'), _epoch(o.get("LastModified"))))
            elif key.endswith("/") and int(o["Size"]) == 0:
                refused.append(Refused(key, "a folder marker, not an object"))
            else:
                refused.append(Refused(key, f"invalid object key: {problem}"))
        more = resp.get("IsTruncated") and keys
        return ListPage(objects, keys[-1] if more else None, refused)

    def delete(self, key: str) -> None:
        try:
            self.client.delete_object(Bucket=self.bucket, Key=self._k(key))
        except (ClientError, BotoCoreError, OSError) as exc:
            raise self._error(exc, "delete", key) from None

    def uri(self, key: str) -> str:
        return f"s3://{self.bucket}/{self.prefix}{check_key(key)}"

    def digest(self, key: str) -> Optional[str]:
        """From the object's `x-amz-meta-sha256`, set atomically with its content by `put`."""
        head = self._head(key)
        return None if head is None else head.get("Metadata", {}).get("sha256")

    def check(self) -> None:
        """Fail early, with the setting to fix, when the bucket cannot be used."""
        try:
            self.client.head_bucket(Bucket=self.bucket)
        except ClientError as exc:
            if self._code(exc) in ("404", "NoSuchBucket", "NotFound"):
                raise StoreError(f"S3 bucket {self.bucket!r} does not exist at {self.endpoint_url or 'AWS'}; "
                                 "create it or set ADGEN_STORE__BUCKET") from None
            raise self._error(exc, "open", "") from None
        except (BotoCoreError, OSError) as exc:
            raise self._error(exc, "open", "") from None
