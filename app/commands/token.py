"""Create, list and revoke access tokens (stored hashed in the data directory)."""

from __future__ import annotations

import argparse
import json

from wardwatch.auth import Role, TokenStore
from wardwatch.settings import get_settings


def add_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="action", required=True)
    c = sub.add_parser("create", help="create a token and print it once")
    c.add_argument("--role", required=True, choices=[r.value for r in Role])
    c.add_argument("--name", default="", help="who or what holds it (a person or a gateway)")
    c.add_argument("--ward", action="append", default=[], help="limit to a ward (repeatable); default all")
    sub.add_parser("list", help="list tokens (never their secrets)")
    r = sub.add_parser("revoke", help="revoke a token by its id")
    r.add_argument("token_id")


def run(args: argparse.Namespace) -> int:
    store = TokenStore(get_settings().tokens_path)
    if args.action == "create":
        token, principal = store.create(args.role, args.name, tuple(args.ward))
        print(token)
        return 0
    if args.action == "list":
        for row in store.list():
            print(json.dumps(row))
        return 0
    return 0 if store.revoke(args.token_id) else 1
