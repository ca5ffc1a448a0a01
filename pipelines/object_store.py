"""S3-compatible object storage as the platform uses it: a location (`s3://bucket/prefix`), a client, and copies
between a bucket prefix and a folder (the local platform's artifacts, backup archives; the stack's can reuse them).

The endpoint and credentials are boto3's own, never the config's: AWS_ENDPOINT_URL (or MLflow's
MLFLOW_S3_ENDPOINT_URL, which wins, as it does in MLflow's S3 artifact repository), AWS_ACCESS_KEY_ID /
AWS_SECRET_ACCESS_KEY or AWS_SHARED_CREDENTIALS_FILE. `client`, `S3Location.parse` and `s3_errors` are the only
ones: data sources (pipelines.source_s3) use them too. Every S3 failure becomes one error naming the location
and what to fix; no message carries a key or an endpoint's login.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit

from pipelines.config_model import OBJECT_SCHEME as SCHEME
from pipelines.digests import file_digest
from pipelines.errors import CannotRun
from pipelines.uris import split_credentials

# S3's rule for new buckets: 3-63 lowercase letters, digits, dots and hyphens, a letter or digit at each end.
BUCKET_NAME = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
CREDENTIALS_HINT = "AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, or AWS_SHARED_CREDENTIALS_FILE"
REFUSED_CODES = {"403", "Forbidden", "InvalidAccessKeyId", "SignatureDoesNotMatch", "InvalidToken", "ExpiredToken"}
MISSING_BUCKET_CODES = {"NoSuchBucket"}
MISSING_CODES = {"404", "NoSuchKey", "NotFound"}  # of an object; of a bucket when HeadBucket says it
# Where the client goes, in botocore's order, MLflow's own first (as in MLflow's S3 artifact repository).
ENDPOINT_VARIABLES = ("MLFLOW_S3_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL")
# Fail fast on a wrong endpoint: a short connect timeout and one retry, not boto3's minutes of backoff.
CLIENT_SETTINGS = {"connect_timeout": 5, "read_timeout": 60, "retries": {"total_max_attempts": 2, "mode": "standard"}}


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
    """The one S3 client of the platform (data sources, artifacts, backups): MLflow's endpoint when it is set,
    else boto3's own (AWS_ENDPOINT_URL_S3, AWS_ENDPOINT_URL); a wrong endpoint fails in seconds."""
    import boto3
    from botocore.config import Config

    endpoint = os.environ.get("MLFLOW_S3_ENDPOINT_URL") or None
    verify = os.environ.get("MLFLOW_S3_IGNORE_TLS", "").lower() != "true"
    try:  # a session of its own: boto3's default one keeps the credentials it first read for the process's life
        return boto3.session.Session().client("s3", endpoint_url=endpoint, verify=verify,
                                              config=Config(**CLIENT_SETTINGS))
    except ValueError:  # botocore's message quotes the URL, login and all
        raise ObjectStoreError(f"the S3 endpoint {endpoint_shown()} is not a valid URL") from None


def endpoint_shown() -> str:
    """The endpoint the client goes to and the variable naming it, without any login it carries."""
    for variable in ENDPOINT_VARIABLES:
        if url := os.environ.get(variable):
            return f"{split_credentials(url)[0]} ({variable})"
    return "AWS's own (no AWS_ENDPOINT_URL set)"


def scrubbed(text: str) -> str:
    """botocore's text on one line, any endpoint URL in it without its login."""
    for variable in ENDPOINT_VARIABLES:
        if url := os.environ.get(variable):
            text = text.replace(url, split_credentials(url)[0]).replace(url.rstrip("/"), split_credentials(url)[0])
    return " ".join(text.split())


def error_code(exc: Exception) -> str:
    return str(getattr(exc, "response", {}).get("Error", {}).get("Code", ""))


@contextmanager
def explained(location: S3Location, what: str) -> Iterator[None]:
    """Turn boto3's failures inside the block into one ObjectStoreError: `<what> <location>: <cause and fix>`."""
    with s3_errors(f"{what} {location.url}", location.bucket):
        yield


@contextmanager
def s3_errors(where: str, bucket: str, error: type[CannotRun] = ObjectStoreError) -> Iterator[None]:
    """boto3's failures inside the block as one `error`: `<where>: <cause and fix>`, never a key or a login."""
    from boto3.exceptions import S3UploadFailedError
    from botocore import exceptions as boto

    try:
        yield
    except boto.ClientError as exc:
        raise error(f"{where}: {client_error_reason(exc, bucket)}") from None
    except S3UploadFailedError as exc:  # upload_file wraps the ClientError it caught: read that one when there
        cause = exc.__context__
        reason = client_error_reason(cause, bucket) if isinstance(cause, boto.ClientError) else \
            f"could not upload: {scrubbed(str(exc))}"
        raise error(f"{where}: {reason}") from None
    except boto.NoCredentialsError:
        raise error(f"{where}: no S3 credentials; set {CREDENTIALS_HINT}") from None
    except (boto.ConnectionError, boto.ReadTimeoutError) as exc:
        raise error(f"{where}: cannot reach the S3 endpoint {endpoint_shown()} ({type(exc).__name__})") from None
    except boto.BotoCoreError as exc:
        raise error(f"{where}: {type(exc).__name__}: {scrubbed(str(exc))}") from None


def client_error_reason(exc: Exception, bucket: str) -> str:
    code, operation = error_code(exc), getattr(exc, "operation_name", "")
    message = scrubbed(getattr(exc, "response", {}).get("Error", {}).get("Message") or code)
    endpoint = endpoint_shown()
    if code in MISSING_BUCKET_CODES or (code in MISSING_CODES and operation == "HeadBucket"):
        return f"the bucket {bucket} does not exist at {endpoint} (create it, or fix the URL)"
    if code in REFUSED_CODES:
        return f"the S3 endpoint {endpoint} refused the credentials ({code}); check {CREDENTIALS_HINT}"
    if code == "AccessDenied":
        return (f"{endpoint} denied access ({message}); the credentials need the rights to list and read the "
                "bucket (and to write it, for artifacts and backups)")
    if code in MISSING_CODES:
        return f"no such object at {endpoint}"
    if code == "PreconditionFailed":
        return "an object changed while it was being read (its ETag moved); run again"
    return f"S3 answered {code or 'an error'} to {operation} at {endpoint}: {message}"


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
            if error_code(exc) in MISSING_CODES:
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
               file_digest(files[relative], "md5")]  # the same bytes (a single-part upload's ETag) are left alone
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
