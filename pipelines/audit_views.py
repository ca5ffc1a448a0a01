"""The audit timeline as a compliance reviewer reads it: one Markdown table row per record."""

from __future__ import annotations

from collections.abc import Mapping

from services.audit_chain import MODEL_FIELD, PREVIOUS_FIELD, SEQUENCE_FIELD
from services.audit_store import ACTION_FIELD, OUTCOME_FIELD, VERSION_FIELD

_COLUMNS = (SEQUENCE_FIELD, "when", ACTION_FIELD, VERSION_FIELD, OUTCOME_FIELD, "who")
_NOT_DETAILS = {*_COLUMNS, MODEL_FIELD, PREVIOUS_FIELD}


def timeline_markdown(model: str, version: str | None, records: list[Mapping[str, str]]) -> str:
    title = f"# Audit trail: {model}" + (f" v{version}" if version else "")
    if not records:
        return f"{title}\n\nno records" + (f" for v{version}" if version else "")
    rows = [f"| {' | '.join(_cell(record.get(column, '')) for column in _COLUMNS)} | {_details(record)} |"
            for record in records]
    header = "| # | when | action | version | outcome | who | details |\n|---|---|---|---|---|---|---|"
    return "\n".join([title, "", header, *rows, "", f"{len(records)} record(s)"])


def _details(record: Mapping[str, str]) -> str:
    return _cell("; ".join(f"{key}={value}" for key, value in sorted(record.items())
                           if key not in _NOT_DETAILS and value))


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")
