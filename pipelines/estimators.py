"""Estimators by name: the built-in short names, and how any import path is resolved and checked.

`model.estimator` is a short name of `BUILT_IN` or an import path (`lightgbm.LGBMClassifier`,
`acme_models.forest:QuantileForest`, importable from the team's `code_paths`). `resolve_estimator` checks the
class against the config before any data is read: the team's `model.requirements` are installed, it imports,
follows the scikit-learn estimator API, is of the task's kind, and takes every `model.params` key (LightGBM's
and XGBoost's booster keywords by the library's own list, pipelines/booster_params.py); each failure is a
`ConfigError` naming the key, a misspelt parameter with the closest name.

Light at import (the config validates names against `BUILT_IN`); the class is imported when resolved.
"""

from __future__ import annotations

import difflib
import inspect
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipelines.booster_params import booster_params
from pipelines.team_requirements import check_installed
from services.contract import CLASSIFICATION, REGRESSION

if TYPE_CHECKING:
    from pipelines.config import PipelineConfig

# short name -> (import path, the task it serves)
BUILT_IN: dict[str, tuple[str, str]] = {
    "random_forest": ("sklearn.ensemble.RandomForestClassifier", CLASSIFICATION),
    "gradient_boosting": ("sklearn.ensemble.GradientBoostingClassifier", CLASSIFICATION),
    "hist_gradient_boosting": ("sklearn.ensemble.HistGradientBoostingClassifier", CLASSIFICATION),
    "logistic_regression": ("sklearn.linear_model.LogisticRegression", CLASSIFICATION),
    "ridge": ("sklearn.linear_model.Ridge", REGRESSION),
    "random_forest_regressor": ("sklearn.ensemble.RandomForestRegressor", REGRESSION),
    "gradient_boosting_regressor": ("sklearn.ensemble.GradientBoostingRegressor", REGRESSION),
    "hist_gradient_boosting_regressor": ("sklearn.ensemble.HistGradientBoostingRegressor", REGRESSION),
}
SEED_PARAM = "random_state"  # where the config's data.seed goes, when the estimator has it
KEY = "model.estimator"


def is_import_path(name: str) -> bool:
    return "." in name or ":" in name


def import_path(name: str) -> str:
    """The import path an estimator name stands for (a short name's class, or the path itself)."""
    return BUILT_IN[name][0] if name in BUILT_IN else name


def check_code_folders(folders: list[Path]) -> None:
    """Each `code_paths` entry a package folder of its own name; `ConfigError` naming the entry."""
    from pipelines.config import ConfigError

    names: dict[str, Path] = {}
    for folder in folders:
        if not (folder / "__init__.py").is_file():
            raise ConfigError(f"code_paths: {folder} is not a package folder (a directory with __init__.py)")
        if folder.name in names:
            raise ConfigError(f"code_paths: {folder} and {names[folder.name]} are both package '{folder.name}'")
        if folder.name in {"pipelines", "services", "infra", "tests"}:
            raise ConfigError(f"code_paths: {folder}: '{folder.name}' is a template package; name yours otherwise")
        names[folder.name] = folder


def import_named(spec: str, key: str, code_folders: list[Path]) -> Any:
    """What an import path names, with the team's code folders importable first; `ConfigError` naming `key`."""
    from pipelines.config import ConfigError
    from pipelines.team_code import TeamCodeError, import_object, make_importable

    check_code_folders(code_folders)
    make_importable(code_folders)
    try:
        return import_object(spec, key)
    except TeamCodeError as exc:
        raise ConfigError(str(exc)) from None


def _default_instance(cls: Any, name: str) -> Any:
    from pipelines.config import ConfigError

    if not isinstance(cls, type) or not all(callable(getattr(cls, m, None)) for m in ("fit", "get_params")):
        raise ConfigError(f"{KEY}: {name} is not a scikit-learn estimator class (a class with fit and get_params)")
    try:
        return cls()
    except Exception as exc:  # a team's constructor may fail in any way; the estimator API wants defaults
        raise ConfigError(f"{KEY}: {name} cannot be made with its default parameters ({exc}); a scikit-learn "
                          "estimator takes every parameter as an optional keyword") from None


def _takes_any_keyword(cls: type) -> bool:
    return any(p.kind is p.VAR_KEYWORD for p in inspect.signature(cls.__init__).parameters.values())


def _check_params(cls: type, default: Any, params: dict[str, Any], path: str) -> None:
    """Each `model.params` key one the estimator takes: a constructor parameter or, for LightGBM and XGBoost
    (which pass any keyword on to their booster), one of the booster's. Another estimator that takes any
    keyword has no list to check against: its constructor or fit judges."""
    from pipelines.config import ConfigError

    known = set(default.get_params(deep=False))
    booster = booster_params(cls, params, path) if _takes_any_keyword(cls) else set()
    if booster is None:
        return
    for key in params:
        if key not in known | booster:
            close = difflib.get_close_matches(key, known | booster, n=1)
            raise ConfigError(f"model.params.{key}: {path} takes no parameter '{key}'"
                              + (f"; did you mean '{close[0]}'? It" if close else "; it")
                              + f" takes {', '.join(sorted(known)) or 'none'}"
                              + (" or a booster parameter its library lists for these settings" if booster else ""))


def resolve_estimator(config: PipelineConfig) -> type:
    """The configured estimator class, checked against the task and `model.params`."""
    from pipelines.config import ConfigError
    from pipelines.task import task_for

    name = config.model.estimator
    path = import_path(name)
    check_installed(config.model.requirements)  # what the team's code imports, before it is imported
    cls = import_named(path, KEY, config.code_folders)
    default = _default_instance(cls, path)
    task = task_for(config.task)
    if not task.agrees_with(default):
        raise ConfigError(f"{KEY}: {path} is {_kind(default)}; task is {task.name}")
    _check_params(cls, default, config.model.params, path)
    return cls


def _kind(estimator: Any) -> str:
    from sklearn.base import is_classifier, is_regressor

    if is_classifier(estimator):
        return "a classifier"
    return "a regressor" if is_regressor(estimator) else "neither a classifier nor a regressor"


def estimator_params(config: PipelineConfig, cls: type) -> dict[str, Any]:
    """`model.params`, with the seed as `random_state` where the estimator has one (a written one wins)."""
    seeded = SEED_PARAM in cls().get_params(deep=False)
    return {**({SEED_PARAM: config.data.seed} if seeded else {}), **config.model.params}


def build_estimator(config: PipelineConfig) -> Any:
    """An unfitted instance of the configured estimator; a value its constructor refuses names its key."""
    from pipelines.config import ConfigError

    cls = resolve_estimator(config)
    params = estimator_params(config, cls)
    try:
        return cls(**params)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"model.params: {import_path(config.model.estimator)}({params}) is refused: {exc}") from None
