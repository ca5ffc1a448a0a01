"""Tables from S3-compatible object storage: one .parquet or .csv object, or a prefix of parquet parts.

The endpoint and credentials are boto3's own: AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY or
AWS_SHARED_CREDENTIALS_FILE (a mounted secret). The proof of each part is its version id where the bucket keeps
versions, else its ETag.
"""

from __future__ import annotations

from collections.abc import Mapping

from pipelines.config_model import DataConfig
from pipelines.sources import DataError, SourcedTable


def read_objects(config: DataConfig, pinned: Mapping[str, str] | None = None) -> SourcedTable:
    raise DataError(f"data.source: {config.source}: object sources are not built yet")
