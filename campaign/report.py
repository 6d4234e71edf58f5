"""Views of a campaign: its rows as CSV or JSON, an HTML page, a list, its status.

The HTML page is for people reading the results the morning after: one self-contained
file (inline CSS, an inline SVG chart, nothing fetched) that can be mailed or archived.
"""

from __future__ import annotations

import csv
import html
import json
import math
import re
from collections import Counter
from collections.abc import Collection, Iterable, Iterator
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TextIO

from campaign import deliveries
from campaign.config import duration_text
from campaign.daytime import DaytimeWait, zones_of
from campaign.eligibility import parse_cap
from campaign.model import Problem, RowState
from campaign.store import AlreadySent, CampaignInfo, Store, StoredRow, SuppressedNumber

if TYPE_CHECKING:
    from campaign.loader import LoadResult

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
    "delivery_status",
    "delivery_updated_at",
    "delivery_error_code",
    "delivery_error_message",
    "resolved_by",
)

E164 = re.compile(r"\+\d{6,15}")
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def records(store: Store, campaign: CampaignInfo) -> Iterator[dict[str, Any]]:
    """Every row of the campaign as a report line, in spreadsheet order.

    Kept webhook events that now fit a row are applied first, at once (deliveries.catch_up).
    """
    deliveries.catch_up(store, campaign.id)
    return _lines(store, campaign)


def _lines(store: Store, campaign: CampaignInfo) -> Iterator[dict[str, Any]]:
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
            "delivery_status": r.delivery_status,
            "delivery_updated_at": _iso(r.delivery_updated_at),
            "delivery_error_code": r.delivery_error_code,
            "delivery_error_message": r.delivery_error_message,
            "resolved_by": r.resolved_by,
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
    campaign: CampaignInfo,
    counts: dict[str, int],
    lines: Iterator[dict[str, Any]],
    out: TextIO,
    delivery: dict[str, int] | None = None,
) -> int:
    """Write the report as one JSON object: the campaign, its counts (and delivery counts,
    see deliveries.delivery_counts) and its rows."""
    rows = list(lines)
    extra = {} if delivery is None else {"delivery": delivery}
    json.dump(
        {"campaign": campaign_summary(campaign), "counts": counts, **extra, "rows": rows},
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
        **send_window(campaign),
        "max_per_recipient": campaign.max_per_recipient,  # the frequency cap it keeps
    }


def send_window(campaign: CampaignInfo) -> dict[str, str | None]:
    """The campaign's send window (None: any hour), which its every run keeps."""
    return {"send_window": campaign.send_window, "default_timezone": campaign.default_timezone}


def send_window_text(window: str | None, zone: str | None) -> str | None:
    """send window 09:00-20:00 in each recipient's local time; None without one."""
    if window is None:
        return None
    more = f" ({zone} for numbers with no known zone)" if zone else ""
    return f"send window {window} in each recipient's local time{more}"


def frequency_cap_text(cap: str | None) -> str | None:
    """frequency cap 1/1d: at most 1 message per 1 day to one number; None without one."""
    if cap is None:
        return None
    kept = parse_cap(cap)
    messages = "1 message" if kept.messages == 1 else f"{kept.messages} messages"
    return (
        f"frequency cap {cap}: at most {messages} per {duration_text(kept.period)} to one "
        "number, in any campaign"
    )


def campaign_status(store: Store, campaign: CampaignInfo) -> dict[str, Any]:
    """What `campaign status` shows: counts, delivery counts, error codes, and a live run's
    rate and ETA."""
    deliveries.catch_up(store, campaign.id)
    counts = store.counts(campaign.id)
    active = store.lease_holder(campaign.id) is not None
    rate = store.recent_rate(campaign.id) if active else 0.0
    waiting = counts["pending"] + counts["sending"]
    return {
        **campaign_summary(campaign),
        "counts": counts,
        "delivery": deliveries.delivery_counts(store, campaign.id),
        "errors": [
            {"state": s, "error_code": c, "rows": n} for s, c, n in store.error_counts(campaign.id)
        ],
        "active": active,
        "rate": round(rate, 2),
        "eta_seconds": round(waiting / rate) if active and rate else None,
        "daytime": daytime_status(store, campaign),
    }


def daytime_status(store: Store, campaign: CampaignInfo) -> dict[str, Any]:
    """The rows that wait for their recipients' daytime, and when the first may go."""
    waits = store.daytime_waits(campaign.id)
    if not waits.rows or waits.next_at is None or waits.next_phone is None:
        return {"rows": 0, "next_at": None, "text": None}
    wait = DaytimeWait(waits.rows, waits.next_at, zones_of(waits.next_phone))
    return {
        "rows": wait.rows,
        "next_at": datetime.fromtimestamp(wait.at, UTC).isoformat(),
        "text": str(wait),
    }


def delivery_text(delivery: dict[str, int]) -> str:
    """One line on what the webhook said of the sent rows (deliveries.delivery_counts)."""
    sent = sum(delivery[k] for k in ("delivered", "read", "failed", "no_news"))
    text = (
        f"delivery of {sent} sent rows: {delivery['read']} read, {delivery['delivered']} "
        f"delivered, {delivery['failed']} failed after sending, {delivery['no_news']} no news yet"
    )
    if delivery["resolved"]:
        text += f" ({delivery['resolved']} unknown resolved by the webhook)"
    return text


INPUT_PROBLEM_COLUMNS = ("row", "column", "value", "code", "message")


def write_problems_csv(problems: list[Problem], out: TextIO) -> None:
    """Every problem of a recipients file as `row,column,value,code,message`."""
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(INPUT_PROBLEM_COLUMNS)
    for p in problems:
        writer.writerow(neutralise(v) for v in (p.row, p.column, p.value, p.code, p.message))


def validation_summary(load: LoadResult, already_sent: AlreadySent | None = None) -> dict:
    """The JSON object of `campaign validate --json`; already_sent_rows is null unless the
    account was asked (a key, --sender-id and --template-id)."""
    return {
        "valid_rows": load.valid_rows,
        "invalid_rows": load.invalid_rows,
        "skipped_rows": load.skipped_rows,
        "already_sent_rows": already_sent.rows if already_sent else None,
        "problems": [
            {"row": p.row, "column": p.column, "code": p.code, "message": p.message}
            for p in load.problems
        ],
    }


def eligibility_summary(suppressed: int | None, capped: int | None) -> dict:
    """`validate --json`'s counts of rows a claim would skip SUPPRESSED or FREQUENCY_CAP;
    null unless the account was asked (and, for the cap, --max-per-recipient given)."""
    return {"suppressed_rows": suppressed, "frequency_capped_rows": capped}


def suppression_line(number: SuppressedNumber) -> dict[str, Any]:
    """One number of `campaign suppress list --json`."""
    added = number.added_at
    # SQLite gives naive datetimes (they are UTC); other databases may give aware ones.
    added = added.replace(tzinfo=UTC) if added.tzinfo is None else added.astimezone(UTC)
    return {"phone": number.phone, "reason": number.reason, "added_at": added.isoformat()}


def neutralise(value: Any) -> Any:
    """Defuse a cell a spreadsheet would run as a formula; an E.164 phone stays as it is."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS) and not E164.fullmatch(value):
        return "'" + value
    return value


def campaign_list(store: Store) -> list[dict[str, Any]]:
    """One entry per stored campaign, oldest first, for `campaign list` (a table or JSON)."""
    return [
        {
            "name": c.name,
            "status": c.status,
            "created_at": str(c.created_at),  # as campaign_summary, so both JSONs agree
            "total_rows": c.total_rows,
            "counts": store.counts(c.id),
            "halt_reason": c.halt_reason,
            **send_window(c),
            "max_per_recipient": c.max_per_recipient,
        }
        for c in store.campaigns()
    ]


# --- the HTML page --------------------------------------------------------------------

UNKNOWN_NOTE = "may have been delivered: a person decides"
PROBLEM_COLUMNS = ("row", "phone", "name", "state", "error_code", "error_message", "attempts")

# The chart's bar widths in seconds, smallest first: it takes the first giving at most
# MAX_BARS bars, so a two-minute test run and a two-day campaign both stay readable.
MAX_BARS = 120
BUCKETS = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 21600, 43200, 86400)

# The page may not fetch or run anything, even if some value slipped past escaping.
CSP = "default-src 'none'; style-src 'unsafe-inline'"

STYLE = """
body { font: 15px/1.45 system-ui, sans-serif; color: #1d2433; margin: 2rem auto;
       max-width: 72rem; padding: 0 1rem; }
h1 { font-size: 1.6rem; margin-bottom: .2rem; }
h2 { font-size: 1.15rem; margin-top: 2rem; border-bottom: 1px solid #d7dce5; }
dl { display: grid; grid-template-columns: max-content auto; gap: .2rem 1rem; }
dt { color: #5b6475; } dd { margin: 0; }
table { border-collapse: collapse; margin: .5rem 0; }
th, td { text-align: left; padding: .25rem .7rem; border-bottom: 1px solid #e6e9ef;
         vertical-align: top; }
th { background: #f3f5f8; } td.num, th.num { text-align: right; }
tr.total td { font-weight: 600; border-top: 2px solid #c5ccd8; }
tr.unknown { background: #fff6dd; } .note { color: #8a5a00; font-weight: 600; }
.halt { color: #b42318; font-weight: 600; } .muted { color: #5b6475; }
svg text { font: 11px system-ui, sans-serif; fill: #5b6475; }
svg .bar { fill: #2f6fdb; } svg .axis { stroke: #8c95a6; } svg .grid { stroke: #eceff4; }
"""


def write_html(store: Store, campaign: CampaignInfo, out: TextIO) -> None:
    """Write one self-contained HTML page on the campaign; every stored value is escaped."""
    deliveries.catch_up(store, campaign.id)
    counts = store.counts(campaign.id)
    out.write(_page_start(campaign))
    out.write(_overview(campaign))
    out.write(_totals(counts))
    out.write(_deliveries(deliveries.delivery_counts(store, campaign.id)))
    out.write(_sends_chart(left_times(store, campaign)))
    out.write(_error_codes(store.error_counts(campaign.id)))
    # Streamed: a campaign that failed wholesale can have many thousands of these rows.
    _write_problem_rows(store.problem_rows(campaign.id), counts, out)
    _write_delivery_rows(store.report_rows(campaign.id), out)
    out.write("</body>\n</html>\n")


def esc(value: Any) -> str:
    """A value as HTML text: escaped, None shown as nothing."""
    return "" if value is None else html.escape(str(value))


def _page_start(campaign: CampaignInfo) -> str:
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>Campaign {esc(campaign.name)}</title>\n<style>{STYLE}</style>\n"
        f"</head>\n<body>\n<h1>Campaign {esc(campaign.name)}</h1>\n"
        f'<p class="muted">Report written {esc(_utc_text(datetime.now(UTC)))}</p>\n'
    )


def _overview(campaign: CampaignInfo) -> str:
    facts = [
        ("Status", esc(campaign.status)),
        ("Source file", esc(campaign.source)),
        ("Sender id", esc(campaign.sender_id)),
        ("Template id", esc(campaign.template_id)),
        ("Created", esc(_utc_text(campaign.created_at))),
        ("Send window", esc(_window_fact(campaign))),
        ("Frequency cap", esc(frequency_cap_text(campaign.max_per_recipient) or "none")),
    ]
    if campaign.halt_reason:
        facts.append(("Halted", f'<span class="halt">{esc(campaign.halt_reason)}</span>'))
    items = "".join(f"<dt>{label}</dt><dd>{value}</dd>\n" for label, value in facts)
    return f"<dl>\n{items}</dl>\n"


def _window_fact(campaign: CampaignInfo) -> str:
    window = send_window_text(campaign.send_window, campaign.default_timezone)
    return window or "none: sent at any hour"


def _totals(counts: dict[str, int]) -> str:
    total = sum(counts.values())
    numeric = {1, 2}
    body = "".join(
        _tr([state.value, counts[state], _share(counts[state], total)], numeric=numeric)
        for state in RowState
    )
    body += _tr(["total", total, _share(total, total)], numeric=numeric, css="total")
    return "<h2>Rows by state</h2>\n" + _table(["state", "rows", "share"], body, numeric)


def _share(n: int, total: int) -> str:
    return f"{100 * n / total:.1f} %" if total else "-"


DELIVERY_LABELS = (
    ("read", "read"),
    ("delivered", "delivered, not read yet"),
    ("failed", "failed after sending"),
    ("no_news", "no news yet"),
)
DELIVERY_COLUMNS = (
    "row",
    "phone",
    "name",
    "delivery_status",
    "delivery_updated_at",
    "delivery_error_code",
    "delivery_error_message",
)
RESOLVED_NOTE = "was unknown: resolved by the webhook"


def _deliveries(delivery: dict[str, int]) -> str:
    heading = "<h2>Delivery of the sent rows</h2>\n"
    sent = sum(delivery[key] for key, _ in DELIVERY_LABELS)
    if not sent:
        return heading + "<p>No sent rows yet.</p>\n"
    numeric = {1, 2}
    body = "".join(
        _tr([label, delivery[key], _share(delivery[key], sent)], numeric=numeric)
        for key, label in DELIVERY_LABELS
    )
    table = _table(["as the webhook reported", "rows", "share"], body, numeric)
    note = ""
    if delivery["resolved"]:
        resolved = delivery["resolved"]
        which = (
            "1 row whose outcome was unknown was"
            if resolved == 1
            else (f"{resolved} rows whose outcome was unknown were")
        )
        note = (
            f'<p class="note">{which} resolved by the webhook: the API reported '
            "the message, so it counts as sent.</p>\n"
        )
    return heading + table + note


def _write_delivery_rows(rows: Iterator[StoredRow], out: TextIO) -> None:
    """Rows whose delivery failed, and rows the webhook resolved: what a person checks."""
    numeric = {0}
    started = False
    for r in rows:
        failed = r.delivery_status in deliveries.FAILED
        if not (failed or r.resolved_by):
            continue
        if not started:
            out.write("<h2>Failed deliveries and resolved rows</h2>\n<table>\n<thead>")
            out.write(_tr([*DELIVERY_COLUMNS, "note"], "th", numeric) + "</thead>\n<tbody>\n")
            started = True
        cells = [getattr(r, column) for column in DELIVERY_COLUMNS]
        cells[4] = _utc_text(r.delivery_updated_at) if r.delivery_updated_at else None
        note = RESOLVED_NOTE if r.resolved_by else ""
        out.write(_tr([*cells, note], numeric=numeric, css="unknown" if failed else None))
    if started:
        out.write("</tbody>\n</table>\n")


def _error_codes(errors: list[tuple[str, str, int]]) -> str:
    heading = "<h2>Outcomes by error code</h2>\n"
    if not errors:
        return heading + "<p>No row failed, was skipped or is unknown.</p>\n"
    body = "".join(_tr([state, code, n], numeric={2}) for state, code, n in errors)
    return heading + _table(["state", "error code", "rows"], body, numeric={2})


def _write_problem_rows(rows: Iterator[StoredRow], counts: dict[str, int], out: TextIO) -> None:
    out.write("<h2>Failed and unknown rows</h2>\n")
    if not counts[RowState.FAILED] and not counts[RowState.UNKNOWN]:
        out.write("<p>No failed or unknown rows.</p>\n")
        return
    if counts[RowState.UNKNOWN]:
        out.write(
            f'<p class="note">{counts[RowState.UNKNOWN]} unknown rows {UNKNOWN_NOTE}. '
            "Their request may have reached WhatsApp: sending them again "
            "(campaign retry --unknown) may give those people a second message.</p>\n"
        )
    numeric = {0, 6}
    out.write("<table>\n<thead>" + _tr([*PROBLEM_COLUMNS, "note"], "th", numeric) + "</thead>\n")
    out.write("<tbody>\n")
    for r in rows:
        unknown = r.state == RowState.UNKNOWN
        cells = [getattr(r, column) for column in PROBLEM_COLUMNS]
        note = UNKNOWN_NOTE if unknown else ""
        out.write(_tr([*cells, note], numeric=numeric, css="unknown" if unknown else None))
    out.write("</tbody>\n</table>\n")


def _table(headers: list[str], body: str, numeric: Collection[int] = ()) -> str:
    head = _tr(headers, "th", numeric)
    return f"<table>\n<thead>{head}</thead>\n<tbody>\n{body}</tbody>\n</table>\n"


def _tr(
    cells: Iterable[Any], tag: str = "td", numeric: Collection[int] = (), css: str | None = None
) -> str:
    """One table row; every cell escaped, columns in `numeric` aligned right."""
    parts = [
        f'<{tag} class="num">{esc(v)}</{tag}>' if i in numeric else f"<{tag}>{esc(v)}</{tag}>"
        for i, v in enumerate(cells)
    ]
    row_class = f' class="{css}"' if css else ""
    return f"<tr{row_class}>{''.join(parts)}</tr>\n"


def _utc(moment: datetime) -> datetime:
    """An aware UTC datetime: SQLite hands back naive ones, which the store wrote in UTC."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _iso(moment: datetime | None) -> str | None:
    """ISO 8601 in UTC, to the second: what a spreadsheet or a program reads."""
    return None if moment is None else _utc(moment).isoformat(timespec="seconds")


def _utc_text(moment: datetime) -> str:
    return _utc(moment).strftime("%Y-%m-%d %H:%M:%S UTC")


# --- the chart of sends over time -----------------------------------------------------

WIDTH, HEIGHT = 960, 300
LEFT, RIGHT, TOP, BOTTOM = 56, 16, 16, 52  # room for the axis labels
X_LABELS = 6  # about this many time labels under the bars


def left_times(store: Store, campaign: CampaignInfo, since: datetime | None = None) -> list[float]:
    """When each send request of the campaign left (epoch seconds), earliest first; with
    `since`, only from that moment on.

    By when requests left, not when their answers came: answers bunch up (a slow one,
    then several at once), so counting them would show more per second than were sent.
    """
    return [_utc(t).timestamp() for t in store.left_times(campaign.id, since)]


def sends_per_second(
    store: Store, campaign: CampaignInfo, since: datetime | None = None
) -> list[tuple[int, int]]:
    """(epoch second, send requests that left in it), for each second in which any left,
    in order: the series the HTML chart and the console draw (`since`: its last minutes)."""
    return sorted(Counter(int(t) for t in left_times(store, campaign, since)).items())


def _sends_chart(epochs: list[float]) -> str:
    heading = "<h2>Send requests over time</h2>\n"
    if not epochs:
        return heading + "<p>No send request has left yet.</p>\n"
    bucket = bucket_seconds(epochs[0], epochs[-1])
    first_bar, counts = histogram(epochs, bucket)
    unit = _duration_text(bucket)
    first, last = (_utc_text(datetime.fromtimestamp(t, UTC)) for t in (epochs[0], epochs[-1]))
    summary = (
        f"{len(epochs)} send requests left from {first} to {last}; at most {max(counts)} "
        f"per {unit}, counted by the time each request left."
    )
    return heading + f"<p>{esc(summary)}</p>\n" + _bar_chart(first_bar, counts, bucket) + "\n"


def bucket_seconds(first: float, last: float) -> int:
    """The smallest bar width (seconds) that covers first..last in at most MAX_BARS bars."""
    for size in BUCKETS:
        if _bar_count(first, last, size) <= MAX_BARS:
            return size
    days = math.ceil((last - first) / 86400 / (MAX_BARS - 1))  # a very long campaign
    return days * 86400


def _bar_count(first: float, last: float, size: int) -> int:
    return int(last // size) - int(first // size) + 1


def histogram(epochs: list[float], size: int) -> tuple[float, list[int]]:
    """(start of the first bar, sends per bar) — empty bars kept, so pauses show as gaps."""
    first = int(epochs[0] // size)
    counts = [0] * _bar_count(epochs[0], epochs[-1], size)
    for t in epochs:
        counts[int(t // size) - first] += 1
    return first * size, counts


def _bar_chart(start: float, counts: list[int], bucket: int) -> str:
    """An SVG bar chart, sends per bucket; each bar's tooltip gives its time and count."""
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    step, top = _y_scale(max(counts))
    bar_w = plot_w / len(counts)
    gap = bar_w * 0.15 if bar_w > 3 else 0
    time_format = _time_format(start, start + bucket * len(counts), bucket)
    unit = _duration_text(bucket)

    parts = []
    for tick in range(0, top + 1, step):  # horizontal grid lines with their labels
        y = TOP + plot_h - plot_h * tick / top
        parts.append(
            f'<line class="grid" x1="{LEFT}" y1="{y:.1f}" x2="{LEFT + plot_w}" y2="{y:.1f}"/>'
            f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">{tick}</text>'
        )
    for i, n in enumerate(counts):
        label = _bar_time(start + i * bucket, time_format)
        h = plot_h * n / top
        x = LEFT + i * bar_w + gap / 2
        parts.append(
            f'<rect class="bar" x="{x:.1f}" y="{TOP + plot_h - h:.1f}" '
            f'width="{bar_w - gap:.1f}" height="{h:.1f}">'
            f"<title>{esc(label)}: {n} requests</title></rect>"
        )
    every = max(1, math.ceil(len(counts) / X_LABELS))
    for i in range(0, len(counts), every):  # time labels under some bars
        x = LEFT + i * bar_w + bar_w / 2
        label = _bar_time(start + i * bucket, time_format)
        parts.append(
            f'<text x="{x:.1f}" y="{TOP + plot_h + 16}" text-anchor="middle">{esc(label)}</text>'
        )
    parts.append(  # the axes and their titles
        f'<line class="axis" x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{TOP + plot_h}"/>'
        f'<line class="axis" x1="{LEFT}" y1="{TOP + plot_h}" x2="{LEFT + plot_w}" '
        f'y2="{TOP + plot_h}"/>'
        f'<text x="{LEFT + plot_w / 2}" y="{HEIGHT - 8}" text-anchor="middle">'
        f"time (UTC), one bar per {esc(unit)}</text>"
        f'<text transform="translate(14 {TOP + plot_h / 2}) rotate(-90)" '
        f'text-anchor="middle">requests per {esc(unit)}</text>'
    )
    return (
        f'<svg viewBox="0 0 {WIDTH} {HEIGHT}" width="100%" role="img" '
        f'aria-label="Send requests per {esc(unit)}, by when they left">'
        + "".join(parts)
        + "</svg>"
    )


def _y_scale(highest: int) -> tuple[int, int]:
    """(tick step, axis top): a 1-2-5 step giving at most four ticks above zero."""
    magnitude = 10 ** max(0, len(str(highest)) - 2)
    step = next(m * magnitude for m in (1, 2, 5, 10, 20, 50) if m * magnitude * 4 >= highest)
    return step, step * max(1, math.ceil(highest / step))


def _time_format(start: float, end: float, bucket: int) -> str:
    """Seconds only when bars are shorter than a minute; the date when the run spans days."""
    clock = "%H:%M:%S" if bucket < 60 else "%H:%M"
    if bucket >= 86400:
        return "%Y-%m-%d"
    same_day = datetime.fromtimestamp(start, UTC).date() == datetime.fromtimestamp(end, UTC).date()
    return clock if same_day else f"%d %b {clock}"


def _bar_time(epoch: float, time_format: str) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime(time_format)


def _duration_text(seconds: int) -> str:
    """'second', '5 seconds', 'minute', '2 hours'…: how long one bar is."""
    for size, name in ((86400, "day"), (3600, "hour"), (60, "minute"), (1, "second")):
        if seconds % size == 0:
            n = seconds // size
            return name if n == 1 else f"{n} {name}s"
    return f"{seconds} seconds"
