"""The preprocessing in front of the estimator: the template's default, the team's own, or the team's then the default.

`build_pipeline(config)` is the one place a model is assembled: `Pipeline([("preprocess", ...), ("estimator",
...)])` (ONNX export and the gate read those step names). The default imputes numerics (median) and scales them
only for linear models; categoricals are imputed as MISSING and one-hot encoded. `features.transformer` names a
callable (no arguments) returning a scikit-learn transformer, which replaces the default, or with
`features.then_default` runs before it and hands it a DataFrame with the configured feature columns.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from pipelines.estimators import build_estimator, import_named
from services.serving.onnx_model import MISSING_CATEGORY

if TYPE_CHECKING:
    from pipelines.config import DataConfig, PipelineConfig

# Scaling changes nothing a tree decides, and in ONNX it runs in float32, which would move values across split
# thresholds: by default only models of these modules get it.
SCALED_MODULES = ("sklearn.linear_model", "sklearn.svm")
TRANSFORMER_KEY = "features.transformer"


def scales(config: PipelineConfig, estimator: Any) -> bool:
    """Whether numerics are standard-scaled: `features.scale_numeric`, else only for linear models."""
    if config.features.scale_numeric is not None:
        return config.features.scale_numeric
    return type(estimator).__module__.startswith(SCALED_MODULES)


def default_preprocess(data: DataConfig, scale: bool) -> ColumnTransformer:
    numeric_steps: list[tuple[str, Any]] = [("impute", SimpleImputer(strategy="median"))]
    if scale:
        numeric_steps.append(("scale", StandardScaler()))
    return ColumnTransformer([
        ("numeric", Pipeline(numeric_steps), data.numeric_features),
        ("categorical", Pipeline([
            # pandas writes a missing category as NaN (CSV) or None (parquet, JSON null): both mean MISSING.
            ("impute_nan", SimpleImputer(strategy="constant", fill_value=MISSING_CATEGORY)),
            ("impute_none", SimpleImputer(missing_values=None, strategy="constant", fill_value=MISSING_CATEGORY)),
            ("encode", OneHotEncoder(handle_unknown="ignore")),
        ]), data.categorical_features),
    ])


def team_transformer(config: PipelineConfig) -> Any:
    """A fresh instance of the team's transformer; `ConfigError` naming `features.transformer` if it is not one."""
    from pipelines.config import ConfigError

    spec = config.features.transformer or ""
    factory = import_named(spec, TRANSFORMER_KEY, config.code_folders)
    if not callable(factory):
        raise ConfigError(f"{TRANSFORMER_KEY}: {spec} is not callable; name a function returning a transformer")
    try:
        made = factory()
    except Exception as exc:  # the team's factory may fail in any way: each is this config error
        raise ConfigError(f"{TRANSFORMER_KEY}: {spec}() failed: {exc}") from None
    if not all(callable(getattr(made, method, None)) for method in ("fit", "transform", "get_params")):
        raise ConfigError(f"{TRANSFORMER_KEY}: {spec}() returned {type(made).__name__}, not a scikit-learn "
                          "transformer (fit, transform, get_params)")
    return made


def preprocess(config: PipelineConfig, estimator: Any) -> Any:
    from pipelines.config import ConfigError

    default = default_preprocess(config.data, scales(config, estimator))
    if not config.features.transformer:
        return default
    team = team_transformer(config)
    if not config.features.then_default:
        return team
    # The default selects columns by name: the team's step must hand on a DataFrame, not an array.
    if not hasattr(team, "set_output"):
        raise ConfigError(f"features.then_default: {config.features.transformer}() gives no pandas output "
                          "(set_output); give it get_feature_names_out, or drop then_default")
    return Pipeline([("team", team.set_output(transform="pandas")), ("default", default)])


def build_pipeline(config: PipelineConfig) -> Pipeline:
    """The unfitted model of the config: its preprocessing, then its estimator (checked before it is built)."""
    estimator = build_estimator(config)
    return Pipeline([("preprocess", preprocess(config, estimator)), ("estimator", estimator)])
