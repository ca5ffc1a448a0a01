"""The Evidently workspace the Evidently UI serves: one project per model, a snapshot per judged window."""

from __future__ import annotations

from pathlib import Path

from evidently.core.report import Snapshot
from evidently.sdk.models import PanelMetric
from evidently.sdk.panels import counter_panel, line_plot_panel
from evidently.ui.workspace import Project, Workspace

from services.monitoring.margins import METRIC


def add_to_workspace(workspace_dir: Path, project_name: str, snapshot: Snapshot, name: str) -> str:
    """Add the report to the Evidently workspace the UI serves (one project per model); the snapshot id."""
    workspace = Workspace.create(str(workspace_dir))
    found = workspace.search_project(project_name)
    if found:
        project = found[0]
    else:
        project = workspace.create_project(
            project_name, description=f"Logged traffic of {project_name} vs its training snapshot"
        )
        _add_drift_dashboard(project)
    return str(workspace.add_run(project.id, snapshot, include_data=False, name=name).id)


def _add_drift_dashboard(project: Project) -> None:
    """Panels over all reports of the project: drift share and per-column drift margins through time."""
    share = PanelMetric(legend="share", metric="DriftedColumnsCount", metric_labels={"value_type": "share"})
    project.dashboard.add_panel(
        counter_panel(title="Share of drifted columns, last report", values=[share], size="half", aggregation="last")
    )
    project.dashboard.add_panel(
        counter_panel(
            title="Rows judged, all reports",
            values=[PanelMetric(legend="rows", metric="RowCount", metric_labels={})],
            size="half",
            aggregation="sum",
        )
    )
    project.dashboard.add_panel(line_plot_panel(title="Share of drifted columns", values=[share]))
    project.dashboard.add_panel(
        line_plot_panel(
            title="Drift margin per column: past its own threshold, above 0 = drifted",
            description="(score - threshold) / threshold for distances, (threshold - p-value) / threshold for "
                        "p-value tests, so every column points one way; the report has the raw scores",
            values=[PanelMetric(legend="{{column}}", metric=METRIC, metric_labels={})],
        )
    )
