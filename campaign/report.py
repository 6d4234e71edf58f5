"""CSV and JSON views of a campaign: one line per input row, as the store has it."""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Iterator
from typing import Any, TextIO

from campaign.store import CampaignInfo, Store

COLUMNS = (
    "row",
    "phone",
    "name",
    "state",
    "status",
    "conversation_id",
    "message_id",
    "whatsapp_message_id",
    "message_sid",
    "error_code",
    "error_message",
    "attempts",
)

E164 = re.compile(r"\+\d{6,15}")
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def records(store: Store, campaign: CampaignInfo) -> Iterator[dict[str, Any]]:
    """Every row of the campaign as a report line, in spreadsheet order."""
    for r in store.report_rows(campaign.id):
        yield {
            "row": r.row,
            "phone": r.phone,
            "name": r.name,
            "state": r.state,
            "status": r.api_status,
            "conversation_id": r.conversation_id,
            "message_id": r.message_id,
            "whatsapp_message_id": r.whatsapp_message_id,
            "message_sid": r.message_sid,
            "error_code": r.error_code,
            "error_message": r.error_message,
            "attempts": r.attempts,
        }


def write_csv(lines: Iterator[dict[str, Any]], out: TextIO) -> int:
    """Write the report as CSV, safe to open in a spreadsheet; returns the line count."""
    writer = csv.DictWriter(out, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    n = 0
    for n, line in enumerate(lines, 1):  # noqa: B007 - n is the count afterwards
        writer.writerow({k: neutralise(v) for k, v in line.items()})
    return n


def write_json(
    campaign: CampaignInfo, counts: dict[str, int], lines: Iterator[dict[str, Any]], out: TextIO
) -> int:
    """Write the report as one JSON object: the campaign, its counts and its rows."""
    rows = list(lines)
    json.dump(
        {"campaign": campaign_summary(campaign), "counts": counts, "rows": rows},
        out,
        indent=2,
        default=str,
    )
    out.write("\n")
    return len(rows)


def campaign_summary(campaign: CampaignInfo) -> dict[str, Any]:
    return {
        "name": campaign.name,
        "source": campaign.source,
        "sender_id": campaign.sender_id,
        "template_id": campaign.template_id,
        "total_rows": campaign.total_rows,
        "status": campaign.status,
        "halt_reason": campaign.halt_reason,
        "created_at": str(campaign.created_at),
    }


def neutralise(value: Any) -> Any:
    """Defuse a cell a spreadsheet would run as a formula; an E.164 phone stays as it is."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS) and not E164.fullmatch(value):
        return "'" + value
    return value
