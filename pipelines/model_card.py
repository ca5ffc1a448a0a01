"""A model card per version, written at the gate from what is recorded: what the model is for (the config's
`card:`), how it was made (the training run's params and tags), how it scored (the gate's report), and its
lineage. Plain Markdown (skops' `Card` wants the fitted estimator and renders Markdown only); the HTML copy
is Python-Markdown's rendering of the same text.

Stored in the version's run (`card/model-card.md`, `card/model-card.html`) and as the version's description,
so the MLflow UI shows it on the version page; `pipelines card [VERSION]` prints it.
"""

from __future__ import annotations

import html
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import markdown
import pandas as pd

from pipelines.config_model import CardConfig
from pipelines.errors import CannotRun
from pipelines.gate_checks import Check
from pipelines.registry import ResolvedVersion
from pipelines.uris import split_credentials
from services.contract import CLASSIFICATION, DATA_SOURCE_TAG, SNAPSHOT_POLICY_TAG

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient

    from pipelines.config import PipelineConfig


class CardError(CannotRun):
    """A card that cannot be shown: the version was never gated."""

CARD_MARKDOWN = "card/model-card.md"
CARD_HTML = "card/model-card.html"
# MLflow keeps a version's description in a VARCHAR(5000) (Postgres enforces it): a longer card is described
# without its passed checks, which the artifact still lists.
MAX_DESCRIPTION_CHARS = 5000


@dataclass(frozen=True)
class CardFacts:
    """Everything a card says, gathered once by the gate."""

    version: ResolvedVersion
    card: CardConfig
    passed: bool
    runtime: str
    metrics: Mapping[str, float]
    checks: list[Check]
    notes: list[str]
    fairness: list[dict]  # the gate's per-group rows (pipelines/fairness.py)
    holdout: pd.DataFrame | None  # None when the gate did not get as far as the model
    run_params: Mapping[str, str]
    run_tags: Mapping[str, str]
    champion_version: str | None
    written_at: datetime
    not_run: str = ""  # why the gate judged no metrics (it stopped before loading the model)

    @classmethod
    def now(cls, **facts: object) -> CardFacts:
        return cls(**facts, written_at=datetime.now(UTC))  # type: ignore[arg-type]


def card_markdown(facts: CardFacts, *, passed_checks: bool = True) -> str:
    """The card as Markdown; `passed_checks=False` leaves out the rows of the checks that passed."""
    model = facts.version
    verdict = "PASSED" if facts.passed else "FAILED"
    sections = [
        f"# Model card: {model.name} v{model.version}",
        f"Gate **{verdict}** on {facts.written_at:%Y-%m-%d %H:%M} UTC; serves on {facts.runtime}."
        + (f" Compared with champion v{facts.champion_version}." if facts.champion_version else ""),
        *_team_sections(facts.card),
        "## Model\n\n" + _table(("", ""), [("task", model.task), ("estimator", f"`{model.estimator}`")])
        + _params(facts.run_params),
        "## Training data\n\n" + _data(facts),
        "## Metrics on the frozen eval set\n\n" + (f"_{facts.not_run}_" if facts.not_run else _table(
            ("metric", "value"), [(name, f"{value:.4f}") for name, value in sorted(facts.metrics.items())])),
        "## Fairness\n\n" + (f"_{facts.not_run}_" if facts.not_run else
                              _fairness(facts.fairness, facts.version.data.sensitive_features)),
        "## Gate checks\n\n" + _checks(facts.checks, passed_checks)
        + ("\n\n" + "\n".join(f"- {note}" for note in facts.notes) if facts.notes else ""),
        "## Lineage\n\n" + _table(("", ""), [
            ("git commit", model.git_sha), ("training run", model.run_id), ("data version", model.data_version),
            ("team code sha256", model.code_sha256 or "no team code")]),
    ]
    return "\n\n".join(sections) + "\n"


def description(facts: CardFacts, later: str = "") -> str:
    """The card for the version's description: whole when it fits MLflow's column, else without passed checks;
    `later` (its "Later facts" section) is kept whole, after it (the newest lines last, when even they are long)."""
    later = later[-(MAX_DESCRIPTION_CHARS // 2):]
    room = MAX_DESCRIPTION_CHARS - len(later)
    text = card_markdown(facts)
    if len(text) > room:
        text = card_markdown(facts, passed_checks=False)
    if len(text) > room:
        text = text[:room - 60] + f"\n\n... (the whole card: the run's `{CARD_MARKDOWN}`)\n"
    return text + later


def card_html(text: str, title: str) -> str:
    # The text carries values from the data (groups, slices): escaped, so none of it is markup.
    body = markdown.markdown(html.escape(text, quote=False), extensions=["tables"])
    return (f"<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>{html.escape(title)}</title>"
            "<style>body{font-family:sans-serif;max-width:60em;margin:2em auto}"
            "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.2em .5em}</style></head>"
            f"<body>\n{body}\n</body></html>\n")


def _team_sections(card: CardConfig) -> list[str]:
    missing = "_not given: set `card.{}` in the pipeline config_"
    limitations = "\n".join(f"- {item}" for item in card.limitations) or missing.format("limitations")
    return [f"## Intended use\n\n{card.intended_use or missing.format('intended_use')}",
            f"## Owner\n\n{card.owner or missing.format('owner')}",
            f"## Limitations\n\n{limitations}"]


def _params(params: Mapping[str, str]) -> str:
    rows = sorted((key.removeprefix("model."), value) for key, value in params.items() if key.startswith("model."))
    return "\n\nParameters beyond the estimator's defaults:\n\n" + _table(("parameter", "value"), rows) if rows else \
        "\n\nThe estimator's default parameters."


def _data(facts: CardFacts) -> str:
    data, holdout = facts.version.data, facts.holdout
    source = facts.run_tags.get(DATA_SOURCE_TAG, data.source)
    rows = [("source", f"`{source}` (snapshot: {facts.run_tags.get(SNAPSHOT_POLICY_TAG, 'copy')})"),
            ("data version", facts.version.data_version), ("rows", facts.run_params.get("rows", "not recorded")),
            ("eval rows (frozen holdout)", "not read" if holdout is None else str(len(holdout))),
            ("numeric features", ", ".join(data.numeric_features) or "none"),
            ("categorical features", ", ".join(data.categorical_features) or "none"), ("target", data.target)]
    summary = "" if holdout is None else "\n\n" + _target_summary(holdout[data.target], facts.version.task)
    return _table(("", ""), rows) + summary


def _target_summary(target: pd.Series, task: str) -> str:
    if task == CLASSIFICATION:
        shares = target.value_counts(normalize=True).sort_index()
        return "Class balance of the eval set:\n\n" + _table(
            ("class", "share"), [(str(label), f"{share:.1%}") for label, share in shares.items()])
    described = target.describe()
    return "Target on the eval set:\n\n" + _table(
        ("mean", "std", "min", "max"), [tuple(f"{described[key]:.4g}" for key in ("mean", "std", "min", "max"))])


def _fairness(groups: list[dict], columns: list[str]) -> str:
    if columns and not groups:
        return f"_not computed for {', '.join(columns)}: see the gate's notes_"
    if not groups:
        return "_no sensitive columns: set `data.sensitive_features` (and `fairness.limits`) in the pipeline config_"
    metrics = [key for key in groups[0] if key not in ("column", "group", "rows", "judged")]
    rows = [(row["column"], row["group"], str(row["rows"]) + ("" if row["judged"] else " (too few to judge)"),
             *(_figure(row[name]) for name in metrics)) for row in groups]
    return (f"Per group of {', '.join(columns)} on the frozen eval set (the limits: the `*_difference` / `*_ratio` "
            "checks below):\n\n" + _table(("column", "group", "eval rows", *metrics), rows))


def _figure(value: float) -> str:
    return "n/a" if value != value else f"{value:.4f}"  # NaN: a rate the group has no rows for


def _checks(checks: list[Check], passed_checks: bool) -> str:
    shown = [check for check in checks if passed_checks or not check.passed]
    table = _table(("check", "candidate", "champion", "threshold", "result"), [
        (check.name, str(check.candidate), "" if check.champion is None else str(check.champion), check.threshold,
         "pass" if check.passed else "**FAIL**") for check in shown])
    if hidden := len(checks) - len(shown):
        table += f"\n\n{hidden} more checks passed (the whole table: the run's `{CARD_MARKDOWN}`)."
    return table


def _table(header: tuple[str, ...], rows: Iterable[tuple[str, ...]]) -> str:
    def line(cells: tuple[str, ...]) -> str:
        return "| " + " | ".join(str(cell).replace("|", "\\|").replace("\n", " ") for cell in cells) + " |"
    return "\n".join([line(header), line(tuple("---" for _ in header)), *(line(row) for row in rows)])


def record_card(client: MlflowClient, facts: CardFacts) -> str:
    """Write the card into the version's run and onto the version; returns the Markdown. The later facts of the
    card it replaces (releases, rollbacks, canaries: `append_fact`) stay, under the new gate's findings."""
    model = facts.version
    earlier = gated_card(model) or ""
    kept = earlier[earlier.index(LATER_FACTS):] if LATER_FACTS in earlier else ""
    later = f"\n\n{kept.rstrip()}\n" if kept else ""
    text = card_markdown(facts) + later
    client.log_text(model.run_id, text, CARD_MARKDOWN)
    client.log_text(model.run_id, card_html(text, f"{model.name} v{model.version}"), CARD_HTML)
    client.update_model_version(model.name, model.version, description=description(facts, later))
    return text


def card_place(config: PipelineConfig, model: ResolvedVersion) -> str:
    """Where a person reads the card: the version page of the MLflow UI, and the run's artifact."""
    ui = split_credentials(config.tracking.resolved_uri)[0].rstrip("/")
    return f"{ui}/#/models/{model.name}/versions/{model.version} ({CARD_MARKDOWN} of run {model.run_id})"


def read_card(config: PipelineConfig, version: str | None) -> str:
    """The card of `version` (default @champion, else @challenger) as its last gate wrote it."""
    from pipelines.registry import CHALLENGER, CHAMPION, connect, resolve, resolve_alias_if_set

    client = connect(config)
    model = resolve(client, config.model_name, version=version) if version else (
        resolve_alias_if_set(client, config.model_name, CHAMPION)
        or resolve(client, config.model_name, alias=CHALLENGER))
    text = gated_card(model)
    if text is None:
        raise CardError(f"v{model.version} has no model card: it has not been gated since cards were added; "
                        "run `make validate`")
    return text


def gated_card(model: ResolvedVersion) -> str | None:
    """The card the version's last gate wrote into its run, None when no gate has written one."""
    from mlflow import artifacts as mlflow_artifacts
    from mlflow.exceptions import MlflowException

    try:
        return mlflow_artifacts.load_text(f"runs:/{model.run_id}/{CARD_MARKDOWN}")
    except MlflowException:
        return None


LATER_FACTS = "## Later facts"


def append_fact(client: MlflowClient, model: ResolvedVersion, fact: str) -> None:
    """Add one line under the card's "Later facts" (a release, a rollback, a retirement): artifact and description."""
    found = gated_card(model) or f"# Model card: {model.name} v{model.version}\n"  # never gated: the fact starts one
    line = f"- {datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')}: {fact}\n"
    card = found.rstrip("\n") + ("\n" if LATER_FACTS in found else f"\n\n{LATER_FACTS}\n") + line
    client.log_text(model.run_id, card, CARD_MARKDOWN)
    client.log_text(model.run_id, card_html(card, f"{model.name} v{model.version}"), CARD_HTML)
    current = client.get_model_version(model.name, model.version).description or found  # the line is added below
    described = current.rstrip("\n") + ("\n" if LATER_FACTS in current else f"\n\n{LATER_FACTS}\n") + line
    if len(described) > MAX_DESCRIPTION_CHARS:  # the line matters more than the card's tail
        described = described[:MAX_DESCRIPTION_CHARS - len(line) - 10] + "\n...\n" + line
    client.update_model_version(model.name, model.version, description=described)


def note_fact(client: MlflowClient, model: ResolvedVersion, fact: str) -> None:
    """`append_fact` for a step whose outcome stands without it (a release): a card that cannot be written (MLflow
    refusing, or gone since the release's last record) is said, not raised."""
    try:
        append_fact(client, model, fact)
    except Exception as exc:  # noqa: BLE001  whatever failed, the release's outcome and its message come first
        print(f"note: the model card of v{model.version} was not updated: {str(exc).splitlines()[0][:200]}",
              file=sys.stderr)
