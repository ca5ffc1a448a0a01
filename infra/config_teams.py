"""Access per team: a `models` entry's `team`, and each named team's secrets, read once here.

A team owns the models whose entries name it. With `authEnabled: true` each team has an MLflow user (its name is
the team's) with MANAGE on its models' registered models and EDIT on their experiments
(services/tracking/service_users.py), and a serving token its models' containers admit; another team's token is
refused there with 403 (infra/serving.py).
Both are secrets, `teamPassword.<team>` and `teamServingToken.<team>`; a team named without them stops the program
naming the key. Without `authEnabled` a team would be a promise nothing keeps, so it is refused. A team's model's
pipeline config must set `tracking.experiment` to the model's name, the experiment its grants are on.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pulumi
from config_monitoring import PolicySource
from config_reader import ConfigReader

from services.contract import (
    MIN_PASSWORD_CHARS,
    MIN_TOKEN_CHARS,
    MODELS_KEY,
    MONITORING_USER,
    TEAM_PASSWORD_KEY,
    TEAM_SERVING_TOKEN_KEY,
    is_dns_label,
    model_key,
)


@dataclass(frozen=True)
class Team:
    """A team: its MLflow user's name (the team's) and password, its serving token, the models it owns."""

    name: str
    models: tuple[str, ...]
    password: pulumi.Output[str]
    serving_token: pulumi.Output[str]


def team_names(read: ConfigReader, entries: list[Mapping[str, Any]]) -> dict[str, str]:
    """Each model that names a team, with that team; a team that is not a DNS label stops here, naming the entry."""
    owners = {}
    for position, entry in enumerate(entries):
        if "team" not in entry:
            continue
        team = entry["team"]
        if not isinstance(team, str) or not is_dns_label(team):
            raise read.fail(MODELS_KEY, f"{MODELS_KEY}[{position}].team {team!r} is not a DNS label (lowercase "
                                        "letters, digits and '-', a letter or digit at each end, at most 63 "
                                        "characters): it is the team's MLflow user and part of its secrets' keys")
        owners[entry["name"]] = team
    return owners


def read_teams(read: ConfigReader, owners: Mapping[str, str], auth_enabled: bool,
               admin_username: str) -> tuple[Team, ...]:
    """Every team `owners` names, with its secrets; refused without auth, or under a name another user has."""
    teams = sorted(set(owners.values()))
    if teams and not auth_enabled:
        raise read.fail(MODELS_KEY, f"team(s) {', '.join(teams)} need authEnabled: true (a team's access is its "
                                    "credentials; without them every model answers anyone)")
    for team in teams:
        if team in (admin_username, MONITORING_USER):
            raise read.fail(MODELS_KEY, f"team {team!r} has the name of the platform's {team} user in MLflow; "
                                        "name the team otherwise")
    return tuple(Team(
        name=team,
        models=tuple(model for model, owner in owners.items() if owner == team),
        password=read.secret(model_key(TEAM_PASSWORD_KEY, team), f"for team {team!r} (its MLflow user)",
                             MIN_PASSWORD_CHARS),
        serving_token=read.secret(model_key(TEAM_SERVING_TOKEN_KEY, team), f"for team {team!r} (its models' "
                                  "serving token)", MIN_TOKEN_CHARS),
    ) for team in teams)


def check_team_experiments(read: ConfigReader, owners: Mapping[str, str], configs: Mapping[str, PolicySource]) -> None:
    """Each team's model runs in the experiment its team's grants are on (named as the model): another one would
    be refused at its first run, or be one every team reads and none owns."""
    for model, team in sorted(owners.items()):
        source = configs[model]
        if source.experiment != model:
            found = "is unset" if source.experiment is None else f"is {source.experiment!r}"
            raise read.fail(source.stack_key, f"{source.where}{source.file}: tracking.experiment {found}, but the "
                                              f"grants of team {team!r} are on experiment {model!r} (the model's "
                                              f"name): set tracking.experiment: {model}")
