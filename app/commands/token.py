"""Create, list and revoke access tokens (stored hashed in the data directory and, with Kafka, shared
with every service instance on the tokens topic: wardwatch/token_sync.py)."""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import sys

from wardwatch.auth import Role, TokenStore
from wardwatch.settings import get_settings

# A person's token lapses by itself (a copied or forgotten one stops working within the week);
# a gateway's or an admin's does not, because a lapsed gateway token silently stops a ward's
# readings, and so its alarms, and the admin token is what mends the others. Set one explicitly
# with --expires-in, or --expires-in never.
DEFAULT_LIFETIME = {Role.gateway: "never", Role.nurse: "7d", Role.clinician: "7d", Role.admin: "never"}
UNITS = {"m": 60, "h": 3600, "d": 86400}


def lifetime(text: str) -> float | None:
    """Seconds from a duration such as 90m, 12h or 7d; None for "never"."""
    if text == "never":
        return None
    m = re.fullmatch(r"([1-9][0-9]*)([mhd])", text.strip())
    if not m:
        raise argparse.ArgumentTypeError(f"not a duration: {text!r} (e.g. 90m, 12h, 7d, or never)")
    return int(m[1]) * UNITS[m[2]]


def add_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="action", required=True)
    c = sub.add_parser("create", help="create a token and print it once")
    c.add_argument("--role", required=True, choices=[r.value for r in Role])
    c.add_argument("--name", default="", help="who or what holds it (a person or a gateway)")
    c.add_argument("--ward", action="append", default=[], help="limit to a ward (repeatable); default all")
    c.add_argument("--expires-in", type=lifetime, default=argparse.SUPPRESS, metavar="DURATION",
                   help="lifetime: 90m, 12h, 7d or never; default "
                        + ", ".join(f"{r.value} {d}" for r, d in DEFAULT_LIFETIME.items()))
    sub.add_parser("list", help="list tokens (never their secrets), with when each expires and whether it has")
    r = sub.add_parser("revoke", help="revoke a token by its id")
    r.add_argument("token_id")


    sub.add_parser("publish", help="share every token of this data directory on the tokens topic")


def share(settings, rows: list[dict]) -> None:
    """On Kafka, every instance of every service learns of the change; the embedded demo is one process."""
    if settings.backend != "kafka" or not rows:
        return
    from wardwatch.bus import open_bus
    from wardwatch.token_sync import publish_tokens

    try:
        asyncio.run(publish_tokens(open_bus(settings), rows))
    except Exception as exc:  # the change holds here; say loudly that the other instances lack it
        print(f"WARNING: stored in {settings.tokens_path} but not shared on the tokens topic ({type(exc).__name__}):"
              " run `wardwatch token publish` with the admin's Kafka credentials", file=sys.stderr)


def run(args: argparse.Namespace) -> int:
    settings = get_settings()
    store = TokenStore(settings.tokens_path)
    if args.action == "create":
        try:
            # --expires-in absent (SUPPRESS): the role's default, which may be "never".
            expires_in = getattr(args, "expires_in", lifetime(DEFAULT_LIFETIME[Role(args.role)]))
            token, principal = store.create(args.role, args.name, tuple(args.ward), expires_in)
        except ValueError as exc:
            print(f"ERROR: {exc}", file=sys.stderr)
            return 2
        share(settings, [store.row(principal.token_id)])
        print(token)
        return 0
    if args.action == "list":
        for row in store.list():
            print(json.dumps(row))
        return 0
    if args.action == "publish":
        share(settings, store.rows())
        return 0
    if not store.revoke(args.token_id):
        return 1
    share(settings, [store.row(args.token_id)])
    return 0
