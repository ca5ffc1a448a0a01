"""The model half of the pipeline config: the task, its data, the team's code and features, the model, the gates.

`pipelines/config.py` assembles these with the platform sections and is the one reader of the file; a fork
sets every value here in its model's `models/<name>/pipeline.yaml` and never edits this module.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from pipelines.estimators import BUILT_IN, is_import_path
from pipelines.task import SplitKind
from pipelines.team_requirements import pinned

REPO_ROOT = Path(__file__).resolve().parent.parent


class Section(BaseModel):
    # A typo in a key must fail loudly, not silently fall back to a default; and a default passes the same
    # validators as a written value (pydantic skips them on defaults unless told).
    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)


def from_repo_root(path: Path) -> Path:
    path = path.expanduser()
    return path if path.is_absolute() else REPO_ROOT / path


OBJECT_SCHEME = "s3://"
SnapshotPolicy = Literal["copy", "reference"]


class SqlConfig(Section):
    """A table from a SQL query; the database URL (with its password) never sits in the config."""

    url_env: str = Field(
        description="the environment variable holding the SQLAlchemy URL (postgresql+psycopg2://user:pw@host/db); "
                    "or <url_env>_FILE naming a file that holds it (a mounted secret)")
    query: str = Field(min_length=1, description="the SELECT whose rows are the table")


class DataConfig(Section):
    source: str = Field(
        "demo", description="'demo' for the built-in generated dataset, a path to a .csv / .parquet file, or an "
                            "object URL: s3://bucket/key.parquet, s3://bucket/key.csv, or s3://bucket/prefix/ "
                            "(its parquet parts); the endpoint and credentials come from AWS_* variables")
    sql: SqlConfig | None = Field(None, description="read the table from a SQL query instead of data.source")
    snapshot: SnapshotPolicy = Field(
        "copy", description="copy: store the table in MLflow with the run; reference: store where it came from, "
                            "what proves it unchanged (object version ids / ETags) and its digest, and re-read "
                            "it (refusing a changed source) whenever the snapshot is needed")
    target: str
    numeric_features: list[str] = []
    categorical_features: list[str] = []
    max_file_bytes: int = Field(
        2 * 1024**3, gt=0, description="a larger data file is refused before it is read (it loads whole into memory)"
    )
    split: SplitKind | None = Field(
        None, description="how the frozen holdout is drawn: stratified (classification's default), random "
                          "(regression's default) or time (the newest rows by data.time_column)")
    time_column: str | None = Field(
        None, description="the column a time split orders rows by (kept in the snapshot, not a feature)")
    sensitive_features: list[str] = Field(
        [], description="protected attributes the gate checks fairness across (pipelines/fairness.py): columns "
                        "of the table kept in the snapshot; features too only if also listed as features, and "
                        "never sent to serving otherwise")
    holdout_fraction: float = Field(0.25, gt=0.0, lt=1.0)
    seed: int = 42

    @property
    def features(self) -> list[str]:
        return [*self.numeric_features, *self.categorical_features]

    @property
    def columns(self) -> list[str]:
        """Every column a snapshot keeps: the features, the target, the time column of a time split and the
        sensitive columns."""
        kept = [*self.features, self.target]
        extra = [self.time_column] if self.time_column else []
        return kept + [column for column in dict.fromkeys([*extra, *self.sensitive_features]) if column not in kept]

    @model_validator(mode="after")
    def _columns_are_distinct(self) -> DataConfig:
        if not self.features:
            raise ValueError("list at least one feature in numeric_features or categorical_features")
        seen: set[str] = set()
        for name in [*self.features, self.target]:
            if name in seen:
                raise ValueError(f"column '{name}' is listed more than once (features and target are disjoint)")
            seen.add(name)
        if self.split == "time" and not self.time_column:
            raise ValueError("data.split: time needs data.time_column, the column to order rows by")
        if self.sql is not None and self.source != "demo":
            raise ValueError("give data.source or data.sql, not both")
        if self.time_column == self.target:
            raise ValueError(f"data.time_column '{self.time_column}' is the target")
        if self.target in self.sensitive_features:
            raise ValueError(f"data.sensitive_features: '{self.target}' is the target")
        if len(set(self.sensitive_features)) < len(self.sensitive_features):
            raise ValueError("data.sensitive_features lists a column more than once")
        return self

    @property
    def is_object(self) -> bool:
        return self.source.startswith(OBJECT_SCHEME)

    def source_path(self) -> Path | None:
        """The dataset file, resolved against the repo root; None for the demo data, an object or a query."""
        if self.source == "demo" or self.is_object or self.sql is not None:
            return None
        return from_repo_root(Path(self.source))


class FeaturesConfig(Section):
    """The preprocessing in front of the estimator: the template's default, a team's own, or both."""

    transformer: str | None = Field(
        None, description="import path of a callable returning a scikit-learn transformer "
                          "(myteam.features:build); it receives the configured feature columns as a DataFrame")
    then_default: bool = Field(
        False, description="run the team's transformer first and the default preprocessing after it (the "
                           "transformer then returns a DataFrame with the configured feature columns)")
    scale_numeric: bool | None = Field(
        None, description="standard-scale numeric features; default: only for linear models (trees ignore it)")

    @model_validator(mode="after")
    def _then_default_needs_a_transformer(self) -> FeaturesConfig:
        if self.then_default and not self.transformer:
            raise ValueError("features.then_default needs features.transformer")
        return self


class ModelConfig(Section):
    estimator: str | None = Field(
        None, description="a built-in short name (pipelines/estimators.py) or any import path of a scikit-learn-API "
                          "estimator class (lightgbm.LGBMClassifier, myteam.models:Forest); default: the task's "
                          "random forest")
    params: dict[str, Any] = {}
    trusted_types: list[str] = Field(
        [], description="skops types the fitted model needs beyond the template's pin "
                        "(services/serving/model_trust.py); reviewed like code, never read from an artifact")
    requirements: list[str] = Field(
        [], description="third-party packages the team's estimator or feature code needs beyond the template's, "
                        "pinned (catboost==1.2.8): checked installed where it trains, carried by the bento and "
                        "installed into the release image (pipelines/team_requirements.py)")

    @field_validator("requirements")
    @classmethod
    def _pinned_requirements(cls, value: list[str]) -> list[str]:
        return pinned(value)

    @field_validator("estimator")
    @classmethod
    def _built_in_or_import_path(cls, value: str | None) -> str | None:
        if value is None:
            return None
        value = value.strip()
        if value not in BUILT_IN and not is_import_path(value):
            raise ValueError(f"'{value}' is neither a built-in estimator ({', '.join(BUILT_IN)}) nor an import "
                             "path (package.module.Class or package.module:Class)")
        return value


class GatesConfig(Section):
    min_metrics: dict[str, float] | None = Field(
        None, description="absolute floor (ceiling, for a lower-is-better metric) of each metric; "
                          "default: accuracy >= 0.7 for classification, r2 >= 0 for regression")
    max_regression: dict[str, float] | None = Field(
        None, description="largest allowed loss vs the @champion on the same frozen eval set, in the metric's "
                          "own direction; default: accuracy 0.02 for classification, r2 0.02 for regression")
    min_slice_rows: int = Field(30, ge=1, description="slices smaller than this are reported, not gated")
    max_slice_drop: float = Field(
        0.15, ge=0.0, le=1.0, description="classification: largest gap between a slice's accuracy and the overall"
    )
    max_slice_error_ratio: float = Field(
        1.5, ge=1.0, description="regression: largest ratio of a slice's mean absolute error to the overall one"
    )
    onnx_max_probability_gap: float = Field(
        1e-4, gt=0.0, le=1.0,
        description="classification: largest gap between a class probability of the ONNX model and of the "
                    "scikit-learn model it was converted from, on any eval row (labels must be identical)",
    )
    onnx_max_absolute_gap: float = Field(
        1e-3, ge=0.0, description="regression: ONNX and scikit-learn predictions may differ by this ...")
    onnx_max_relative_gap: float = Field(
        1e-5, ge=0.0, description="... plus this share of the prediction's size, on every eval row")


class FairnessConfig(Section):
    """The gate's limits on group metrics across `data.sensitive_features` (pipelines/fairness.py)."""

    limits: dict[str, float] | None = Field(
        None, description="bound per fairness metric: a *_difference at most, a *_ratio at least; default: "
                          "demographic_parity_difference and equalized_odds_difference <= 0.2 for a binary "
                          "target, accuracy_difference <= 0.1 for more classes, error_ratio >= 0.8 for regression")
    min_group_rows: int = Field(30, ge=1, description="groups with fewer eval rows are shown, not judged")
    max_worsening: float = Field(
        0.05, ge=0, description="how much worse than @champion's each limited figure may be, on the same rows: a "
                                "*_difference larger, a *_ratio smaller by at most this")
    positive_label: bool | int | float | str | None = Field(
        None, description="the class a selection rate counts (binary targets); default: the larger label")
    waivers: dict[str, str] = Field(
        {}, description="check name -> why it may fail (e.g. 'demographic_parity_difference[region]'): a "
                        "reviewed config change, recorded on the version; there is no command-line waiver")


class CardConfig(Section):
    """What only the team can say about a model: the head of every version's model card (pipelines/model_card.py)."""

    owner: str = Field("", description="the team or person answerable for the model, and how to reach them")
    intended_use: str = Field("", description="what the model is for, and who uses its answers")
    limitations: list[str] = Field([], description="known limits: data it has not seen, uses it is not fit for")


class LifecycleConfig(Section):
    """How long versions stay (pipelines/lifecycle.py): `pipelines gc` retires what is outside both limits, and
    deletes monitoring output and inference logs past their own retention (pipelines/retention.py)."""

    keep_last: int | None = Field(None, ge=1, description="keep the newest N versions; unset: no count limit")
    keep_days: float | None = Field(None, gt=0, description="keep versions younger than D days; unset: no age limit")
    # What monitoring leaves behind (pipelines/retention.py); unset: kept for ever.
    keep_reports_days: float | None = Field(
        30, gt=0, description="delete monitoring report runs and their HTML files older than D days (never the "
                              "newest per model version, nor one holding an open retrain request)")
    keep_snapshots_days: float | None = Field(
        30, gt=0, description="delete Evidently UI snapshots (the monitoring workspace) older than D days")
    keep_inference_days: float | None = Field(
        30, gt=0, description="delete inference-log files of days older than D days, once monitoring judged "
                              "every record in them")


DEFAULT_ESTIMATORS = {"classification": "random_forest", "regression": "random_forest_regressor"}
DEFAULT_GATES: dict[str, tuple[dict[str, float], dict[str, float]]] = {
    # task -> (min_metrics, max_regression)
    "classification": ({"accuracy": 0.7}, {"accuracy": 0.02}),
    "regression": ({"r2": 0.0}, {"r2": 0.02}),
}
