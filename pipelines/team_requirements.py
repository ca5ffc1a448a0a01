"""A team's own third-party packages: `model.requirements` in its config, pinned (`catboost==1.2.8`).

The template's environment (uv.lock) and serving runtime image (services/serving/requirements.in) stay the
template's. A team whose estimator or feature code imports another package lists it, pinned, in its config:
training and the bento build refuse to start without it installed here (`check_installed`, naming the
package and how to install it, not an ImportError at serving time); the bento lists it with the model's
packages and in `team-requirements.txt`, which the release image installs on top of the runtime
(services/serving/release.Dockerfile). The parsing and version comparison are the release check's own
(services/serving/requirements_check.py), so a pin passes here exactly when it passes there.
"""

from __future__ import annotations

import re

from services.serving.requirements_check import installed_version, parse, satisfies

KEY = "model.requirements"


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def pinned(requirements: list[str]) -> list[str]:
    """The requirements, each `name==version` (extras allowed) and each package once; ValueError naming one."""
    seen: dict[str, str] = {}
    for requirement in requirements:
        parsed = parse(requirement)
        if parsed is None or parsed[1] is None:
            raise ValueError(f"'{requirement}' is not a pinned requirement name==version (catboost==1.2.8): "
                             "the release image installs exactly that version")
        name = canonical(parsed[0])
        if name in seen:
            raise ValueError(f"'{requirement}' and '{seen[name]}' name one package")
        seen[name] = requirement
    return [requirement.strip() for requirement in requirements]


def requirement_names(requirements: list[str]) -> set[str]:
    """The canonical package names the requirements pin."""
    return {canonical(parsed[0]) for requirement in requirements if (parsed := parse(requirement))}


def check_installed(requirements: list[str], whose: str = KEY) -> None:
    """Refuse a requirement this environment lacks or has at another version: `ConfigError` naming it."""
    from pipelines.config import ConfigError

    for requirement in requirements:
        name, wanted = parse(requirement) or (requirement, None)
        installed = installed_version(name)
        if not satisfies(installed, wanted):
            have = f" (it has {name}=={installed})" if installed else ""
            raise ConfigError(f"{whose}: {requirement} is not installed in this environment{have}; "
                              f"install it: uv pip install '{requirement}'")
