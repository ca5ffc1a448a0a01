"""The drift alert: one JSON POST to a webhook when a drift episode opens a retrain request.

Two shapes (`AlertSettings.kind`): `slack` — a Slack-compatible `text` plus the fields (any JSON webhook
reads them); `github` — GitHub's `repository_dispatch` body (`event_type` + `client_payload`), sent with
a token, so .github/workflows/retrain.yml starts. The job sends at most one alert per drift episode: only
when it opened a retrain request (the cooldown in retrain.py decides that).

The URL and the token are secrets (read from files, see settings.py): no log line, error or repr holds
them. Delivery retries with backoff on timeouts, connection errors, 429 and 5xx, and gives up after
`attempts`; an alert that could not be delivered is logged and recorded, never fatal to the run.
Standard library only: urllib puts neither the URL nor the token in its logs or error messages.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from services.contract import DRIFT_ALERT_KINDS
from services.monitoring.observability import log_event

AlertKind = Literal["slack", "github"]
ALERT_KINDS: tuple[AlertKind, ...] = DRIFT_ALERT_KINDS
DISPATCH_EVENT = "drift-detected"  # the repository_dispatch type retrain.yml listens for
RETRY_STATUSES = {408, 425, 429}  # and every 5xx


@dataclass(frozen=True)
class AlertSettings:
    url: str
    kind: AlertKind = "slack"
    token: str | None = None
    timeout_s: float = 10.0
    attempts: int = 4
    backoff_s: float = 1.0  # before the 2nd attempt; doubles each time

    def __repr__(self) -> str:  # the URL and the token are secrets
        return (f"AlertSettings(kind={self.kind!r}, timeout_s={self.timeout_s}, attempts={self.attempts}, "
                f"backoff_s={self.backoff_s}, url=***, token={'***' if self.token else None})")

    def problems(self) -> list[str]:
        """What is wrong with these settings, each said without the URL or the token."""
        found = []
        parts = urllib.parse.urlsplit(self.url.strip())
        if parts.scheme not in ("http", "https") or not parts.hostname or any(c.isspace() for c in self.url.strip()):
            found.append("the alert webhook URL must be one http(s)://host/... URL (the value is a secret, not shown)")
        if self.kind not in ALERT_KINDS:
            found.append(f"the alert kind must be one of {', '.join(ALERT_KINDS)} (got {self.kind!r})")
        if self.kind == "github" and not self.token:
            found.append("the github alert (repository_dispatch) needs a token with the repository's contents:write")
        if self.kind == "github" and not parts.path.rstrip("/").endswith("/dispatches"):
            found.append("the github alert URL must be https://api.github.com/repos/<owner>/<repo>/dispatches")
        if self.timeout_s <= 0 or self.attempts < 1 or self.backoff_s < 0:
            found.append("the alert needs timeout > 0, attempts >= 1 and backoff >= 0")
        return found


class AlertConfigError(ValueError):
    """The alert settings are wrong; the message names the setting, never the secret."""


def load_alert(
    url_file: Path, *, kind: str = "slack", token_file: Path | None = None, timeout_s: float = 10.0, attempts: int = 4
) -> AlertSettings:
    """The alert settings, with the URL (and token) read from their files; `AlertConfigError` naming what is wrong."""
    settings = AlertSettings(url=_secret(url_file, "webhook URL"), kind=kind,  # type: ignore[arg-type]
                             token=_secret(token_file, "token") if token_file else None,
                             timeout_s=timeout_s, attempts=attempts)
    if problems := settings.problems():
        raise AlertConfigError("; ".join(problems))
    return settings


def _secret(path: Path, what: str) -> str:
    try:
        value = path.expanduser().read_text().strip()
    except OSError as exc:
        raise AlertConfigError(f"the alert {what} file {path} cannot be read: {exc.strerror or exc}") from None
    if not value or "\n" in value:
        raise AlertConfigError(f"the alert {what} file {path} must hold one non-empty line")
    return value


@dataclass(frozen=True)
class DriftAlert:
    """What the alert says: the verdict, the model version, the drifted columns and the report link."""

    verdict: str
    model_name: str
    model_version: str
    drifted_columns: list[str]
    report_url: str | None
    summary: str

    @property
    def text(self) -> str:
        columns = ", ".join(self.drifted_columns) or "none named"
        link = f" Report: {self.report_url}" if self.report_url else ""
        return (f"{self.verdict}: {self.model_name} v{self.model_version}, drifted columns: {columns}. "
                f"A retrain was requested.{link}")

    def fields(self) -> dict[str, Any]:
        return {"verdict": self.verdict, "model_name": self.model_name, "model_version": self.model_version,
                "drifted_columns": self.drifted_columns, "report_url": self.report_url, "summary": self.summary}


@dataclass(frozen=True)
class Delivery:
    delivered: bool
    attempts: int
    outcome: str  # e.g. "200", "gave up after 4 attempts: 500", "refused: 404"


def body(settings: AlertSettings, alert: DriftAlert) -> dict[str, Any]:
    if settings.kind == "github":
        return {"event_type": DISPATCH_EVENT, "client_payload": {"text": alert.text, **alert.fields()}}
    return {"text": alert.text, **alert.fields()}


def headers(settings: AlertSettings) -> dict[str, str]:
    sent = {"Content-Type": "application/json", "User-Agent": "mlops-platform-monitoring"}
    if settings.kind == "github":
        sent |= {"Accept": "application/vnd.github+json", "X-GitHub-Api-Version": "2022-11-28"}
    if settings.token:
        sent["Authorization"] = f"Bearer {settings.token}"
    return sent


def send_alert(
    settings: AlertSettings, alert: DriftAlert, *, sleep: Callable[[float], None] = time.sleep
) -> Delivery:
    """POST the alert, retrying what may pass on a later try; never raises for a failed delivery."""
    data = json.dumps(body(settings, alert)).encode()
    outcome = ""
    for attempt in range(1, settings.attempts + 1):
        if attempt > 1:
            sleep(settings.backoff_s * 2 ** (attempt - 2))
        status, outcome = _post(settings, data)
        if status is not None and 200 <= status < 300:
            return _logged(Delivery(True, attempt, str(status)), alert)
        if status is not None and status not in RETRY_STATUSES and status < 500:
            return _logged(Delivery(False, attempt, f"refused: {outcome}"), alert)
    return _logged(Delivery(False, settings.attempts, f"gave up after {settings.attempts} attempts: {outcome}"), alert)


def _post(settings: AlertSettings, data: bytes) -> tuple[int | None, str]:
    """(HTTP status or None, a short description that holds neither the URL nor the token)."""
    request = urllib.request.Request(settings.url, data=data, headers=headers(settings), method="POST")
    try:
        with urllib.request.urlopen(request, timeout=settings.timeout_s) as response:  # noqa: S310 - http(s) only
            return response.status, str(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code, str(exc.code)
    except TimeoutError:
        return None, f"no answer within {settings.timeout_s:g} s"
    except urllib.error.URLError as exc:
        reason = exc.reason
        if isinstance(reason, TimeoutError):
            return None, f"no answer within {settings.timeout_s:g} s"
        return None, f"cannot connect ({type(reason).__name__}: {getattr(reason, 'strerror', None) or 'failed'})"
    except OSError as exc:
        return None, f"cannot connect ({type(exc).__name__})"


def _logged(delivery: Delivery, alert: DriftAlert) -> Delivery:
    log_event("monitoring.alert", level=20 if delivery.delivered else 30, delivered=delivery.delivered,
              attempts=delivery.attempts, outcome=delivery.outcome, model_name=alert.model_name,
              model_version=alert.model_version)
    return delivery
