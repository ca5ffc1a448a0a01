"""Load the configured table, check it against the config's schema, and give it a version.

The data version is a sha256 over the FULL table (column names, dtypes and every cell): MLflow's own
dataset digest samples only the first rows, so two tables differing in row 20,000 would collide.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import pandas as pd
from pandas.api import types as ptypes

from pipelines.config import DataConfig, PipelineConfig
from pipelines.digests import short
from pipelines.sources import DataError, Provenance, read_source
from pipelines.task import Task, task_for

VERSION_CHUNK_ROWS = 1_000_000  # rows hashed at a time: ~8 MB of row hashes, and a few column temporaries


@dataclass(frozen=True)
class VersionedData:
    frame: pd.DataFrame
    version: str
    provenance: Provenance

    @property
    def source(self) -> str:
        return self.provenance.uri

    @property
    def short_version(self) -> str:
        return short(self.version)


def check_schema(frame: pd.DataFrame, config: DataConfig, task: Task) -> pd.DataFrame:
    """Fail on anything that would train a broken model; return only the configured columns, typed.

    A column already of its type is not copied when the table keeps every column of `frame` (the result then
    shares its memory: give up `frame`, as `load_versioned` does); when columns are dropped, the kept ones are
    copied, so the dropped ones are freed with `frame`."""
    if frame.empty:
        raise DataError("the dataset is empty: no rows to train on")
    if config.time_column and config.time_column not in frame.columns:
        raise DataError(f"data.time_column '{config.time_column}' is not a column of the table; it has "
                        f"{list(frame.columns)}")
    missing = [c for c in config.columns if c not in frame.columns]
    if missing:
        raise DataError(f"missing column(s) {missing}; the table has {list(frame.columns)}")
    for column in [*config.features, config.target]:
        if frame[column].isna().all():
            raise DataError(f"column '{column}' has no values (every row is null)")
    for column in config.numeric_features:
        if not ptypes.is_numeric_dtype(frame[column]) or ptypes.is_bool_dtype(frame[column]):
            bad = frame[column][pd.to_numeric(frame[column], errors="coerce").isna() & frame[column].notna()]
            example = f", e.g. {bad.iloc[0]!r}" if len(bad) else ""
            raise DataError(
                f"column '{column}' is listed as numeric but has type {frame[column].dtype}{example}"
            )
    if frame[config.target].isna().any():
        raise DataError(f"target column '{config.target}' has {int(frame[config.target].isna().sum())} null value(s)")
    if problem := task.target_problem(frame[config.target], config.target, split=config.split or task.default_split,
                                      holdout_fraction=config.holdout_fraction):
        raise DataError(problem)
    copy = not set(frame.columns) <= set(config.columns)
    # Built column by column, unconsolidated: no copy of the whole table, and no reset_index copy.
    table = pd.DataFrame({column: typed(frame[column], config, copy=copy) for column in config.columns}, copy=False)
    table.index = pd.RangeIndex(len(table))
    return table


def typed(values: pd.Series, config: DataConfig, *, copy: bool) -> pd.Series:
    """One column as training and serving see it; a new array only where the type changes (or `copy`)."""
    column = str(values.name)
    if column == config.time_column:
        times = time_values(values, column)
        if column not in config.features:  # a feature keeps its own type
            return times.copy() if copy and times is values else times
    # Categoricals are strings everywhere after this point, so serving and training agree on types.
    if column in config.categorical_features:
        return values.astype("string").astype(object).where(values.notna(), None)
    if column in config.numeric_features:
        return values.astype("float64", copy=copy)
    return values.copy() if copy else values


def time_values(values: pd.Series, column: str) -> pd.Series:
    """The time column as a time split orders it: numbers or datetimes (ISO date strings, as a CSV holds
    them, are parsed); a null or a value that does not order is a `DataError` naming the column."""
    if values.isna().any():
        raise DataError(f"data.time_column '{column}' has {int(values.isna().sum())} null value(s); "
                        "every row needs a time to be ordered")
    if ptypes.is_datetime64_any_dtype(values) or (ptypes.is_numeric_dtype(values) and not ptypes.is_bool_dtype(values)):
        return values
    if ptypes.is_object_dtype(values) or ptypes.is_string_dtype(values):
        try:
            return pd.to_datetime(values, format="ISO8601")
        except (ValueError, TypeError) as exc:
            raise DataError(f"data.time_column '{column}' is not numbers or ISO dates/times: {exc}") from None
    raise DataError(f"data.time_column '{column}' has type {values.dtype}; a time split needs numbers or datetimes")


def data_version(frame: pd.DataFrame, chunk_rows: int = VERSION_CHUNK_ROWS) -> str:
    """Content digest of the whole table: same data, same version; any changed cell, a new one.

    sha256 over the column names and dtypes, then each row's pandas hash in table order. The row hashes are
    computed `chunk_rows` at a time (a row's hash depends on that row only), so memory stays bounded and the
    digest is the same for any chunk size, and the same as hashing the whole table at once."""
    digest = hashlib.sha256()
    digest.update(repr([(str(c), str(t)) for c, t in frame.dtypes.items()]).encode())
    for start in range(0, len(frame), chunk_rows):
        rows = frame.iloc[start:start + chunk_rows]
        digest.update(pd.util.hash_pandas_object(rows, index=False).to_numpy())
    return digest.hexdigest()


def load_versioned(config: PipelineConfig) -> VersionedData:
    """The configured table, checked against the data config and the task, with its version."""
    table, provenance = load_checked(config)
    return VersionedData(frame=table, version=data_version(table), provenance=provenance)


def load_checked(config: PipelineConfig) -> tuple[pd.DataFrame, Provenance]:
    """The checked table and where it came from; the raw frame is released on return, before hashing, so
    the columns the check converted are not held twice. A source `data.snapshot` cannot pin is refused first."""
    from pipelines.snapshots import check_policy  # it reads tables back with this module's checks

    raw = read_source(config.data)
    check_policy(config.data, raw.provenance)
    try:
        return check_schema(raw.frame, config.data, task_for(config.task)), raw.provenance
    except DataError as exc:  # the table's fault: say which table
        raise DataError(f"{raw.provenance.uri}: {exc}") from None


def to_records(frame: pd.DataFrame) -> list[dict]:
    """Rows as a client sends them to `/predict`: plain Python values, None for missing."""
    return frame.astype(object).where(pd.notna(frame), None).to_dict(orient="records")
