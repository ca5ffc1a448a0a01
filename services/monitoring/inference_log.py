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
"""

from __future__ import annotations

import heapq
import json
import random
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import pandas as pd

from services.contract import SMOKE_REQUEST_PREFIX, BadRecord, InferenceRecord

FEEDBACK_DIR = "feedback"
REQUEST_ID = "request_id"
ROW = "row"
PREDICTION = "prediction"
MAX_PROBLEMS_KEPT = 5


@dataclass(frozen=True)
class WindowSpec:
    """Which logged rows to judge. Bounds combine: a row must satisfy all that are set."""

    since: Mapping[str, datetime] = field(default_factory=dict)  # per model version, exclusive
    not_before: datetime | None = None
    newest_rows: int | None = None


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
    files: int = 0
    lines: int = 0
    skipped_lines: int = 0
    other_model_rows: int = 0
    smoke_rows: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def rows(self) -> int:
        return sum(traffic.rows for traffic in self.versions.values())


class _Reservoir:
    """A uniform sample of at most `size` items from a stream of unknown length (Algorithm R)."""

    def __init__(self, size: int, rng: random.Random) -> None:
        self.size = size
        self.rows = 0
        self.items: list[tuple[datetime, str]] = []
        self._rng = rng
        self._first: datetime | None = None
        self._last: datetime | None = None

    @property
    def span(self) -> tuple[datetime, datetime]:
        assert self._first is not None and self._last is not None, "span of an empty window"
        return self._first, self._last

    def offer(self, item: tuple[datetime, str]) -> None:
        stamp = item[0]
        self._first = stamp if self._first is None else min(self._first, stamp)
        self._last = stamp if self._last is None else max(self._last, stamp)
        self.rows += 1
        if len(self.items) < self.size:
            self.items.append(item)
            return
        slot = self._rng.randrange(self.rows)
        if slot < self.size:
            self.items[slot] = item


class _Newest:
    """The newest `size` items of a stream (a min-heap on timestamp), later sampled down."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._offered = 0
        self._heap: list[tuple[datetime, int, str]] = []

    def offer(self, item: tuple[datetime, str]) -> None:
        self._offered += 1
        entry = (item[0], self._offered, item[1])  # the counter breaks timestamp ties without comparing lines
        if len(self._heap) < self.size:
            heapq.heappush(self._heap, entry)
        elif entry > self._heap[0]:
            heapq.heapreplace(self._heap, entry)

    @property
    def items(self) -> list[tuple[datetime, str]]:
        return [(stamp, line) for stamp, _, line in self._heap]

    @property
    def rows(self) -> int:
        return len(self._heap)

    @property
    def span(self) -> tuple[datetime, datetime]:
        return self._heap[0][0], max(stamp for stamp, _, _ in self._heap)


def log_files(log_dir: Path) -> list[Path]:
    return sorted(path for path in log_dir.glob("*.jsonl") if path.is_file())


def _lines(path: Path, scan: LogScan) -> Iterator[tuple[int, str]]:
    try:
        with path.open(encoding="utf-8", errors="replace") as handle:
            yield from enumerate(handle, start=1)
    except OSError as exc:  # rotated away or unreadable: note it and go on with the other files
        _note(scan, f"{path.name}: cannot read ({exc.strerror or exc})")


def _note(scan: LogScan, problem: str) -> None:
    if len(scan.problems) < MAX_PROBLEMS_KEPT:
        scan.problems.append(problem)


def read_window(
    log_dir: Path, model_name: str, window: WindowSpec, *, sample_rows: int, seed: int = 0
) -> LogScan:
    """Scan every log file once; keep per model version a uniform sample of the rows in `window`."""
    scan = LogScan(log_dir=log_dir, versions={})
    if not log_dir.is_dir():
        _note(scan, f"inference log directory {log_dir} does not exist (has serving logged anything yet?)")
        return scan
    rng = random.Random(seed)
    keepers: dict[str, _Reservoir | _Newest] = {}
    for path in log_files(log_dir):
        scan.files += 1
        for number, line in _lines(path, scan):
            scan.lines += 1
            try:
                record = InferenceRecord.parse(line)
            except BadRecord as exc:
                scan.skipped_lines += 1
                _note(scan, f"{path.name}:{number}: skipped, {exc}")
                continue
            if record.model_name != model_name:
                scan.other_model_rows += 1
                continue
            if record.request_id.startswith(SMOKE_REQUEST_PREFIX):
                scan.smoke_rows += 1
                continue
            version, stamp = record.model_version, record.timestamp
            since = window.since.get(version)
            if (since is not None and stamp <= since) or (window.not_before is not None and stamp < window.not_before):
                continue
            keeper = keepers.get(version)
            if keeper is None:
                keeper = keepers[version] = (
                    _Newest(window.newest_rows) if window.newest_rows else _Reservoir(sample_rows, rng)
                )
            keeper.offer((stamp, line))
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
            # Lines are kept raw while reading (smaller than parsed dicts) and parsed once, here.
            sample=[InferenceRecord.parse(line) for _, line in items],
        )
    return scan


def read_labels(log_dir: Path, wanted: set[tuple[str, int]]) -> dict[tuple[str, int], object]:
    """Ground-truth labels (`feedback/*.jsonl`) for the wanted (request id, row) keys; bad lines are skipped."""
    labels: dict[tuple[str, int], object] = {}
    feedback_dir = log_dir / FEEDBACK_DIR
    if not wanted or not feedback_dir.is_dir():
        return labels
    for path in sorted(feedback_dir.glob("*.jsonl")):
        try:
            with path.open(encoding="utf-8", errors="replace") as handle:
                for line in handle:
                    try:
                        raw = json.loads(line)
                        key = (str(raw[REQUEST_ID]), int(raw.get(ROW, 0)))
                        label = raw["label"]
                    except (json.JSONDecodeError, KeyError, TypeError, ValueError):
                        continue
                    if key in wanted:
                        labels[key] = label
        except OSError:
            continue
    return labels
