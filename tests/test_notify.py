"""Notifications end to end: alert changes -> outbox (written by the database in the alert's own
transaction) -> `citysense notify` processes -> a real SMTP server and a real HTTP receiver, both
down for a while; escalation of unacknowledged alerts; subscriptions; both languages."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import psycopg
import pytest
from psycopg.types.json import Jsonb

from citysense.cmd_notify import duration, escalation_rules
from citysense.settings import ConfigError
from tests.support.notify_servers import (
    SMTP_PASSWORD,
    SMTP_USER,
    SmtpSink,
    WebhookSink,
    hanging_server,
    notifier,
    self_signed,
    wait_for,
)
from workers.notify_channels import (
    DeliveryError,
    NotifyConfigError,
    SmtpChannel,
    SmtpSettings,
    display_url,
    sign,
    verify,
)
from workers.notify_text import alert_link, render, webhook_body

PUBLIC = "https://citysense.example.vn"
MAI_SECRET = "mai-webhook-secret-5521"
CHIEF_SECRET = "chief-webhook-secret-9034"
GATEWAY_TOKEN = "gw-token-77"
FAST = ["--poll", "0.2s", "--retry-initial", "0.2s", "--retry-max", "0.5s", "--public-url", PUBLIC]


def user(conn: psycopg.Connection[Any], name: str, role: str = "water_staff", **profile: Any) -> None:
    conn.execute(
        "INSERT INTO users (username, role, password_hash) VALUES (%s, %s, 'not-a-login')", (name, role)
    )
    if profile:
        conn.execute(
            "INSERT INTO notification_profiles (username, language, email, webhook_url, webhook_secret)"
            " VALUES (%s, %s, %s, %s, %s)",
            (name, profile.get("language", "vi"), profile.get("email"), profile.get("webhook_url"),
             profile.get("webhook_secret")),
        )  # fmt: skip


def subscribe(conn: psycopg.Connection[Any], name: str, **fields: Any) -> None:
    row = {"username": name, **fields}
    conn.execute(
        f"INSERT INTO notification_subscriptions ({', '.join(row)}) VALUES ({', '.join(['%s'] * len(row))})",
        list(row.values()),
    )


def alert(conn: psycopg.Connection[Any], kind: str, severity: str, subject_kind: str, subject: str,
          evidence: dict[str, Any] | None = None) -> int:  # fmt: skip
    row = conn.execute(
        "INSERT INTO alerts (kind, severity, subject_kind, subject_id, opened_at, evidence)"
        " VALUES (%s, %s, %s, %s, now(), %s) RETURNING alert_id",
        (kind, severity, subject_kind, subject, Jsonb(evidence or {})),
    ).fetchone()
    assert row is not None
    return int(row[0])


def change(conn: psycopg.Connection[Any], alert_id: int, action: str, by: str, note: str) -> None:
    """What POST /api/v1/alerts/{id}/acknowledge or /resolve does to the row."""
    state = "acknowledged" if action == "acknowledge" else "resolved"
    who = "acknowledged" if action == "acknowledge" else "resolved"
    conn.execute(
        f"UPDATE alerts SET state = %s, {who}_by = %s, {who}_at = now(),"
        " notes = notes || jsonb_build_array(jsonb_build_object('text', %s::text, 'by', %s::text))"
        " WHERE alert_id = %s",
        (state, by, note, by, alert_id),
    )


def outbox(db: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(db) as conn:
        return conn.execute(
            "SELECT o.message_id, o.username, o.channel, e.event, o.alert_id, o.status, o.attempts,"
            " o.last_error"
            " FROM notification_outbox o JOIN notification_events e USING (event_id) ORDER BY message_id"
        ).fetchall()


def scalar(db: str, sql: str, *params: Any) -> Any:
    with psycopg.connect(db) as conn:
        row = conn.execute(sql, params).fetchone()
    assert row is not None
    return row[0]


def test_outage_of_both_then_everything_delivered_once_in_order(db: str, tmp_path: Path) -> None:
    smtp = SmtpSink(cert=self_signed(tmp_path))
    hook = WebhookSink({"/hook/mai": MAI_SECRET})
    with psycopg.connect(db, autocommit=True) as conn:
        user(conn, "mai", language="en", email="mai@example.org",
             webhook_url=hook.url(f"/hook/mai?token={GATEWAY_TOKEN}"), webhook_secret=MAI_SECRET)  # fmt: skip
        user(conn, "tuan", "transport_planner", language="vi", email="tuan@example.org")
        user(conn, "lost", language="en", email="refused@example.org")
        subscribe(conn, "mai", domain="water", min_severity="warning", channels=["email", "webhook"])
        subscribe(conn, "mai", domain="water", subject_id="wq-1")  # a second match: still one message each
        subscribe(conn, "tuan", domain="transit")
        subscribe(conn, "lost")
        # Everything happens while the mail server and the gateway are down, and no notifier runs.
        a = alert(conn, "water_quality_event", "warning", "station", "wq-1")
        conn.execute("UPDATE alerts SET severity = 'critical' WHERE alert_id = %s", (a,))
        conn.execute(
            "UPDATE alerts SET evidence = '{\"x\": 1}' WHERE alert_id = %s", (a,)
        )  # no change of state
        change(conn, a, "acknowledge", "mai", "crew sent to Cau Do")
        change(conn, a, "resolve", "mai", "main flushed; chlorine back to 0.6 mg/L")
        b = alert(conn, "bus_bunching", "warning", "route", "R1")
        c = alert(conn, "bus_delay", "critical", "vehicle", "bus-7", {"route_id": "R2", "delay_s": 900})
        alert(conn, "sensor_fault", "info", "station", "wq-2")  # below mai's minimum

    events = ["opened", "escalated", "acknowledged", "resolved"]
    smtp_url = f"smtp://{SMTP_USER}:{SMTP_PASSWORD}@127.0.0.1:{smtp.port}"
    args = [*FAST, "--smtp-url", smtp_url, "--smtp-ca-file", str(tmp_path / "cert.pem"),
            "--attempts", "1000", "--mail-from", "alerts@citysense.example.vn",
            "--webhook-hosts", "127.0.0.1", "--timeout", "2"]  # fmt: skip
    logs = [tmp_path / "notify-1.log", tmp_path / "notify-2.log"]
    try:
        with notifier(db, *args, log_path=logs[0]), notifier(db, *args, log_path=logs[1]):
            wait_for(
                lambda: (
                    scalar(db, "SELECT count(*) FROM notification_deliveries WHERE outcome = 'retry'") >= 30
                ),
                what="attempts while both are down",
            )
            assert scalar(db, "SELECT count(*) FROM notification_outbox WHERE status <> 'pending'") == 0
            smtp.start()
            hook.start()
            wait_for(
                lambda: scalar(db, "SELECT count(*) FROM notification_outbox WHERE status = 'pending'") == 0,
                what="the outbox to drain",
            )
            time.sleep(1)  # anything sent twice would arrive now
    finally:
        smtp.stop()
        hook.stop()

    rows = outbox(db)
    mine = [(u, ch, ev, al) for _, u, ch, ev, al, st, _, _ in rows if st == "sent"]
    assert mine == [
        *[(u, ch, ev, a) for ev in events for u, ch in (("mai", "email"), ("mai", "webhook"))],
        ("tuan", "email", "opened", b),
        ("tuan", "email", "opened", c),
    ]
    # The refused address failed at once, without holding anything up.
    failed = [r for r in rows if r[5] == "failed"]
    assert {r[1] for r in failed} == {"lost"}
    assert len(failed) == 7
    assert all("550" in (r[7] or "") for r in failed)
    # Each attempt is logged: retries while down, then exactly one success per sent message.
    assert scalar(db, "SELECT count(*) FROM notification_deliveries WHERE outcome = 'sent'") == 10
    # The first message of each alert was tried during the outage; the later ones waited their turn.
    tries = (
        "SELECT {} FROM notification_outbox JOIN notification_events USING (event_id) WHERE status = 'sent'"
    )
    assert scalar(db, tries.format("min(attempts)") + " AND event = 'opened'") >= 2
    assert scalar(db, tries.format("max(attempts)") + " AND event <> 'opened'") == 1

    mails = smtp.messages()
    assert len(mails) == 6  # 4 for mai, 2 for tuan; none twice
    assert len({m["Message-ID"] for _, m, _ in mails}) == 6
    assert all(auth for _, _, auth in mails)  # logged in, over STARTTLS
    to_mai = [m for rcpt, m, _ in mails if rcpt == ["mai@example.org"]]
    assert [m["Subject"].strip() for m in to_mai] == [
        "[citysense] WARNING: water-quality event, station wq-1: opened",
        "[citysense] CRITICAL: water-quality event, station wq-1: escalated to critical",
        "[citysense] CRITICAL: water-quality event, station wq-1: acknowledged by mai",
        "[citysense] CRITICAL: water-quality event, station wq-1: resolved by mai",
    ]
    body = to_mai[3].get_content()
    assert f"{PUBLIC}/water/alerts/{a}" in body
    assert "main flushed; chlorine back to 0.6 mg/L" in body
    assert all(m["References"] == to_mai[0]["References"] for m in to_mai)  # one thread per alert
    to_tuan = [m for rcpt, m, _ in mails if rcpt == ["tuan@example.org"]]
    # Two alerts: in order per alert, in any order between them.
    assert sorted(m["Subject"].strip() for m in to_tuan) == [
        "[citysense] CẢNH BÁO: xe buýt dồn chuyến, tuyến R1: mới phát sinh",
        "[citysense] NGHIÊM TRỌNG: xe buýt trễ, xe bus-7 (tuyến R2): mới phát sinh",
    ]
    delay = next(m for m in to_tuan if "bus-7" in m["Subject"])
    assert f"{PUBLIC}/transit/alerts/{c}" in delay.get_content()
    assert "Xem cảnh báo" in delay.get_content()

    posts = hook.requests()
    assert [p["verified"] for p in posts] == [True] * 4
    assert [p["body"]["event"] for p in posts] == events
    assert len({p["headers"]["X-Citysense-Delivery"] for p in posts}) == 4
    assert posts[0]["path"] == f"/hook/mai?token={GATEWAY_TOKEN}"
    assert posts[1]["body"]["alert"]["severity"] == "critical"
    assert posts[3]["body"]["url"] == f"{PUBLIC}/water/alerts/{a}"
    assert posts[3]["body"]["text"].startswith(
        "citysense critical: water-quality event, station wq-1: resolved"
    )

    # Secrets never reach the logs: not the SMTP password, not the webhook secret, not the gateway's token.
    text = "".join(p.read_text() for p in logs)
    assert "sent" in text
    for secret in (SMTP_PASSWORD, MAI_SECRET, GATEWAY_TOKEN):
        assert secret not in text


def test_a_hanging_gateway_and_a_bad_address_block_no_one(db: str, tmp_path: Path) -> None:
    smtp = SmtpSink()
    smtp.start()
    with hanging_server() as port, psycopg.connect(db, autocommit=True) as conn:
        user(
            conn,
            "slow",
            language="en",
            webhook_url=f"http://127.0.0.1:{port}/hook",
            webhook_secret=MAI_SECRET,
        )
        user(conn, "odd", language="en", email="refused@example.org")
        user(conn, "mai", language="en", email="mai@example.org")
        for name, channels in (("slow", ["webhook"]), ("odd", ["email"]), ("mai", ["email"])):
            subscribe(conn, name, channels=channels)
        first = alert(conn, "compliance_breach", "critical", "station", "wq-1")
        second = alert(conn, "sensor_fault", "warning", "station", "wq-2")
        args = [*FAST, "--smtp-url", f"smtp+plain://127.0.0.1:{smtp.port}", "--mail-from", "cs@example.vn",
                "--webhook-hosts", f"127.0.0.1:{port}", "--timeout", "1", "--attempts", "3",
                "--senders", "2"]  # fmt: skip
        try:
            with notifier(db, *args, log_path=tmp_path / "notify.log"):
                wait_for(lambda: len(smtp.messages()) == 2, what="mai's two messages")
                wait_for(
                    lambda: (
                        scalar(db, "SELECT count(*) FROM notification_outbox WHERE status = 'pending'") == 0
                    ),
                    what="the hanging gateway to be given up",
                )
        finally:
            smtp.stop()
    rows = {(r[1], r[4]): r for r in outbox(db)}
    assert rows[("mai", first)][5] == rows[("mai", second)][5] == "sent"
    slow = rows[("slow", first)]
    assert (slow[5], slow[6]) == ("failed", 3)
    assert slow[7].startswith("gave up after 3 attempts: webhook http://127.0.0.1:")
    assert "timed out" in slow[7]
    with psycopg.connect(db) as conn:
        details = [
            r[0]
            for r in conn.execute(
                "SELECT outcome FROM notification_deliveries WHERE message_id = %s ORDER BY delivery_id",
                (slow[0],),
            )
        ]
    assert details == ["retry", "retry", "failed"]
    assert rows[("odd", first)][5] == "failed"
    assert rows[("odd", first)][6] == 1


def test_escalation_after_the_set_time_to_the_second_list_only(db: str, tmp_path: Path) -> None:
    hook = WebhookSink({"/chief": CHIEF_SECRET, "/mai": MAI_SECRET})
    hook.start()
    try:
        with psycopg.connect(db, autocommit=True) as conn:
            user(conn, "mai", language="en", webhook_url=hook.url("/mai"), webhook_secret=MAI_SECRET)
            user(
                conn,
                "chief",
                "admin",
                language="vi",
                webhook_url=hook.url("/chief"),
                webhook_secret=CHIEF_SECRET,
            )
            subscribe(conn, "mai", channels=["webhook"])
            subscribe(conn, "chief", list="escalation", domain="water", channels=["webhook"])
            args = [
                *FAST,
                "--webhook-hosts",
                "127.0.0.1",
                "--escalate-after",
                "water:critical=3s,water:warning=off",
            ]
            with notifier(db, *args, log_path=tmp_path / "notify.log"):
                opened_at = datetime.now(UTC)  # before: the alert's own time is no earlier
                left = alert(conn, "water_quality_event", "critical", "station", "wq-1")
                taken = alert(conn, "water_quality_event", "critical", "station", "wq-2")
                change(conn, taken, "acknowledge", "mai", "on it")
                alert(conn, "sensor_fault", "warning", "station", "wq-3")  # warnings: no escalation here
                alert(
                    conn, "bus_delay", "critical", "vehicle", "bus-1"
                )  # transit's rule is the default 30 min
                wait_for(lambda: any(p["path"] == "/chief" for p in hook.requests()), what="the escalation")
                escalated_at = datetime.now(UTC)
                time.sleep(1.5)  # more scans: still one escalation
    finally:
        hook.stop()
    assert escalated_at - opened_at >= timedelta(seconds=3)
    assert escalated_at - opened_at < timedelta(seconds=10)
    to_chief = [p for p in hook.requests() if p["path"] == "/chief"]
    assert len(to_chief) == 1
    doc = to_chief[0]["body"]
    assert (doc["event"], doc["alert"]["alert_id"], doc["language"]) == ("overdue", left, "vi")
    assert "CHƯA AI TIẾP NHẬN" in doc["subject"]
    assert to_chief[0]["verified"]
    # The first list hears of each change, never of the escalation.
    to_mai = [p["body"]["event"] for p in hook.requests() if p["path"] == "/mai"]
    assert sorted(to_mai) == ["acknowledged", "opened", "opened", "opened", "opened"]
    assert scalar(db, "SELECT count(*) FROM notification_events WHERE event = 'overdue'") == 1


def test_subscriptions_choose_by_domain_kind_severity_and_subject(db: str) -> None:
    with psycopg.connect(db, autocommit=True) as conn:
        user(conn, "water", language="en", email="w@example.org")
        user(conn, "crit", language="en", email="c@example.org")
        user(conn, "station", language="en", email="s@example.org")
        user(conn, "route", "transport_planner", language="vi", email="r@example.org")
        user(conn, "kind", language="en", email="k@example.org")
        user(conn, "gone", language="en", email="g@example.org")
        user(conn, "noaddress")
        user(conn, "nowebhook", language="en", email="n@example.org")
        subscribe(conn, "water", domain="water")
        subscribe(conn, "crit", min_severity="critical")
        subscribe(conn, "station", subject_id="wq-1")
        subscribe(conn, "route", domain="transit", subject_id="R2")
        subscribe(conn, "kind", kind="sensor_fault")
        subscribe(conn, "gone")
        subscribe(conn, "noaddress")
        subscribe(conn, "nowebhook", channels=["webhook"])
        conn.execute("UPDATE users SET enabled = false WHERE username = 'gone'")
        a = alert(conn, "water_quality_event", "warning", "station", "wq-1")
        b = alert(conn, "sensor_fault", "critical", "station", "wq-2")
        c = alert(conn, "bus_delay", "warning", "vehicle", "bus-9", {"route_id": "R2"})
        d = alert(conn, "bus_bunching", "info", "route", "R2")
        e = alert(conn, "bus_bunching", "critical", "route", "R3")

        # A change rolled back sends nothing: the messages are part of the alert's own transaction.
        def resolve_then_fail() -> None:
            with conn.transaction():
                conn.execute("UPDATE alerts SET state = 'resolved' WHERE alert_id = %s", (a,))
                conn.execute("SELECT 1 / 0")

        with pytest.raises(psycopg.errors.DivisionByZero):
            resolve_then_fail()
    got: dict[int, set[str]] = {}
    for _, name, channel, event, alert_id, *_ in outbox(db):
        assert (channel, event) == ("email", "opened")
        got.setdefault(alert_id, set()).add(name)
    assert got == {
        a: {"water", "station"},
        b: {"water", "crit", "kind"},
        c: {"route"},
        d: {"route"},
        e: {"crit"},
    }
    with psycopg.connect(db) as conn:
        languages = dict(conn.execute("SELECT username, language FROM notification_outbox").fetchall())
    assert languages["route"] == "vi"
    assert languages["water"] == "en"


def test_messages_in_both_languages() -> None:
    zone = ZoneInfo("Asia/Ho_Chi_Minh")
    snapshot = {
        "alert_id": 42, "kind": "compliance_breach", "severity": "critical", "subject_kind": "station",
        "subject_id": "dn-wq-001", "state": "acknowledged", "acknowledged_by": "mai",
        "opened_at": "2026-03-01T01:00:00+00:00", "note": "crew sent\r\nBcc: evil@example.org",
    }  # fmt: skip
    link = alert_link(PUBLIC + "/", snapshot)
    assert link == f"{PUBLIC}/water/alerts/42"
    at = datetime(2026, 3, 1, 1, 45, tzinfo=UTC)
    en = render("acknowledged", snapshot, "en", link, at, zone)
    vi = render("acknowledged", snapshot, "vi", link, at, zone)
    assert (
        en.subject == "[citysense] CRITICAL: QCVN compliance breach, station dn-wq-001: acknowledged by mai"
    )
    assert vi.subject == "[citysense] NGHIÊM TRỌNG: vượt ngưỡng QCVN, trạm dn-wq-001: mai đã tiếp nhận"
    assert "Opened: 01/03/2026 08:00 (Asia/Ho_Chi_Minh)" in en.text
    assert "Phát sinh lúc: 01/03/2026 08:00" in vi.text
    assert "Note: crew sent  Bcc: evil@example.org" in en.text  # one line: no header or line injection
    assert link in en.text
    assert link in vi.text
    assert link in en.short
    overdue = render("overdue", snapshot, "vi", link, at, zone)
    assert "CHƯA AI TIẾP NHẬN sau 45 phút" in overdue.subject
    # Bounded whatever the alert holds.
    huge = {**snapshot, "subject_id": "x" * 100_000, "kind": "k" * 100_000, "note": "n" * 100_000}
    big = render("resolved", huge, "en", link, at, zone)
    assert len(big.subject) <= 200
    assert len(big.text) <= 2000
    assert len(big.short) <= 320
    body = webhook_body(7, "resolved", huge, "mai", "en", big, link, 1_700_000_000)
    assert len(body) < 8000


def test_signature_and_settings() -> None:
    body = b'{"message_id":1}'
    signature = sign("s" * 20, body)
    assert signature.startswith("sha256=")
    assert len(signature) == 7 + 64
    assert verify("s" * 20, body, signature)
    assert not verify("s" * 20, body + b" ", signature)
    assert not verify("t" * 20, body, signature)
    settings = SmtpSettings.parse("smtp://u:p%40ss@mail.example.vn", "alerts@example.vn")
    assert (settings.security, settings.port, settings.password) == ("starttls", 587, "p@ss")
    assert "p@ss" not in repr(settings)
    assert "p%40ss" not in repr(settings)
    assert SmtpSettings.parse("smtps://mail.example.vn", "a@b.vn").port == 465
    with pytest.raises(NotifyConfigError, match="in clear"):
        SmtpSettings.parse("smtp+plain://u:pw@relay", "a@b.vn")
    with pytest.raises(NotifyConfigError):
        SmtpSettings.parse("http://mail", "a@b.vn")
    with pytest.raises(NotifyConfigError):
        SmtpSettings.parse("smtp://mail", "a@b.vn\r\nBcc: x@y")
    assert (
        display_url(f"https://gw.example.vn:8443/sms?token={GATEWAY_TOKEN}")
        == "https://gw.example.vn:8443/sms?…"
    )
    assert duration("15m") == 900
    assert duration("0.5s") == 0.5
    assert duration("2h") == 7200
    rules = escalation_rules("water:critical=15m,transit:warning=off,water:info=1d")
    assert rules[("water", "critical")] == 900
    assert ("transit", "warning") not in rules
    assert rules[("water", "info")] == 86400
    assert rules[("transit", "critical")] == 1800
    with pytest.raises(ConfigError):
        escalation_rules("sewage:critical=1m")


def test_no_mail_in_clear_when_starttls_is_required() -> None:
    """`smtp://` to a server that offers no STARTTLS: not sent, and retried, never sent in clear."""
    smtp = SmtpSink()
    smtp.start()
    try:
        channel = SmtpChannel(
            SmtpSettings.parse(f"smtp://127.0.0.1:{smtp.port}", "cs@example.vn", timeout_s=2)
        )
        snapshot = {"alert_id": 1, "kind": "k", "severity": "info"}
        message = render("opened", snapshot, "en", PUBLIC, datetime.now(UTC), ZoneInfo("UTC"))
        with pytest.raises(DeliveryError) as caught:
            asyncio.run(channel.send("mai@example.org", message, 1, 1))
        assert not caught.value.permanent
        assert smtp.messages() == []
    finally:
        smtp.stop()
