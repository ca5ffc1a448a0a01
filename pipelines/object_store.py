"""S3-compatible object storage as the platform uses it: a location (`s3://bucket/prefix`), a client, and copies
between a bucket prefix and a folder (the local platform's artifacts, backup archives; the stack's can reuse them).

The endpoint and credentials are boto3's own, never the config's: AWS_ENDPOINT_URL (or MLflow's
MLFLOW_S3_ENDPOINT_URL, which wins, as it does in MLflow's S3 artifact repository), AWS_ACCESS_KEY_ID /
AWS_SECRET_ACCESS_KEY or AWS_SHARED_CREDENTIALS_FILE. Every S3 failure becomes one ObjectStoreError naming the
location and what to fix; no message carries a key.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit

from pipelines.config_model import OBJECT_SCHEME as SCHEME
from pipelines.errors import CannotRun
from pipelines.uris import redact

# S3's rule for new buckets: 3-63 lowercase letters, digits, dots and hyphens, a letter or digit at each end.
BUCKET_NAME = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
CREDENTIALS_HINT = "AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, or AWS_SHARED_CREDENTIALS_FILE"
REFUSED_CODES = {"403", "Forbidden", "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch"}
MISSING_BUCKET_CODES = {"NoSuchBucket"}


class ObjectStoreError(CannotRun):
    """An S3 location is malformed, unreachable, missing or refuses the credentials."""


@dataclass(frozen=True)
class S3Location:
    bucket: str
    prefix: str = ""  # no slash at either end; "" is the bucket's root

    @classmethod
    def parse(cls, url: str, setting: str) -> S3Location:
        """`s3://bucket[/prefix]`; anything else is an ObjectStoreError naming `setting` (the key or option)."""
        if not url.startswith(SCHEME):
            raise ObjectStoreError(f"{setting}: {url!r} is not an s3://bucket/prefix URL")
        parts = urlsplit(url)
        if "@" in parts.netloc:  # never echo it: what precedes the @ is a key
            raise ObjectStoreError(f"{setting}: credentials never go in the URL; set {CREDENTIALS_HINT}")
        if parts.query or parts.fragment:
            raise ObjectStoreError(f"{setting}: {url} has a query or fragment; give s3://bucket/prefix only")
        if not parts.netloc:
            raise ObjectStoreError(f"{setting}: {url} names no bucket")
        if not BUCKET_NAME.fullmatch(parts.netloc) or ".." in parts.netloc:
            raise ObjectStoreError(f"{setting}: {parts.netloc!r} is not a valid bucket name (3-63 lowercase "
                                   "letters, digits, dots and hyphens)")
        prefix = parts.path.strip("/")
        if prefix and "" in prefix.split("/"):
            raise ObjectStoreError(f"{setting}: {url} has an empty part (//) in its prefix")
        return cls(parts.netloc, prefix)

    @property
    def url(self) -> str:
        return f"{SCHEME}{self.bucket}" + (f"/{self.prefix}" if self.prefix else "")

    def key(self, relative: str) -> str:
        return f"{self.prefix}/{relative}" if self.prefix else relative

    def child(self, relative: str) -> S3Location:
        return S3Location(self.bucket, self.key(relative))


def is_s3_url(value: str | Path) -> bool:
    return isinstance(value, str) and value.startswith(SCHEME)


def local_path_for(folder: Path, relative_key: str) -> Path:
    """Where an object goes below `folder`; a key that would land elsewhere (`..`, absolute) is refused."""
    parts = PurePosixPath(relative_key).parts
    if not parts or relative_key.startswith("/") or any(part in ("..", ".") for part in relative_key.split("/")):
        raise ObjectStoreError(f"refusing the object key {relative_key!r}: it would not land below {folder}")
    return folder.joinpath(*parts)


def client() -> Any:  # boto3's client type is generated
    import boto3

    endpoint = os.environ.get("MLFLOW_S3_ENDPOINT_URL") or None  # else botocore reads AWS_ENDPOINT_URL itself
    verify = os.environ.get("MLFLOW_S3_IGNORE_TLS", "").lower() != "true"
    # A session of its own: boto3's default one keeps the credentials it first read for the process's life.
    return boto3.session.Session().client("s3", endpoint_url=endpoint, verify=verify)


@contextmanager
def explained(location: S3Location, what: str) -> Iterator[None]:
    """Turn boto3's failures inside the block into one ObjectStoreError: `<what> <location>: <cause and fix>`."""
    from botocore.exceptions import BotoCoreError, ClientError, EndpointConnectionError, NoCredentialsError

    where = f"{what} {location.url}"
    try:
        yield
    except ClientError as exc:
        code = str(exc.response.get("Error", {}).get("Code", ""))
        if code in MISSING_BUCKET_CODES or (code in ("404", "NotFound") and exc.operation_name == "HeadBucket"):
            raise ObjectStoreError(f"{where}: the bucket {location.bucket} does not exist (create it, or fix "
                                   "the URL)") from None
        if code in REFUSED_CODES:
            raise ObjectStoreError(f"{where}: the S3 endpoint refused the credentials ({code}); check "
                                   f"{CREDENTIALS_HINT} and that they may read and write this bucket") from None
        raise ObjectStoreError(f"{where}: S3 answered {code or 'an error'} ({exc.operation_name})") from None
    except NoCredentialsError:
        raise ObjectStoreError(f"{where}: no S3 credentials; set {CREDENTIALS_HINT}") from None
    except EndpointConnectionError as exc:
        raise ObjectStoreError(f"{where}: cannot reach the S3 endpoint {redact(str(exc.kwargs.get('endpoint_url')))} "
                               "(AWS_ENDPOINT_URL)") from None
    except BotoCoreError as exc:
        raise ObjectStoreError(f"{where}: {type(exc).__name__}: {exc}") from None


def check_access(location: S3Location, what: str) -> None:
    """The bucket exists and these credentials may list it: checked before anything relies on it."""
    with explained(location, what):
        s3 = client()
        s3.head_bucket(Bucket=location.bucket)
        s3.list_objects_v2(Bucket=location.bucket, Prefix=location.key(""), MaxKeys=1)


def list_objects(location: S3Location, what: str, *, recursive: bool = True) -> dict[str, str]:
    """Relative key -> ETag of every object under the prefix (only those directly in it unless `recursive`)."""
    start = location.key("")
    found: dict[str, str] = {}
    with explained(location, what):
        pages = client().get_paginator("list_objects_v2").paginate(Bucket=location.bucket, Prefix=start)
        for page in pages:
            for item in page.get("Contents", []):
                relative = item["Key"][len(start):]
                if relative and not relative.endswith("/") and (recursive or "/" not in relative):
                    found[relative] = item["ETag"]
    return found


def download_prefix(location: S3Location, folder: Path, what: str) -> int:
    """Copy every object under the prefix into `folder` (made, even when there is none); return how many."""
    folder.mkdir(parents=True, exist_ok=True)
    keys = list_objects(location, what)
    with explained(location, what):
        s3 = client()
        for relative in keys:
            target = local_path_for(folder, relative)
            target.parent.mkdir(parents=True, exist_ok=True)
            s3.download_file(location.bucket, location.key(relative), str(target))
    return len(keys)


def download_object(location: S3Location, relative: str, target: Path, what: str) -> bool:
    """One object into `target`; False when there is no such object."""
    from botocore.exceptions import ClientError

    with explained(location, what):
        try:
            client().download_file(location.bucket, location.key(relative), str(target))
        except ClientError as exc:
            if str(exc.response.get("Error", {}).get("Code")) in ("404", "NoSuchKey", "NotFound"):
                return False
            raise
    return True


def upload_file(path: Path, location: S3Location, relative: str, what: str) -> None:
    """One file to `<prefix>/<relative>`, with no ACL of its own: the bucket's (private) policy applies."""
    with explained(location, what):
        client().upload_file(str(path), location.bucket, location.key(relative))


def delete_objects(location: S3Location, relatives: list[str], what: str) -> None:
    with explained(location, what):
        s3 = client()
        for start in range(0, len(relatives), 1000):  # DeleteObjects takes at most 1000 keys
            batch = [{"Key": location.key(relative)} for relative in relatives[start:start + 1000]]
            s3.delete_objects(Bucket=location.bucket, Delete={"Objects": batch, "Quiet": True})


def replace_prefix(folder: Path, location: S3Location, commit: Callable[[], None], what: str) -> None:
    """Make the prefix hold exactly the folder's files, around a commit point (a database swapped in).

    Before `commit` the prefix only gains objects: the files whose keys are new go up, and if that or `commit`
    fails they are deleted again and the error raised, so the state from before is as it was. Only after
    `commit`, when nothing refers to that state any more, are its objects overwritten (a key both hold with
    other bytes) or deleted (a key only it holds)."""
    before = list_objects(location, what)
    files = {path.relative_to(folder).as_posix(): path for path in sorted(folder.rglob("*")) if path.is_file()}
    added = [relative for relative in files if relative not in before]
    changed = [relative for relative in files if relative in before and before[relative].strip('"') !=
               _md5(files[relative])]  # the same bytes (a single-part upload's ETag) are left alone
    try:
        for relative in added:
            upload_file(files[relative], location, relative, what)
        commit()
    except BaseException:
        with suppress(ObjectStoreError):  # the first failure is the one to report
            delete_objects(location, added, what)
        raise
    for relative in changed:
        upload_file(files[relative], location, relative, what)
    delete_objects(location, sorted(set(before) - set(files)), what)


def _md5(path: Path) -> str:
    """A single-part upload's ETag is its MD5 (used to skip re-uploading what is there; no security role)."""
    digest = hashlib.md5(usedforsecurity=False)
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
