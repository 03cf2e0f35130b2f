"""`bft-node client`: one operation (put, get, delete, cas) through consensus, on the
public client API (``node.client.connect``).

Exit codes: 0 done (put, delete; get found the key; cas swapped), 1 the operation's
negative answer (get: absent; cas: the value was not EXPECTED), 2 a user mistake or a
request the cluster could not complete in time (one line on stderr).
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

import trio

from node.client import ClientError, InvalidRequest, QuorumUnavailable, Refused, connect
from node.config import load_config
from node.errors import UserError

__all__ = ["add_parser", "cmd_client"]


def add_parser(sub: Any, add_config: Any, formatter: type) -> None:
    s = sub.add_parser(
        "client",
        help="one put, get, delete or cas through consensus",
        description="One operation on the replicated store. Exit 0 when done, 1 for a "
        "negative answer (get: absent; cas: no swap), 2 for an error.",
        formatter_class=formatter,
    )
    add_config(s)
    s.add_argument(
        "--timeout",
        type=float,
        default=None,
        metavar="S",
        help="give up after S seconds (default: [client] call_timeout_s, 30)",
    )
    ops = s.add_subparsers(dest="op", required=True, metavar="OP")
    c = ops.add_parser("put", help="write VALUE under KEY", formatter_class=formatter)
    c.add_argument("key", help="the key (UTF-8 text)")
    c.add_argument("value", help="the value (UTF-8 text)")
    c = ops.add_parser("get", help="print the value of KEY (exit 1 if absent)")
    c.add_argument("key", help="the key")
    c.add_argument(
        "--json",
        action="store_true",
        help='print {"key", "found", "value"} as JSON (a value that is not UTF-8 as "value_hex")',
    )
    c = ops.add_parser("delete", help="remove KEY (exit 0 whether or not it was there)")
    c.add_argument("key", help="the key")
    c = ops.add_parser(
        "cas", help="set KEY to NEW if its value is EXPECTED (exit 0 swapped, 1 not)"
    )
    c.add_argument("key", help="the key")
    c.add_argument("expected", help="the value KEY must hold now")
    c.add_argument("new", help="the value to set")
    c.add_argument(
        "--if-absent",
        action="store_true",
        help="swap only if KEY is absent (EXPECTED is then ignored; pass '' for it)",
    )


async def _run(args: argparse.Namespace) -> tuple[int, dict[str, Any]]:
    cfg = load_config(args.config)
    async with connect(cfg, timeout=args.timeout) as kv:
        if args.op == "put":
            await kv.put(args.key, args.value)
            return 0, {"status": "ok", "key": args.key}
        if args.op == "delete":
            existed = await kv.delete(args.key)
            return 0, {"status": "ok" if existed else "absent", "key": args.key}
        if args.op == "cas":
            expected = None if args.if_absent else args.expected
            swapped = await kv.cas(args.key, expected, args.new)
            return (0 if swapped else 1), {"swapped": swapped, "key": args.key}
        value = await kv.get(args.key)
        assert value is None or isinstance(value, bytes)
        return (0 if value is not None else 1), _value_doc(args.key, value)


def _value_doc(key: str, value: bytes | None) -> dict[str, Any]:
    doc: dict[str, Any] = {"key": key, "found": value is not None, "value": None}
    if value is not None:
        try:
            doc["value"] = value.decode()
        except UnicodeDecodeError:
            doc["value_hex"] = value.hex()
    return doc


def cmd_client(args: argparse.Namespace) -> int:
    try:
        code, doc = trio.run(_run, args)
    except QuorumUnavailable as exc:
        raise UserError(f"quorum unavailable: {exc}") from None
    except Refused as exc:
        raise UserError(f"refused by the replicas: {exc.reason}; try again later") from None
    except InvalidRequest as exc:
        raise UserError(f"invalid request: {exc}") from None
    except ClientError as exc:
        raise UserError(str(exc)) from None
    if args.op != "get":
        print(json.dumps(doc))
        return code
    if getattr(args, "json", False):
        print(json.dumps(doc))
    elif not doc["found"]:
        print(f"{args.key}: absent", file=sys.stderr)
    else:
        print(doc["value"] if doc["value"] is not None else doc["value_hex"])
    return code
