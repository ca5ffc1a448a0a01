"""The front's routes by model: the map from a model's name to its backends and the backends of every model but
the stack's default, whose backends are haproxy.cfg's own. infra/front.py uploads both files into the front
container; haproxy.cfg routes `/models/<name>/<path>` through the map (tests/integration/test_front_haproxy.py).

The backends below are haproxy.cfg's `ready`, `canary` and `candidate`, resolving the model's own aliases
(services.contract.serving_alias), so a model's release containers serve its routes and no other's.
"""

from __future__ import annotations

from collections.abc import Sequence

from services.contract import front_users_backend, serving_alias

MAP_FILE = "/etc/haproxy/models.map"  # the image holds an empty one (haproxy.cfg reads it at start)
BACKENDS_FILE = "/etc/haproxy/models.cfg"  # loaded after haproxy.cfg (services/front/Dockerfile)
DEFAULT_MODEL_ROUTE = "default"  # the map's value for the default model: haproxy.cfg's own backends
_CHECKED = "    option httpchk GET /readyz\n    http-check expect status 200\n"
# As haproxy.cfg's `ready` backend: an answer 5xx takes a server out at once (its request is sent again).
_OBSERVED = "observe layer7 error-limit 1 on-error mark-down"


def models_map(default_model: str, other_models: Sequence[str]) -> str:
    """One line per model: its name and its backends' prefix (`default`: haproxy.cfg's own)."""
    lines = [f"{default_model} {DEFAULT_MODEL_ROUTE}"]
    lines += [f"{model} {front_users_backend(model).removesuffix('-ready')}" for model in other_models]
    return "\n".join(lines) + "\n"


def model_backends(other_models: Sequence[str]) -> str:
    """The users', canary and candidate backends of each model but the default, as haproxy.cfg's are."""
    return "".join(_backends_of(model) for model in other_models)


def _backends_of(model: str) -> str:
    users = front_users_backend(model)
    prefix = users.removesuffix("-ready")
    release, canary, candidate = (serving_alias(role, model) for role in ("release", "canary", "candidate"))
    return (
        f"\nbackend {users}\n    balance roundrobin\n{_CHECKED}"
        f"    server-template release 4 {release}:3000 weight 100 {_OBSERVED}\n"
        f"    server-template canary 2 {canary}:3000 weight 100 agent-check agent-port 3001 agent-inter 1s"
        f" slowstart 10s {_OBSERVED}\n"
        f"\nbackend {prefix}-canary\n{_CHECKED}    server-template canary 2 {canary}:3000\n"
        f"\nbackend {prefix}-candidate\n{_CHECKED}    server-template candidate 2 {candidate}:3000\n"
    )
