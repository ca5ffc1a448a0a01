"""Storage per kind on this machine: what `make status` shows and `pipelines gc` compares before and after.

Each kind is a directory of the state dir, measured by walking it (files and bytes), except release images,
which Docker counts (their sizes include the runtime image's layers they share, so the figure is an upper
bound). A kind that lives elsewhere (artifacts on S3) or cannot be counted (no Docker) says so instead.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

from pipelines.config import PipelineConfig
from pipelines.volume_files import LocalTree, Tree, Trees, local_trees
from services.contract import RELEASE_VERSION_LABEL


@dataclass(frozen=True)
class Usage:
    bytes: int | None  # None: not counted here (see `note`)
    items: int = 0
    note: str = ""
    unit: str = "file"

    def shown(self) -> str:
        if self.bytes is None:
            return self.note
        return f"{human(self.bytes)} in {self.items} {self.unit}{'' if self.items == 1 else 's'}" + (
            f" ({self.note})" if self.note else "")


def human(size: int) -> str:
    """Bytes as a person reads them: 512 B, 3.4 kB, 1.2 GB (powers of 1000, as `docker images` shows them)."""
    value, unit = float(size), "B"
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if abs(value) < 1000 or unit == "TB":
            break
        value /= 1000
    return f"{size} B" if unit == "B" else f"{value:.1f} {unit}"


def tree_usage(tree: Tree, pattern: str = "**/*") -> Usage:
    """Bytes and files under the tree's root matching the glob `pattern` (zero when it does not exist)."""
    files = tree.files(pattern)
    return Usage(sum(entry.size for entry in files), len(files))


def storage(config: PipelineConfig, trees: Trees | None = None) -> dict[str, Usage]:
    """Kind -> its usage, in a fixed order: on this machine, the monitoring output on `trees` when given (a
    stack's volumes)."""
    state, monitoring = config.platform.state_dir, trees or local_trees(config)
    bentoml_home = Path(os.environ.get("BENTOML_HOME") or state / "bentoml")  # as pipelines.bento.use_store
    return {
        "bentos": tree_usage(LocalTree(bentoml_home / "bentos")),
        "bentoml models": tree_usage(LocalTree(bentoml_home / "models")),
        "release images": release_images(),
        "monitoring reports": tree_usage(monitoring.reports, "*.html"),
        "Evidently snapshots": tree_usage(monitoring.workspace, "*/snapshots/*.json"),
        "inference logs": tree_usage(monitoring.logs, "**/*.jsonl"),
        "MLflow artifacts": (tree_usage(LocalTree(state / "mlflow" / "artifacts"))
                             if config.platform.artifacts_location is None
                             else Usage(None, note=f"in {config.platform.artifacts_destination}, not counted here")),
    }


def release_images() -> Usage:
    """The release images Docker holds (any model's), by their label; not counted when no daemon answers."""
    try:
        listed = _docker("images", "--filter", f"label={RELEASE_VERSION_LABEL}", "--format", "{{.ID}}")
        ids = sorted(set(listed.split()))
        sizes = _docker("image", "inspect", "--format", "{{.Size}}", *ids) if ids else ""
    except (OSError, subprocess.SubprocessError) as exc:
        return Usage(None, note=f"not counted: {exc}"[:200])
    return Usage(sum(int(size) for size in sizes.split()), len(ids), "shared layers counted in each" if ids else "",
                 unit="image")


def _docker(*args: str) -> str:
    done = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=10, check=False)
    if done.returncode != 0:
        raise subprocess.SubprocessError(f"Docker did not answer ({done.stderr.strip()[:120]})")
    return done.stdout
