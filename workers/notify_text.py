"""The words of a notification: one alert state change as an e-mail and as a webhook body, in
Vietnamese or English. Pure: the event, the alert as it was (notification_events.alert) and the
link go in, bounded text comes out."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

SUBJECT_CHARS = 200
TEXT_CHARS = 2000  # of a message's plain text
SMS_CHARS = 320  # of the webhook's short text (two SMS segments of GSM-7, fewer of Unicode)
_NOTE_CHARS = 300

_EVENTS = {
    "en": {
        "opened": "opened",
        "escalated": "escalated to {severity}",
        "cleared": "condition cleared (still to be reviewed)",
        "acknowledged": "acknowledged by {by}",
        "resolved": "resolved by {by}",
        "overdue": "NOT ACKNOWLEDGED for {age}",
    },
    "vi": {
        "opened": "mới phát sinh",
        "escalated": "tăng mức lên {severity}",
        "cleared": "điều kiện đã hết (vẫn cần xem xét)",
        "acknowledged": "{by} đã tiếp nhận",
        "resolved": "{by} đã xử lý xong",
        "overdue": "CHƯA AI TIẾP NHẬN sau {age}",
    },
}
_SEVERITY = {
    "en": {"info": "info", "warning": "warning", "critical": "critical"},
    "vi": {"info": "thông tin", "warning": "cảnh báo", "critical": "nghiêm trọng"},
}
_KINDS = {
    "en": {
        "water_quality_event": "water-quality event",
        "compliance_breach": "QCVN compliance breach",
        "sensor_fault": "sensor fault",
        "bus_delay": "bus delay",
        "bus_bunching": "bus bunching",
    },
    "vi": {
        "water_quality_event": "sự cố chất lượng nước",
        "compliance_breach": "vượt ngưỡng QCVN",
        "sensor_fault": "lỗi cảm biến",
        "bus_delay": "xe buýt trễ",
        "bus_bunching": "xe buýt dồn chuyến",
    },
}
_SUBJECTS = {
    "en": {"station": "station", "vehicle": "bus", "route": "route"},
    "vi": {"station": "trạm", "vehicle": "xe", "route": "tuyến"},
}
_STATES = {
    "en": {"open": "open", "acknowledged": "acknowledged", "resolved": "resolved"},
    "vi": {"open": "mới", "acknowledged": "đã tiếp nhận", "resolved": "đã xử lý"},
}
_WORDS = {
    "en": {
        "alert": "Alert",
        "opened_at": "Opened",
        "state": "State",
        "note": "Note",
        "link": "Open the alert",
        "route": "route",
        "why": "You receive this because of your citysense notification settings.",
    },
    "vi": {
        "alert": "Cảnh báo",
        "opened_at": "Phát sinh lúc",
        "state": "Trạng thái",
        "note": "Ghi chú",
        "link": "Xem cảnh báo",
        "route": "tuyến",
        "why": "Bạn nhận thư này theo cài đặt thông báo của bạn trên citysense.",
    },
}


@dataclass(frozen=True, slots=True)
class Message:
    subject: str
    text: str  # the e-mail's body
    short: str  # one line for SMS and chat gateways


def alert_link(public_url: str, alert: dict[str, Any]) -> str:
    """The alert's page on the web site."""
    section = "water" if alert.get("subject_kind") == "station" else "transit"
    return f"{public_url.rstrip('/')}/{section}/alerts/{int(alert['alert_id'])}"


def _bounded(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _clean(value: Any, limit: int = 64) -> str:
    """A value from the database as one line: no control characters (no header injection)."""
    text = "" if value is None else str(value)
    return _bounded("".join(ch if ch.isprintable() else " " for ch in text), limit)


def _age(seconds: float, language: str) -> str:
    minutes = max(0, round(seconds / 60))
    if minutes < 120:
        return f"{minutes} {'phút' if language == 'vi' else 'min'}"
    return f"{minutes // 60} {'giờ' if language == 'vi' else 'h'} {minutes % 60:02d}"


def _when(value: Any, zone: ZoneInfo) -> str:
    if not isinstance(value, str):
        return "-"
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return _clean(value)
    return moment.astimezone(zone).strftime("%d/%m/%Y %H:%M")


def render(
    event: str, alert: dict[str, Any], language: str, link: str, at: datetime, zone: ZoneInfo
) -> Message:
    """The message of one event; `at` is when it happened, `zone` the one its times are shown in."""
    lang = language if language in _EVENTS else "en"
    words = _WORDS[lang]
    severity = _SEVERITY[lang].get(str(alert.get("severity")), _clean(alert.get("severity")))
    kind = _KINDS[lang].get(str(alert.get("kind")), _clean(alert.get("kind")))
    subject_kind = _SUBJECTS[lang].get(str(alert.get("subject_kind")), "")
    subject = f"{subject_kind} {_clean(alert.get('subject_id'))}".strip()
    by = _clean(alert.get("resolved_by") if event == "resolved" else alert.get("acknowledged_by")) or "-"
    opened_at = alert.get("opened_at")
    age = 0.0
    if isinstance(opened_at, str):
        try:
            age = (at - datetime.fromisoformat(opened_at)).total_seconds()
        except (ValueError, TypeError):
            age = 0.0
    what = _EVENTS[lang].get(event, _clean(event)).format(severity=severity, by=by, age=_age(age, lang))
    where = subject
    route = alert.get("route_id")
    if route and alert.get("subject_kind") == "vehicle":
        where += f" ({words['route']} {_clean(route)})"
    head = f"[citysense] {severity.upper()}: {kind}, {where}: {what}"
    lines = [
        f"{words['alert']} #{int(alert['alert_id'])}: {kind}, {where}",
        f"{what[:1].upper()}{what[1:]}.",
        f"{words['opened_at']}: {_when(opened_at, zone)} ({zone.key})",
        f"{words['state']}: {_STATES[lang].get(str(alert.get('state')), _clean(alert.get('state')))}",
    ]
    note = alert.get("note")
    if event in ("acknowledged", "resolved") and note:
        lines.append(f"{words['note']}: {_clean(note, _NOTE_CHARS)}")
    lines += ["", f"{words['link']}: {link}", "", "-- ", words["why"]]
    short = f"citysense {severity}: {kind}, {where}: {what}. {link}"
    return Message(
        subject=_bounded(head, SUBJECT_CHARS),
        text=_bounded("\n".join(lines), TEXT_CHARS),
        short=_bounded(short, SMS_CHARS),
    )


def webhook_body(
    message_id: int,
    event: str,
    alert: dict[str, Any],
    username: str,
    language: str,
    message: Message,
    link: str,
    timestamp: int,
) -> bytes:
    """The webhook's JSON body: what a gateway needs to send an SMS or a chat message, and the alert.

    `timestamp` (Unix seconds) is inside the signed body as well as in its header, so that a
    replayed body cannot be given a fresh time."""
    body = {
        "message_id": message_id,
        "timestamp": timestamp,
        "event": event,
        "recipient": username,
        "language": language,
        "subject": message.subject,
        "text": message.short,
        "url": link,
        "alert": {
            key: _clean(alert.get(key)) if isinstance(alert.get(key), str) else alert.get(key)
            for key in (
                "alert_id",
                "kind",
                "severity",
                "domain",
                "subject_kind",
                "subject_id",
                "route_id",
                "state",
                "opened_at",
                "cleared_at",
            )
        },
    }
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
