"""`citysense notify`: delivers alert notifications (e-mail, signed webhooks) from the outbox and
escalates alerts left unacknowledged (docs/notifications.md)."""

from __future__ import annotations

import argparse
import asyncio
import functools
import os
import re
import sys
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from citysense.runtime import add_logging_options, run_until_signal, setup_logging
from citysense.settings import ConfigError, Settings, add_connection_options
from workers.notify import DEFAULT_ESCALATION, DEFAULT_RETRY, NotifyConfig, NotifyService
from workers.notify_channels import NotifyConfigError, SmtpSettings, WebhookSettings
from workers.supervise import WorkerHealth, final_status, heartbeat, supervise

_DURATION = re.compile(r"^(\d+(?:\.\d+)?)(s|m|h|d)?$")
_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}


def duration(text: str) -> float:
    """`90`, `90s`, `15m`, `2h`, `1d` in seconds."""
    m = _DURATION.match(text.strip())
    if not m:
        raise ConfigError(f"not a duration: {text!r} (like 90s, 15m, 2h)")
    return float(m.group(1)) * _UNITS[m.group(2)]


def escalation_rules(text: str | None) -> dict[tuple[str, str], float]:
    """`water:critical=15m,transit:warning=2h,...` over the defaults; `=off` removes a rule."""
    rules = dict(DEFAULT_ESCALATION)
    for item in (text or "").split(","):
        if not item.strip():
            continue
        key, _, value = item.strip().partition("=")
        domain, _, severity = key.partition(":")
        if domain not in ("water", "transit") or severity not in ("info", "warning", "critical") or not value:
            raise ConfigError(
                f"escalation rule {item!r}: write DOMAIN:SEVERITY=DURATION, like water:critical=15m"
            )
        if value == "off":
            rules.pop((domain, severity), None)
        else:
            rules[(domain, severity)] = duration(value)
    return rules


def _opt(args: argparse.Namespace, name: str, env: Mapping[str, str], var: str) -> str | None:
    value = getattr(args, name)
    return str(value) if value is not None else (env.get(var) or None)


def config_from(args: argparse.Namespace, env: Mapping[str, str] | None = None) -> NotifyConfig:
    env = os.environ if env is None else env
    smtp = None
    smtp_url = _opt(args, "smtp_url", env, "CITYSENSE_SMTP_URL")
    try:
        if smtp_url:
            sender = _opt(args, "mail_from", env, "CITYSENSE_MAIL_FROM")
            if not sender:
                raise ConfigError("e-mail needs a sender: --mail-from or CITYSENSE_MAIL_FROM")
            smtp = SmtpSettings.parse(
                smtp_url,
                sender,
                ca_file=Path(args.smtp_ca_file) if args.smtp_ca_file else None,
                timeout_s=args.timeout,
            )
        hosts = _opt(args, "webhook_hosts", env, "CITYSENSE_WEBHOOK_HOSTS") or ""
        webhook = WebhookSettings(
            allowed_hosts=frozenset(h.strip().lower() for h in hosts.split(",") if h.strip()),
            timeout_s=args.timeout,
            ca_file=Path(args.webhook_ca_file) if args.webhook_ca_file else None,
        )
        retry = replace(
            DEFAULT_RETRY,
            initial_s=duration(args.retry_initial),
            max_s=max(duration(args.retry_max), duration(args.retry_initial)),
            max_attempts=args.attempts,
        )
        return NotifyConfig(
            public_url=_opt(args, "public_url", env, "CITYSENSE_PUBLIC_URL") or "http://localhost:8000",
            smtp=smtp,
            webhook=webhook,
            retry=retry,
            escalate_after=escalation_rules(_opt(args, "escalate_after", env, "CITYSENSE_ESCALATE_AFTER")),
            poll_s=duration(args.poll),
            senders=args.senders,
            timezone=_opt(args, "timezone", env, "CITYSENSE_TIMEZONE") or "Asia/Ho_Chi_Minh",
            keep_days=args.keep_days,
        )
    except (NotifyConfigError, ValueError) as exc:
        raise ConfigError(str(exc)) from None


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "notify",
        help="deliver alert notifications (e-mail, signed webhooks) and escalate unacknowledged alerts",
    )
    add_connection_options(parser, mqtt=False)
    parser.add_argument(
        "--smtp-url",
        help="mail server: smtp://[user:password@]host[:587] (STARTTLS), smtps://... (TLS, 465) or "
        "smtp+plain://host[:25] (default: $CITYSENSE_SMTP_URL; none: e-mail is not sent)",
    )
    parser.add_argument("--mail-from", help="the sender address (default: $CITYSENSE_MAIL_FROM)")
    parser.add_argument(
        "--smtp-ca-file", help="CA certificates to trust for the mail server (default: the system's)"
    )
    parser.add_argument(
        "--webhook-hosts",
        help="hosts webhooks may go to, host or host:port, comma-separated, * for any "
        "(default: $CITYSENSE_WEBHOOK_HOSTS; none: no webhook is sent)",
    )
    parser.add_argument("--webhook-ca-file", help="CA certificates to trust for https webhooks")
    parser.add_argument(
        "--public-url", help="the web site's address, for links to alerts (default: $CITYSENSE_PUBLIC_URL)"
    )
    parser.add_argument(
        "--escalate-after",
        help="DOMAIN:SEVERITY=DURATION,... unacknowledged time before escalation, over the defaults "
        "water|transit:critical=30m, :warning=2h; =off for none (default: $CITYSENSE_ESCALATE_AFTER)",
    )
    parser.add_argument("--timeout", type=float, default=20.0, help="seconds for each send (default 20)")
    parser.add_argument(
        "--attempts", type=int, default=10, help="attempts before a message is failed (default 10)"
    )
    parser.add_argument("--retry-initial", default="30s", help="wait after the first failure (default 30s)")
    parser.add_argument("--retry-max", default="1h", help="longest wait between attempts (default 1h)")
    parser.add_argument("--poll", default="2s", help="how often to look for due messages and overdue alerts")
    parser.add_argument("--senders", type=int, default=4, help="messages sent at once (default 4)")
    parser.add_argument(
        "--keep-days", type=int, default=90, help="days settled messages are kept (default 90)"
    )
    parser.add_argument("--timezone", help="zone of the times in messages (default Asia/Ho_Chi_Minh)")
    add_logging_options(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    setup_logging(args.log_level, args.log_format)
    try:
        config = config_from(args)
        url = Settings.from_args(args).require_database()
    except ConfigError as exc:
        print(f"citysense notify: {exc}", file=sys.stderr)
        return 2
    service = NotifyService(config)

    async def main(stop: asyncio.Event) -> None:
        health = WorkerHealth(service.name)
        async with asyncio.TaskGroup() as tasks:
            tasks.create_task(supervise(health, functools.partial(service.run, url, stop, health), stop))
            tasks.create_task(heartbeat(url, [health], stop), name="notify-status")
        await final_status(url, [health])

    return run_until_signal(main)
