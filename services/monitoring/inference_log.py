"""Read a window of the inference log, per model version, in bounded memory.

The log (docs/contracts.md) is a directory of append-only JSON-lines files, one record per predicted row.
A line that is not a complete, well-formed record (a worker killed mid-write leaves a torn last line) is
skipped and counted, never fatal.

Scale: the job must judge 1M logged rows without holding them. Each version's window is reduced while
reading to a uniform sample of at most `sample_rows` lines (reservoir sampling, Algorithm R), so memory is
O(sample_rows) whatever the traffic; when the window is "the newest N rows" the newest N are kept first
(O(N)) and then sampled. Why a uniform sample is enough: with a reference of more than 1000 rows Evidently
judges drift with distances (normed Wasserstein for numbers, Jensen-Shannon for categories, threshold 0.1);
these estimate an effect size whose sampling error shrinks like 1/sqrt(n). At n = 50,000 the standard error
of a normed Wasserstein distance is about 0.005, so a sample changes the verdict only for shifts within a
few hundredths of the threshold, and no drift a user would act on goes unseen. docs/monitoring.md has
the figures, and `make bench` measures them.

Cost over time: a run reads only what it still needs. Files dated (by name) before the retention are ignored,
and with a `LogIndex` (log_index.py) the bytes of a file whose rows were all judged already are skipped, so a
run's cost follows the new traffic, not the age of the log.
"""

from __future__ import annotations

import contextlib
import random
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path

import pandas as pd

from services.inference_record import BadRecord, InferenceRecord
from services.monitoring.log_index import LogIndex
from services.monitoring.sampling import Newest, Reservoir

REQUEST_ID = "request_id"
ROW = "row"
PREDICTION = "prediction"
MAX_PROBLEMS_KEPT = 5
DATED_NAME = re.compile(r"^(\d{8})-")  # serving names its files <YYYYMMDD>-<host>-<pid>.jsonl (UTC day)


@dataclass(frozen=True)
class WindowSpec:
    """Which logged rows to judge. Bounds combine: a row must satisfy all that are set."""

    since: Mapping[str, datetime] = field(default_factory=dict)  # per model version, exclusive
    not_before: datetime | None = None
    newest_rows: int | None = None

    def holds(self, version: str, stamp: datetime) -> bool:
        since = self.since.get(version)
        return not ((since is not None and stamp <= since) or (self.not_before is not None and stamp < self.not_before))

    def excludes(self, newest: Mapping[str, datetime]) -> bool:
        """True when no row with these newest timestamps per version can be in the window."""
        if self.newest_rows:
            return False
        return not any(self.holds(version, stamp) for version, stamp in newest.items())


@dataclass
class VersionTraffic:
    """One model version's rows in the window: how many, when, and a uniform sample of them."""

    model_version: str
    rows: int
    first_at: datetime
    last_at: datetime
    sample: list[InferenceRecord]

    def features(self) -> pd.DataFrame:
        return pd.DataFrame.from_records([record.features for record in self.sample])

    def keys(self) -> pd.DataFrame:
        """Request id, row and prediction of each sampled row, aligned with `features()`."""
        return pd.DataFrame(
            {
                REQUEST_ID: [record.request_id for record in self.sample],
                ROW: [record.row for record in self.sample],
                PREDICTION: [record.prediction for record in self.sample],
            }
        )


@dataclass
class LogScan:
    """What a read found: traffic per version plus what had to be skipped, for the report and the logs."""

    log_dir: Path
    versions: dict[str, VersionTraffic]
    files: int = 0  # files read, whole or from where an earlier run stopped
    unchanged_files: int = 0  # files with nothing new to read (all their rows judged already)
    expired_files: int = 0  # files older than the retention, ignored
    bytes_read: int = 0
    lines: int = 0
    skipped_lines: int = 0
    other_model_rows: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def rows(self) -> int:
        return sum(traffic.rows for traffic in self.versions.values())


def log_files(log_dir: Path) -> list[Path]:
    return sorted(path for path in log_dir.glob("*.jsonl") if path.is_file())


def _note(scan: LogScan, problem: str) -> None:
    if len(scan.problems) < MAX_PROBLEMS_KEPT:
        scan.problems.append(problem)


def file_day(path: Path) -> date:
    """The UTC day a log file was written: from its name (serving's files), else its modification time."""
    return day_of(path.name, path.stat().st_mtime)


def day_of(name: str, mtime: float) -> date:
    """A log file's UTC day from its name and modification time (`file_day`; gc lists files without a Path)."""
    match = DATED_NAME.match(name)
    if match:
        with contextlib.suppress(ValueError):
            return datetime.strptime(match.group(1), "%Y%m%d").date()
    return datetime.fromtimestamp(mtime, UTC).date()


def retention_start(now: datetime, days: int) -> datetime:
    """Midnight (UTC) of the oldest day whose log files are still read: files of earlier days are ignored."""
    return datetime.combine((now - timedelta(days=days)).date(), time(), tzinfo=UTC)


Offer = Callable[[str, datetime, str], None]  # (model version, timestamp, raw line)


def _read_file(
    path: Path, model_name: str, window: WindowSpec, scan: LogScan, offer: Offer, index: LogIndex | None
) -> None:
    """Offer the window's rows of one file; with an index, skip the prefix whose rows were all judged already."""
    stat = path.stat()
    known = index.known(path, stat) if index is not None else None
    offset, number, newest = 0, 0, {}
    if known is not None and window.excludes(known.newest()):
        offset, number, newest = known.offset, known.lines, known.newest()
        if offset == stat.st_size:
            scan.unchanged_files += 1
            return
    scan.files += 1
    complete_at, complete_lines = offset, number
    with path.open("rb") as handle:
        handle.seek(offset)
        for raw in handle:
            number += 1
            scan.lines += 1
            scan.bytes_read += len(raw)
            complete = raw.endswith(b"\n")  # a line without its newline is torn or still being written
            line = raw.decode("utf-8", errors="replace")
            try:
                record = InferenceRecord.parse(line)
            except BadRecord as exc:
                scan.skipped_lines += 1
                _note(scan, f"{path.name}:{number}: skipped, {exc}")
                record = None
            if record is None:
                pass
            elif record.model_name != model_name:
                scan.other_model_rows += 1
            else:
                version, stamp = record.model_version, record.timestamp
                if complete:
                    newest[version] = max(newest.get(version, stamp), stamp)
                if window.holds(version, stamp):
                    offer(version, stamp, line)
            if complete:
                complete_at, complete_lines = complete_at + len(raw), number
    if index is not None:
        index.remember(path, stat, offset=complete_at, lines=complete_lines, latest=newest)


def read_window(
    log_dir: Path,
    model_name: str,
    window: WindowSpec,
    *,
    sample_rows: int,
    seed: int = 0,
    index: LogIndex | None = None,
    retention_days: int | None = None,
    now: datetime | None = None,
) -> LogScan:
    """One pass over the log files still read; per model version a uniform sample of the rows in `window`.

    `retention_days`: files of days before that are ignored. `index`: skip what earlier runs read and judged
    (it is updated in place; the caller saves it).
    """
    scan = LogScan(log_dir=log_dir, versions={})
    if not log_dir.is_dir():
        _note(scan, f"inference log directory {log_dir} does not exist (has serving logged anything yet?)")
        return scan
    rng = random.Random(seed)
    keepers: dict[str, Reservoir | Newest] = {}

    def offer(version: str, stamp: datetime, line: str) -> None:
        keeper = keepers.get(version)
        if keeper is None:
            newest = window.newest_rows
            keeper = keepers[version] = Newest(newest) if newest else Reservoir(sample_rows, rng)
        keeper.offer((stamp, line))

    oldest = retention_start(now or datetime.now(UTC), retention_days).date() if retention_days else None
    kept: set[str] = set()
    for path in log_files(log_dir):
        try:
            if oldest is not None and file_day(path) < oldest:
                scan.expired_files += 1
                continue
            kept.add(path.name)
            _read_file(path, model_name, window, scan, offer, index)
        except OSError as exc:  # rotated away or unreadable: note it and go on with the other files
            _note(scan, f"{path.name}: cannot read ({exc.strerror or exc})")
    if index is not None:
        index.keep_only(kept)
    for version, keeper in keepers.items():
        items = keeper.items
        if len(items) > sample_rows:
            items = rng.sample(items, sample_rows)
        first, last = keeper.span
        scan.versions[version] = VersionTraffic(
            model_version=version,
            rows=keeper.rows,
            first_at=first,
            last_at=last,
            sample=[InferenceRecord.parse(line) for _, line in items],
        )
    return scan
