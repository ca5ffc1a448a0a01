"""`pipelines` — the one CLI behind every Makefile target: the release commands here, the platform's
day-to-day commands (platform, status, traffic, demo, down, monitor, backup, restore) in
`pipelines.cli_operations`, exit codes and shared options in `pipelines.cli_app`.

Each command reads the config, calls the library, and prints a view (`pipelines.views`). Heavy libraries
(MLflow, BentoML, Evidently, scikit-learn) load inside the commands that use them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from pipelines import (
    cli_governance,  # noqa: F401 (importing it registers its commands on the one app)
    cli_operations,  # noqa: F401 (importing it registers its commands on the one app)
    steps,
    views,
)
from pipelines.cli_app import ConfigOption, StackOption, TargetKind, app, command
from pipelines.config import PipelineConfig, load_config
from pipelines.errors import Refused
from pipelines.steps import console
from services.contract import DEFAULT_NAME_PREFIX

if TYPE_CHECKING:
    from pipelines.deploy import ServingTarget
    from pipelines.stack import StackTarget

TargetOption = Annotated[
    TargetKind, typer.Option(help="local: bentoml serve on this machine; stack: a release image on the Pulumi stack")
]
AllowIncomparable = Annotated[bool, typer.Option(
    "--allow-incomparable",
    help="let the gate pass when the champion comparison cannot be made (recorded on the version and audited)")]
CanaryOption = Annotated[int | None, typer.Option(
    "--canary", min=1, max=50, metavar="PERCENT",
    help="stack only: serve the candidate to PERCENT of requests beside the champion first; promote it only if "
         "the canary analysis passes (pipeline config `canary`)")]


def _serving_target(config: PipelineConfig, kind: TargetKind, stack: str) -> ServingTarget:
    if kind is TargetKind.local:
        from pipelines.local import LocalTarget

        return LocalTarget(config)
    return _stack_target(config, stack)


def _stack_target(config: PipelineConfig, stack: str) -> StackTarget:
    from pipelines.pulumi_stack import PulumiStack
    from pipelines.stack import StackTarget

    return StackTarget(config, PulumiStack(stack), name=f"stack:{stack}")


@command("data")
def data_command(config_path: ConfigOption = None) -> None:
    """Load and check the configured dataset; print its version (digest of the full table)."""
    steps.check_data(load_config(config_path))


@command("train")
def train_command(config_path: ConfigOption = None) -> None:
    """Train, log to MLflow and register a new version aliased @challenger."""
    config = steps.connected_config(config_path)
    steps.train_model(config, steps.check_data(config))


@command("validate")
def validate_command(config_path: ConfigOption = None, allow_incomparable: AllowIncomparable = False) -> None:
    """Gate @challenger: thresholds, non-regression vs @champion, slices, behaviour. Exit 1 on failure."""
    from pipelines.registry import CHALLENGER

    config = steps.connected_config(config_path)
    steps.gate_candidate(config, steps.resolve_version(config, alias=CHALLENGER), allow_incomparable=allow_incomparable)


@command("card")
def card_command(
    version: Annotated[str | None, typer.Argument(help="model version (default: @champion, else @challenger)")] = None,
    config_path: ConfigOption = None,
) -> None:
    """Print a version's model card (written by its last gate)."""
    from pipelines.model_card import read_card

    config = steps.connected_config(config_path)
    console.print(read_card(config, version), markup=False, highlight=False)


@command("build")
def build_command(
    config_path: ConfigOption = None,
    version: Annotated[str | None, typer.Option(help="model version (default: @challenger)")] = None,
) -> None:
    """Build the bento for @challenger (or --version) from the MLflow registry."""
    from pipelines.registry import CHALLENGER

    config = steps.connected_config(config_path)
    steps.build_bento(config, steps.resolve_version(config, alias=None if version else CHALLENGER, version=version))


@command("deploy")
def deploy_command(
    config_path: ConfigOption = None, target: TargetOption = TargetKind.local, stack: StackOption = "dev",
    allow_incomparable: AllowIncomparable = False, canary: CanaryOption = None,
) -> None:
    """Gate, build and serve @challenger (health-gated); then promote it to @champion."""
    config = steps.connected_config(config_path)
    steps.release_candidate(config, _serving_target(config, target, stack), allow_incomparable=allow_incomparable,
                            canary_percent=canary)


@command("rollback")
def rollback_command(
    config_path: ConfigOption = None, target: TargetOption = TargetKind.local, stack: StackOption = "dev"
) -> None:
    """Serve @previous again and swap @champion and @previous back."""
    from pipelines.deploy import rollback

    config = steps.connected_config(config_path)
    where = _serving_target(config, target, stack)
    with console.status(f"Rolling back to @previous on {where.name} ..."):
        result = rollback(config, where)
    console.print(views.release(config, result, "Rolled back"))


@command("stack-up")
def stack_up_command(config_path: ConfigOption = None, stack: StackOption = "dev") -> None:
    """Apply the Pulumi stack serving what the registry says serves (@champion's release image on this
    stack), not what this checkout's stack file says: a fresh clone's file names no release."""
    config = steps.connected_config(config_path)
    target = _stack_target(config, stack)
    with console.status(f"Applying {target.name} with the registry's release pointer ..."):
        outputs = target.up()
    console.print(views.key_values(f"Stack {stack}", dict(outputs)))


@command("set-aliases")
def set_aliases_command(
    champion: Annotated[str, typer.Option(help="version that serves")],
    previous: Annotated[str | None, typer.Option(help="version that served before")] = None,
    serving_image: Annotated[str | None, typer.Option(
        help="stack releases: the image the champion serves as; recorded as its release pointer first")] = None,
    name_prefix: Annotated[str, typer.Option(
        help="with --serving-image: the stack's namePrefix")] = DEFAULT_NAME_PREFIX,
    config_path: ConfigOption = None,
) -> None:
    """Set @champion (and @previous) by hand: what a release prints when its alias move or its stack's release
    pointer did not finish."""
    from pipelines.audit import AuditTrail
    from pipelines.registry import RETIRED_TAG, AliasMove, connect, move_aliases, refuse_retired, require_version
    from pipelines.release_pointer import RegistryPointer

    config = steps.connected_config(config_path)
    client = connect(config)
    for version in filter(None, (champion, previous)):
        found = require_version(client, config.model_name, version)  # refuses a version that does not exist
        refuse_retired(config.model_name, version, found.tags.get(RETIRED_TAG, ""), "set aliases to")
    if serving_image:  # before the aliases move, as a release records it: @champion never lacks its image
        RegistryPointer(config).record({"namePrefix": name_prefix}, champion, serving_image)
    move_aliases(client, config.model_name, AliasMove(champion=champion, previous=previous))
    audit = AuditTrail.of(config, client)
    _, unrecorded = audit.write_or_say("set-aliases", champion, "aliases moved", previous=previous or "",
                                       serving_image=serving_image or "")
    console.print(f"@champion=v{champion}" + (f", @previous=v{previous}" if previous else "")
                  + (f", serving {serving_image} on stack {name_prefix}" if serving_image else "") + unrecorded)


@command("reproduce")
def reproduce_command(
    version: Annotated[str, typer.Argument(help="registered model version to retrain")],
    config_path: ConfigOption = None,
) -> None:
    """Retrain a version from its recorded snapshot and config; exit 1 unless the metrics are identical."""
    from pipelines.train import reproduce

    config = steps.connected_config(config_path)
    with console.status(f"Retraining v{version} from its recorded snapshot ..."):
        result = reproduce(config, version)
    console.print(views.reproduction(config, result))
    if result.recorded_git_sha != result.current_git_sha:
        console.print(f"note: trained at {result.recorded_git_sha}, code now at {result.current_git_sha}")
    if not result.identical:
        console.print("[red]metrics differ[/red]")
        raise Refused
    console.print("[green]identical metrics[/green]")


@command("promote")
def promote_command(
    version: Annotated[str, typer.Argument(help="model version in the source registry")],
    source: Annotated[str, typer.Option(
        "--from", envvar="PROMOTE_FROM_URI", show_envvar=True,
        help="tracking URI of the source registry; its login: PROMOTE_FROM_USERNAME / PROMOTE_FROM_PASSWORD "
             "(or _TOKEN), or user:password@ in the URI")],
    target: Annotated[str | None, typer.Option(
        "--to", envvar="PROMOTE_TO_URI", show_envvar=True,
        help="tracking URI of the target registry (default: the configured one, MLFLOW_TRACKING_URI); its login: "
             "PROMOTE_TO_USERNAME / PROMOTE_TO_PASSWORD (or _TOKEN), or user:password@ in the URI, else the "
             "MLFLOW_TRACKING_* login when it is the configured registry. Neither registry sees the other's.")] = None,
    config_path: ConfigOption = None,
) -> None:
    """Copy one exact model version into another registry with lineage, then gate it there; exit 1 if it fails."""
    from pipelines.promote import promote

    config = load_config(config_path)
    with console.status(f"Promoting v{version} ...") as status:
        result = promote(config, version, source_uri=source, target_uri=target or config.tracking.resolved_uri,
                         progress=lambda message: status.update(f"Promoting: {message} ..."))
    if result.report is not None:
        console.print(views.gate(result.report))
    if not result.passed:
        console.print("[red]gate failed in the target[/red]: the copy was deleted again; the target registry is "
                      "as it was")
        raise Refused
    console.print(views.key_values(f"Promoted {config.model_name} v{version}", {
        "into": f"{result.target_registry} as v{result.target_version} (@challenger)", **result.lineage,
        "next": "make deploy against the target (its release: gate again, build, roll out)"}))


if __name__ == "__main__":
    app()
