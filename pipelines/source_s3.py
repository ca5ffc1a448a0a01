"""Tables from S3-compatible object storage: one .parquet or .csv object, or a prefix of parquet parts.

The client, the URL parser and the error wording are the platform's one set (pipelines.object_store): the same
endpoint as the artifacts and backups (MLFLOW_S3_ENDPOINT_URL, else AWS_ENDPOINT_URL) and the same credentials
(AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY or AWS_SHARED_CREDENTIALS_FILE, a mounted secret). The proof of
each part is its version id where the bucket keeps versions, else its ETag. Every body is read at exactly the
version (or ETag) its proof names, so the table and its proof always agree; bodies stream to a temp file,
never held twice in memory.
"""

from __future__ import annotations

import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from pipelines import object_store
from pipelines.config_model import OBJECT_SCHEME, DataConfig
from pipelines.object_store import ObjectStoreError, S3Location, error_code, s3_errors
from pipelines.sources import DataError, Provenance, SourcedTable, check_size

ETAG_PROOF = "etag:"  # a proof without a version id: the object's ETag, checked again on every read
TABLE_SUFFIXES = (".parquet", ".csv")
PART_SUFFIX = ".parquet"  # a prefix's parts; anything else under it (_SUCCESS, .crc) is not the table
CHUNK_BYTES = 8 * 1024**2


@dataclass(frozen=True)
class ObjectLocation:
    bucket: str
    key: str  # one object's key, or a prefix ending in "/" ("" for the whole bucket)

    @property
    def is_prefix(self) -> bool:
        return self.key == "" or self.key.endswith("/")

    def url(self, key: str | None = None) -> str:
        return f"{OBJECT_SCHEME}{self.bucket}/{self.key if key is None else key}"


@dataclass(frozen=True)
class Part:
    key: str
    size: int
    etag: str  # without its quotes
    version_id: str | None = None  # the version to read; None reads the current one, checked by ETag


def parse_object_url(source: str) -> ObjectLocation:
    """s3://bucket/key.parquet, s3://bucket/key.csv or s3://bucket/prefix/; anything else names what is wrong.
    The platform's one parser checks the bucket name and refuses credentials in the URL, never echoing them."""
    try:
        parsed = S3Location.parse(source, "data.source")
    except ObjectStoreError as exc:
        raise DataError(f"{exc}; use s3://bucket/key.parquet, .csv or s3://bucket/prefix/") from None
    is_prefix = not parsed.prefix or source.endswith("/")
    location = ObjectLocation(parsed.bucket, f"{parsed.prefix}/" if is_prefix and parsed.prefix else parsed.prefix)
    suffix = PurePosixPath(location.key).suffix.lower()
    if not location.is_prefix and suffix not in TABLE_SUFFIXES:
        raise DataError(f"data.source {source}: unsupported object type '{suffix or location.key}'; use a .parquet "
                        "or .csv object, or a prefix ending in / (its .parquet parts)")
    return location


def proof_of(part: Part, version_id: str | None) -> str:
    """What pins a part read: its version id when the bucket keeps versions, else its ETag."""
    return version_id if version_id and version_id != "null" else f"{ETAG_PROOF}{part.etag}"


def read_objects(config: DataConfig, pinned: Mapping[str, str] | None = None) -> SourcedTable:
    """The table at `data.source`; with `pinned` (a recorded proof), exactly those parts at those versions."""
    location = parse_object_url(config.source)
    with s3_errors(f"data.source {config.source}", location.bucket, DataError):
        client = object_store.client()
        parts = pinned_parts(client, location, pinned) if pinned else current_parts(client, location)
        check_size(config.source, sum(part.size for part in parts), config.max_file_bytes)
        frame, proof = read_parts(client, location, parts)
    return SourcedTable(frame, Provenance("object", config.source, proof))


def current_parts(client: Any, location: ObjectLocation) -> list[Part]:
    """The object, or the prefix's parquet parts sorted by key, as listed now (size and ETag, no body)."""
    if not location.is_prefix:  # the key itself sorts first among the keys it prefixes
        listed = client.list_objects_v2(Bucket=location.bucket, Prefix=location.key, MaxKeys=1).get("Contents", [])
        if not listed or listed[0]["Key"] != location.key:
            raise DataError(f"data.source {location.url()}: no such object in bucket '{location.bucket}'")
        return [listed_part(listed[0])]
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=location.bucket, Prefix=location.key)
    parts = [listed_part(item) for page in pages for item in page.get("Contents", [])
             if item["Key"].lower().endswith(PART_SUFFIX)]
    if not parts:
        raise DataError(f"data.source {location.url()}: no {PART_SUFFIX} objects under this prefix")
    return sorted(parts, key=lambda part: part.key)


def listed_part(item: Mapping[str, Any]) -> Part:
    return Part(item["Key"], int(item["Size"]), item["ETag"].strip('"'))


def pinned_parts(client: Any, location: ObjectLocation, pinned: Mapping[str, str]) -> list[Part]:
    """The recorded parts: a version id is read as it was; an ETag must still be the object's."""
    parts = []
    for key, proof in sorted(pinned.items()):
        inside = key.startswith(location.key) if location.is_prefix else key == location.key
        if not inside:
            raise DataError(f"data.source {location.url()}: the recorded proof names {location.url(key)}, "
                            "which is not part of this source")
        if not proof.startswith(ETAG_PROOF):
            parts.append(versioned_part(client, location, key, proof))
            continue
        recorded = proof.removeprefix(ETAG_PROOF)
        current = current_parts(client, ObjectLocation(location.bucket, key))[0]
        if current.etag != recorded:
            raise DataError(f"data.source {location.url()}: {location.url(key)} changed since it was recorded "
                            f"(ETag {recorded} then, {current.etag} now) and its bucket keeps no versions")
        parts.append(current)
    return parts


def versioned_part(client: Any, location: ObjectLocation, key: str, version_id: str) -> Part:
    from botocore.exceptions import ClientError

    try:
        head = client.head_object(Bucket=location.bucket, Key=key, VersionId=version_id)
    except ClientError as exc:
        if error_code(exc) not in {"404", "NoSuchKey", "NoSuchVersion"}:
            raise
        client.list_objects_v2(Bucket=location.bucket, MaxKeys=1)  # a missing bucket or a bad login says so
        raise DataError(f"data.source {location.url()}: version {version_id} of {location.url(key)} is gone "
                        "(deleted from the bucket); the table recorded cannot be read again") from None
    return Part(key, int(head["ContentLength"]), head["ETag"].strip('"'), version_id)


def read_parts(client: Any, location: ObjectLocation, parts: list[Part]) -> tuple[pd.DataFrame, dict[str, str]]:
    """Each part's body streamed to a temp file and parsed from there; the frame and each part's proof."""
    proof: dict[str, str] = {}
    tables: list[pa.Table] = []
    with tempfile.TemporaryDirectory(prefix="s3-source-") as tmp:
        body = Path(tmp) / "body"
        for part in parts:
            proof[part.key] = proof_of(part, fetch(client, location.bucket, part, body))
            if part.key.lower().endswith(".csv"):  # a single object: a prefix reads parquet parts only
                return read_table_file(location.url(part.key), body, pd.read_csv), proof
            tables.append(read_table_file(location.url(part.key), body, pq.read_table))
            body.unlink()
    return parquet_frame(location, tables), proof


def fetch(client: Any, bucket: str, part: Part, dest: Path) -> str | None:
    """Stream the part's body to `dest`, at its version or only while its ETag holds; the version id read."""
    pin = {"VersionId": part.version_id} if part.version_id else {"IfMatch": f'"{part.etag}"'}
    response = client.get_object(Bucket=bucket, Key=part.key, **pin)
    with dest.open("wb") as handle:
        for chunk in response["Body"].iter_chunks(CHUNK_BYTES):
            handle.write(chunk)
    return response.get("VersionId")


def read_table_file(url: str, path: Path, reader: Any) -> Any:
    try:
        return reader(path)
    except Exception as exc:  # the parser's own message is the useful part
        raise DataError(f"data.source: cannot read {url}: {exc}") from None


def parquet_frame(location: ObjectLocation, tables: list[pa.Table]) -> pd.DataFrame:
    """One frame of the parts in key order; parts must share their columns (a null-only column may widen)."""
    try:
        table = pa.concat_tables(tables, promote_options="default") if len(tables) > 1 else tables[0]
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        raise DataError(f"data.source {location.url()}: its parts do not share one schema: {exc}") from None
    tables.clear()  # the concatenated table holds the buffers; nothing else should
    return table.to_pandas()
