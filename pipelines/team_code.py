"""A team's own code: the package folders its config names (`code_paths`), importable and fingerprinted.

A team keeps its feature code and estimator classes in its own folder (the template never writes there) and
names them in the pipeline config: `code_paths: [teams/acme/acme_models]` (package directories, relative to
the repo root) and `model.estimator: acme_models.forest:QuantileForest`. The folders are put on `sys.path`
(their parents, so `import acme_models` works), logged with the model as MLflow `code_paths`, and
fingerprinted with one sha256 over every file's relative path and bytes: the digest is on the version's tags
and the bento's labels, and every loader checks the copy it imports against it.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

# The digest and the module reset are services/'s, so the serving side (standard library only) does the same.
from services.code_digest import code_sha256 as code_sha256
from services.code_digest import forget_modules as forget_modules


class TeamCodeError(ValueError):
    """A code path or import path in the config that does not resolve; the message names the key."""


def make_importable(folders: Iterable[Path]) -> None:
    """Put each package folder's parent first on `sys.path`, so `import <folder name>` finds this copy."""
    for folder in folders:
        parent = str(Path(folder).resolve().parent)
        if parent not in sys.path:
            sys.path.insert(0, parent)


def import_object(spec: str, key: str) -> Any:
    """The object an import path names: `package.module:attribute` or `package.module.Attribute`."""
    module_name, _, attribute = spec.partition(":") if ":" in spec else spec.rpartition(".")
    if not module_name or not attribute:
        raise TeamCodeError(f"{key}: '{spec}' is not an import path (package.module:Name or package.module.Name)")
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # a team's module may fail to import in any way: each is this config error
        raise TeamCodeError(f"{key}: cannot import module '{module_name}' ({exc}); is its folder in code_paths "
                            "or its package installed?") from None
    found: Any = module
    for part in attribute.split("."):
        if not hasattr(found, part):
            raise TeamCodeError(f"{key}: module '{module_name}' has no '{attribute}'")
        found = getattr(found, part)
    return found
