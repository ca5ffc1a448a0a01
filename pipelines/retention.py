"""What `pipelines gc` deletes of what monitoring leaves behind, each kind past its own `lifecycle:` retention.

- Inference-log files of days older than `keep_inference_days`, but only once monitoring has judged every record
  in them: the judged runs' `window_end` tag, per model and version, is where monitoring's record of what it read
  lives (services/monitoring/records.py; the job's log index is only a cache), so a file holding a record newer
  than the last judged window of its model version, or of a version never judged, stays. Files go first, while
  every report run that says how far monitoring got is still there.
- Report runs of the monitoring experiment started more than `keep_reports_days` ago, with their artifacts and
  the HTML files of the same name, except the newest judged run per model version (its verdict, and where the
  next window starts) and a run holding an open retrain request.
- Evidently snapshots (the UI's workspace) written more than `keep_snapshots_days` ago.

The files are reached through `pipelines.volume_files.Trees`: this machine's state dir, or a Docker stack's volumes.
"""

from __future__ import annotations

import contextlib
import functools
import json
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path, PurePosixPath

from mlflow.entities import Run
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from requests import HTTPError

from pipelines.config import PipelineConfig
from pipelines.volume_files import Entry, Tree, Trees, local_trees
from services.contract import REPORT_MODEL_TAG, REPORT_VERSION_TAG, RETRAIN_OPEN, RETRAIN_STATUS_TAG
from services.inference_record import BadRecord, InferenceRecord
from services.monitoring.inference_log import day_of
from services.monitoring.records import JUDGED_TAG

EndsOf = Callable[[str], Mapping[str, datetime]]  # model -> (version -> where its newest judged window ended)
_PAGE = 1000


@dataclass
class Swept:
    """One kind's outcome: what went (or, on a dry run, would go), its bytes, and what stayed past retention."""

    removed: list[str] = field(default_factory=list)
    freed_bytes: int = 0
    kept: list[str] = field(default_factory=list)  # "<item>: why"

    def delete(self, tree: Tree, entry: Entry, shown: str, *, dry_run: bool) -> None:
        """Count the file as gone (as `shown`), and delete it unless this is a dry run."""
        self.removed.append(shown)
        self.freed_bytes += entry.size
        if not dry_run:
            tree.delete(entry.name)


def cutoff(now: datetime, days: float | None) -> datetime | None:
    """Anything older than this is past the retention; None when the kind is kept for ever."""
    return None if days is None else now - timedelta(days=days)


def day_is_past(day_of_file: date, before: datetime) -> bool:
    """A log file's day is past the retention when the whole day (its newest possible record) is before it."""
    return datetime.combine(day_of_file + timedelta(days=1), time(), tzinfo=UTC) <= before


def unjudged(records: Iterable[InferenceRecord], ends_of: EndsOf) -> InferenceRecord | None:
    """The first record monitoring has not judged yet (newer than its version's last judged window), or None."""
    for record in records:
        end = ends_of(record.model_name).get(record.model_version)
        if end is None or record.timestamp > end:
            return record
    return None


def read_records(lines: Iterable[str]) -> Iterable[InferenceRecord]:
    """A log file's records; a line that is none (a torn last line) holds no record to lose, as for the job."""
    for line in lines:
        try:
            yield InferenceRecord.parse(line)
        except BadRecord:
            continue


def judged_windows(client: MlflowClient, experiment: str) -> EndsOf:
    """Per model (asked of MLflow once each), the last judged window end of each of its versions."""
    from services.monitoring.records import experiment_id, last_judged_window_ends

    found = experiment_id(client, experiment)
    return functools.cache(lambda model: last_judged_window_ends(client, model, found))


def sweep_inference_logs(config: PipelineConfig, client: MlflowClient, now: datetime, *, dry_run: bool,
                         trees: Trees | None = None) -> Swept:
    done, before = Swept(), cutoff(now, config.lifecycle.keep_inference_days)
    logs = (trees or local_trees(config)).logs
    files = [] if before is None else logs.files("*.jsonl")  # the top files only, as the job reads them
    if before is None or not files:
        return done
    ends = judged_windows(client, config.monitoring.experiment)
    for entry in files:
        if not day_is_past(day_of(entry.name, entry.mtime), before):
            continue
        waiting = unjudged(read_records(logs.lines(entry.name)), ends)
        if waiting is not None:
            done.kept.append(f"{entry.name}: not judged yet ({waiting.model_name} v{waiting.model_version} "
                             f"record of {waiting.timestamp:%Y-%m-%d %H:%M} UTC)")
            continue
        done.delete(logs, entry, entry.name, dry_run=dry_run)
    return done


def _report_runs(client: MlflowClient, experiment: str, model: str) -> list[Run]:
    found = client.get_experiment_by_name(experiment)
    if found is None:
        return []
    runs, token = [], None
    while True:
        page = client.search_runs([found.experiment_id], f"tags.{REPORT_MODEL_TAG} = '{model}'",
                                  order_by=["attributes.start_time DESC"], max_results=_PAGE, page_token=token)
        runs.extend(page)
        token = page.token
        if not token:
            return runs


def protected(runs: list[Run]) -> dict[str, str]:
    """Run id -> why it stays whatever its age: the newest judged report per model version (a run that failed
    halfway is no verdict), one holding an open retrain request."""
    kept: dict[str, str] = {}
    seen: set[str] = set()
    for run in sorted(runs, key=lambda r: r.info.start_time or 0, reverse=True):
        version = run.data.tags.get(REPORT_VERSION_TAG, "")
        if version not in seen and run.data.tags.get(JUDGED_TAG) == "true":
            seen.add(version)
            kept[run.info.run_id] = f"the newest report of v{version}"
        if run.data.tags.get(RETRAIN_STATUS_TAG) == RETRAIN_OPEN:
            kept[run.info.run_id] = "holds the open retrain request"
    return kept


def sweep_reports(config: PipelineConfig, client: MlflowClient, now: datetime, *, dry_run: bool,
                  trees: Trees | None = None) -> Swept:
    done, before = Swept(), cutoff(now, config.lifecycle.keep_reports_days)
    if before is None:
        return done
    runs = _report_runs(client, config.monitoring.experiment, config.model_name)
    keep, limit, refused = protected(runs), before.timestamp() * 1000, set()
    old = [run for run in runs if (run.info.start_time or 0) < limit]
    for run in old:
        name = run.info.run_name or run.info.run_id
        if run.info.run_id in keep:
            done.kept.append(f"run {name}: {keep[run.info.run_id]}")
            continue
        size = _artifact_bytes(client, run.info.run_id)
        if not dry_run:
            try:
                _delete_run(client, run)
            except (MlflowException, HTTPError) as exc:  # e.g. a login without EDIT on the experiment: 403
                done.kept.append(f"run {name}: MLflow refused to delete it ({str(exc).splitlines()[0][:200]})")
                refused.add(run.info.run_id)
                continue
        done.removed.append(f"run {name}")
        done.freed_bytes += size
    gone = {run.info.run_id for run in old} - set(keep) - refused
    staying = {run.info.run_name for run in runs if run.info.run_id not in gone}
    reports = (trees or local_trees(config)).reports
    for entry in reports.files(f"{config.model_name}-v*.html"):
        stem = Path(entry.name).stem
        if entry.mtime >= before.timestamp() or not is_report_of(stem, config.model_name) or _of_run(stem, staying):
            continue
        done.delete(reports, entry, entry.name, dry_run=dry_run)
    return done


def is_report_of(stem: str, model: str) -> bool:
    """A report file's name is `<model>-v<version>-<stamp>[-<kind>]` (services/monitoring/records.py); matched whole,
    since `<model>-v2` may be another model's name."""
    return re.fullmatch(rf"{re.escape(model)}-v\d+-\d{{8}}T\d{{6}}(-[a-z_]+)?", stem) is not None


def _of_run(stem: str, run_names: set[str | None]) -> bool:
    """A report file is named after its run: `<run name>.html` or `<run name>-<kind>.html` (records.py)."""
    return any(name and (stem == name or stem.startswith(f"{name}-")) for name in run_names)


def _artifact_bytes(client: MlflowClient, run_id: str, path: str | None = None) -> int:
    total = 0
    for item in client.list_artifacts(run_id, path):
        total += _artifact_bytes(client, run_id, item.path) if item.is_dir else (item.file_size or 0)
    return total


def _delete_run(client: MlflowClient, run: Run) -> None:
    """The run's artifacts (through MLflow's artifact API, so the store frees them), then the run itself."""
    from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

    if client.list_artifacts(run.info.run_id):
        get_artifact_repository(run.info.artifact_uri).delete_artifacts()
    client.delete_run(run.info.run_id)


def sweep_snapshots(config: PipelineConfig, now: datetime, *, dry_run: bool, trees: Trees | None = None) -> Swept:
    """The workspace keeps one file per snapshot, `<project>/snapshots/<id>.json`, which the UI lists when it loads."""
    done, before = Swept(), cutoff(now, config.lifecycle.keep_snapshots_days)
    if before is None:
        return done
    workspace = (trees or local_trees(config)).workspace
    projects = _projects_of(workspace, config.model_name)
    for entry in workspace.files("*/snapshots/*.json"):
        path = PurePosixPath(entry.name)
        if path.parts[0] in projects and entry.mtime < before.timestamp():
            done.delete(workspace, entry, f"{path.parts[0]}/{path.stem}", dry_run=dry_run)
    return done


def _projects_of(workspace: Tree, model: str) -> set[str]:
    """The model's project folders of the shared workspace (the job names each project after its model)."""
    found = set()
    for metadata in workspace.files("*/metadata.json"):  # Evidently's local project file
        with contextlib.suppress(Exception):  # unreadable or not JSON (a Docker error, a half-written file): not its
            if json.loads("".join(workspace.lines(metadata.name))).get("name") == model:
                found.add(PurePosixPath(metadata.name).parts[0])
    return found


def sweep_monitoring(config: PipelineConfig, client: MlflowClient, now: datetime, *, dry_run: bool,
                     trees: Trees | None = None) -> dict[str, Swept]:
    """Kind -> what went, inference logs first (see the module's docstring); the kinds as `pipelines.storage` names
    them."""
    return {
        "inference logs": sweep_inference_logs(config, client, now, dry_run=dry_run, trees=trees),
        "monitoring reports": sweep_reports(config, client, now, dry_run=dry_run, trees=trees),
        "Evidently snapshots": sweep_snapshots(config, now, dry_run=dry_run, trees=trees),
    }
