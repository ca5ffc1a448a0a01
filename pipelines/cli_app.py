"""The `pipelines` CLI's app: how a command reports what went wrong, and the options commands share.

Exit codes: 0 done; 1 a gate, deploy, rollback or reproduction said no (nothing moved); 2 bad input
(config, data, arguments) or a platform part that is not there; 70 an unexpected error (a bug: the
traceback is printed). `monitor` exits with its verdict: 0 OK, 3 DRIFT, 4 NOT ENOUGH DATA.
"""

from __future__ import annotations

import functools
import os
import sys
import traceback
from collections.abc import Callable
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import click
import httpx
import typer

from pipelines.errors import CannotRun, Refused
from pipelines.steps import console
from services.audit_chain import AuditError

# Our own spinners and tables show progress and URLs; MLflow's download bars and "View run" lines
# would land inside them.
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
# MLflow's client, with these unset, asks the server's /server-info; one with artifacts in S3 says yes, and then
# every download (and uploads from 500 MB) goes to a presigned URL on the bucket's endpoint. Set to false, our
# clients keep to the proxied artifact API: no route to (or trust in) the bucket needed, as with a local folder.
for _direct in ("MLFLOW_ENABLE_PROXY_MULTIPART_DOWNLOAD", "MLFLOW_ENABLE_PROXY_MULTIPART_UPLOAD"):
    os.environ.setdefault(_direct, "false")

UNEXPECTED_ERROR = 70  # EX_SOFTWARE in sysexits.h

app = typer.Typer(help="Release a scikit-learn model: data -> train -> validate -> bento -> deploy.",
                  no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)

ConfigOption = Annotated[
    Path | None, typer.Option("--config", "-c", help="pipeline config (default: pipelines/pipeline.yaml)")
]


class TargetKind(StrEnum):
    local = "local"
    stack = "stack"


StackOption = Annotated[str, typer.Option(help="Pulumi stack to release to (with --target stack)")]


def command(name: str, on: typer.Typer | None = None) -> Callable:
    """Register a command (on `app`, or a group of it) whose expected failures print one clear line."""

    def register(function: Callable) -> Callable:
        return (on or app).command(name)(reporting(function))

    return register


def reporting(function: Callable) -> Callable:
    """The function, with its expected failures printed as one clear line and an exit code, not a traceback."""

    @functools.wraps(function)
    def run(*args: Any, **kwargs: Any) -> Any:
        try:
            return function(*args, **kwargs)
        except (typer.Exit, typer.Abort, click.exceptions.Exit, click.ClickException):
            raise  # the command's own exit code, or a usage error click reports itself
        except Refused as exc:
            if str(exc):  # a gate says why in its own table before refusing
                console.print(f"[red]{exc.step} failed, nothing moved:[/red] {exc}")
            raise typer.Exit(1) from None
        except (CannotRun, AuditError) as exc:
            console.print(f"[red]error:[/red] {exc}")
            raise typer.Exit(2) from None
        except (ConnectionError, OSError, httpx.HTTPError) as exc:
            console.print(f"[red]error:[/red] {exc} (is the platform up? `make platform`)")
            raise typer.Exit(2) from None
        except Exception as exc:
            mlflow_errors = sys.modules.get("mlflow.exceptions")  # loaded if MLflow ran at all
            if mlflow_errors and isinstance(exc, mlflow_errors.MlflowException):
                console.print(f"[red]MLflow error:[/red] {exc.message.splitlines()[0]}")
                raise typer.Exit(2) from None
            # A bug, not a verdict: never exit 1, which scripts read as "a gate or deploy said no".
            traceback.print_exc()
            console.print(f"[red]unexpected error[/red] ({type(exc).__name__}); the traceback is above")
            raise typer.Exit(UNEXPECTED_ERROR) from None

    return run
