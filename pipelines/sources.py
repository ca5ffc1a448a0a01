"""Where a training table comes from: the demo generator, a local file, S3 objects, or a SQL query.

`read_source` gives the raw table and its `Provenance`: where it came from (a URI without any password) and
what proves it unchanged, which a `reference` snapshot records instead of a copy (pipelines.snapshots). A
re-read passes the recorded proof back as `pinned`, so a versioned object is read at the version trained on.
Every failure is a `DataError` naming the source; nothing is registered.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import pandas as pd

from pipelines.config_model import DataConfig
from pipelines.demo_data import make_loans
from pipelines.digests import file_digest
from pipelines.errors import CannotRun

SourceKind = Literal["demo", "file", "object", "sql"]
FILE_READERS = {".csv": pd.read_csv, ".parquet": pd.read_parquet}


class DataError(CannotRun, ValueError):
    """The dataset cannot be trained on; the message names the column, file, object or query at fault."""


@dataclass(frozen=True)
class Provenance:
    kind: SourceKind
    uri: str  # where the table came from, safe to print and record (no password)
    proof: dict[str, str] = field(default_factory=dict)  # part -> what pins it: a version id, ETag or sha256
    unpinnable: str | None = None  # why a reference snapshot of this source is refused; None when it can be

    def as_record(self) -> dict[str, object]:
        return {"kind": self.kind, "uri": self.uri, "proof": self.proof}


@dataclass(frozen=True)
class SourcedTable:
    frame: pd.DataFrame
    provenance: Provenance


def read_source(config: DataConfig, pinned: Mapping[str, str] | None = None) -> SourcedTable:
    """The raw table the config names; with `pinned` (a recorded proof), the same parts as recorded."""
    if config.sql is not None:
        from pipelines.source_sql import read_query

        return read_query(config)
    if config.is_object:
        from pipelines.source_s3 import read_objects

        return read_objects(config, pinned)
    path = config.source_path()
    if path is None:
        return SourcedTable(make_loans(), Provenance("demo", "demo:make_loans(rows=6000, seed=7)"))
    return read_file(path, config.max_file_bytes, pinned)


def read_file(path: Path, max_bytes: int, pinned: Mapping[str, str] | None = None) -> SourcedTable:
    """The file's table; with `pinned`, only while the file's sha256 is still the one recorded."""
    if not path.exists():
        raise DataError(f"data.source: file not found: {path}")
    check_size(str(path), path.stat().st_size, max_bytes)
    digest = file_digest(path)
    if pinned is not None and (recorded := pinned.get(path.name)) != digest:
        raise DataError(f"data.source {path}: the file changed since it was recorded (sha256 {recorded} then, "
                        f"{digest} now); restore it as it was, or retrain on the new data")
    reader = FILE_READERS.get(path.suffix.lower())
    if reader is None:
        raise DataError(f"data.source: unsupported file type '{path.suffix}' ({path}); use .csv or .parquet")
    try:
        frame = reader(path)
    except Exception as exc:  # a parser's own message is the useful part
        raise DataError(f"data.source: cannot read {path}: {exc}") from None
    return SourcedTable(frame, Provenance("file", str(path), {path.name: digest}))


def check_size(what: str, size: int, max_bytes: int) -> None:
    if size > max_bytes:
        raise DataError(f"data.max_file_bytes: {what} is {size:,} bytes, over the limit of {max_bytes:,}; "
                        "raise the limit if this machine has the memory for it")
