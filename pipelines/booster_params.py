"""The parameters LightGBM and XGBoost take beyond their scikit-learn constructor, by each library's own list.

Both wrappers hand any keyword they do not name on to the booster, which warns at fit (LightGBM's "Unknown
parameter") or ignores it (XGBoost): `n_estimator: 50` would train with the default. `booster_params` says
what the library accepts, so `pipelines.estimators` refuses the rest before any data is read:

- LightGBM: every parameter and alias its native library lists (`LGBM_DumpParamAliases`, read through
  `lightgbm.basic._ConfigAliases`, the one Python door to it; lightgbm is pinned, and the unit tests read it).
- XGBoost has no such list; its booster reports its configuration, every parameter of the components it was
  configured with. So a booster is configured (not trained) on a one-cell matrix of zeros with the config's booster,
  tree_method, objective and booster keywords: what it lists is what XGBoost's own `validate_parameters` would
  accept (dart's `rate_drop` only with `booster: dart`, `huber_slope` only with the pseudo-Huber objective).
"""

from __future__ import annotations

import functools
import json
from typing import Any

# The XGBoost settings that decide which components, and so which parameters, a booster has.
XGBOOST_COMPONENTS = ("booster", "tree_method", "objective")


def booster_params(cls: type, params: dict[str, Any], path: str) -> set[str] | None:
    """What a LightGBM or XGBoost estimator takes beyond its constructor's names; None for any other class."""
    libraries = {base.__module__.partition(".")[0] for base in cls.__mro__}
    if "lightgbm" in libraries:
        return set(lightgbm_params())
    if "xgboost" in libraries:
        return xgboost_params(cls, params, path)
    return None


@functools.cache
def lightgbm_params() -> frozenset[str]:
    from lightgbm.basic import _ConfigAliases

    return frozenset(name for names in _ConfigAliases._get_all_param_aliases().values() for name in names)


def xgboost_params(cls: type, params: dict[str, Any], path: str) -> set[str]:
    """The parameters of a booster configured as `params` configure it; `ConfigError` if XGBoost refuses them."""
    import numpy as np
    import xgboost

    from pipelines.config import ConfigError

    constructor = set(cls().get_params(deep=False))
    # The wrapper's own settings (its default objective) with the config's; the constructor's other values
    # (constraints naming features, say) mean nothing to a one-feature probe.
    chosen = {key: value for key, value in cls(**params).get_xgb_params().items()
              if (key in XGBOOST_COMPONENTS or key not in constructor) and isinstance(value, str | int | float)}
    if str(chosen.get("objective", "")).startswith("multi:"):
        chosen.setdefault("num_class", 2)  # the classifier sets it from the labels at fit
    try:
        with xgboost.config_context(verbosity=0):  # its own "not used" warning: the caller words the refusal
            # Held: configuring reads the cell's shape (one feature, one target); no row of the team's data.
            cell = xgboost.DMatrix(np.zeros((1, 1)), label=np.zeros(1))
            configuration = json.loads(xgboost.Booster(chosen, cache=[cell]).save_config())
    except xgboost.core.XGBoostError as exc:
        reason = next((line for line in str(exc).splitlines() if line.strip()), type(exc).__name__)
        raise ConfigError(f"model.params: {path} refuses {chosen}: {reason.strip()[:300]}") from None
    return _setting_names(configuration)


def _setting_names(configuration: dict[str, Any]) -> set[str]:
    """Every setting's name in XGBoost's nested configuration (sections hold settings or sections)."""
    names: set[str] = set()
    for key, value in configuration.items():
        if isinstance(value, dict):
            names |= _setting_names(value)
        else:
            names.add(key)
    return names
