"""Command-line interface behind ``run.py``."""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import json
import signal
import sys
from collections.abc import Coroutine, Sequence
from pathlib import Path
from typing import Any

import structlog

from propdev.config import SIGNING_ALGORITHMS, Settings, SettingsError

log = structlog.get_logger()


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="run.py", description=__doc__)
    parser.add_argument("--config", help="TOML file; PROPDEV_* environment variables win")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("serve", help="run one node (HTTPS on PROPDEV_HOST:PROPDEV_PORT)")
    sub.add_parser("seed-demo", help="create the demo estate and demo-credentials.json")
    sim = sub.add_parser("partner-sim", help="run the vendor simulator as its own HTTPS server")
    sim.add_argument("--port", type=int, default=9443)
    sim.add_argument("--host", default="127.0.0.1")
    hcs = sub.add_parser("utilities-sim", help="run the utilities (ЖКХ) simulator over HTTPS")
    hcs.add_argument("--port", type=int, default=9444)
    hcs.add_argument("--host", default="127.0.0.1")
    pki = sub.add_parser("pki", help="the project CA").add_subparsers(dest="pki", required=True)
    issue = pki.add_parser("issue-partner", help="issue a partner's client certificate")
    issue.add_argument("name")
    issue.add_argument("--allow-ip", action="append", default=[], metavar="CIDR")
    revoke = pki.add_parser("revoke-partner", help="put a partner's certificate on the CRL")
    revoke.add_argument("name")
    partner = sub.add_parser("partner", help="partners' settings").add_subparsers(
        dest="partner", required=True
    )
    signing = partner.add_parser(
        "signing-key",
        help="our RFC 9421 public key for a partner (made if missing), for the vendor",
    )
    signing.add_argument("name")
    signing.add_argument("--format", choices=("pem", "jwk"), default="pem")
    signing.add_argument(
        "--alg", choices=SIGNING_ALGORITHMS, help="when PROPDEV_PARTNER_SIGNING does not name it"
    )
    keys = sub.add_parser("keys", help="data keys (envelope encryption)").add_subparsers(
        dest="keys", required=True
    )
    keys.add_parser("rotate", help="add a data key and re-encrypt every sealed value with it")
    keys.add_parser("status", help="how many sealed values each data key protects")
    totp = sub.add_parser("totp", help="operators' second factor").add_subparsers(
        dest="totp", required=True
    )
    recovery = totp.add_parser("recovery-codes", help="new one-time recovery codes, shown once")
    recovery.add_argument("username")
    audit = sub.add_parser("audit", help="the audit log").add_subparsers(
        dest="audit", required=True
    )
    verify = audit.add_parser("verify", help="check every audit chain and signed checkpoint")
    verify.add_argument("--public-key", type=Path, help="checkpoint verifier keys (or a PEM)")
    audit.add_parser("rotate-checkpoint-key", help="a new checkpoint key; old ones still verify")
    audit.add_parser("checkpoint-keys", help="print the checkpoint keys' verifier keys")
    rules = sub.add_parser("slo-rules", help="write the SLOs' Prometheus recording/alert rules")
    rules.add_argument("--out", default="deploy/prometheus", help="directory to write into")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        settings = Settings.from_env(toml_path=args.config)
    except SettingsError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2
    from propdev.observability import configure_logging

    configure_logging(settings.log_level, node_id=settings.node_id)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    if args.command == "serve":
        return asyncio.run(_serve(settings))
    if args.command == "seed-demo":
        return asyncio.run(_seed(settings))
    if args.command == "partner-sim":
        from propdev.devkit import serve_partner_sim

        asyncio.run(_until_signal(serve_partner_sim(settings, host=args.host, port=args.port)))
        return 0
    if args.command == "utilities-sim":
        from propdev.devkit import serve_housing_sim

        asyncio.run(_until_signal(serve_housing_sim(settings, host=args.host, port=args.port)))
        return 0
    if args.command == "pki" and args.pki == "revoke-partner":
        from propdev.admin_cli import revoke_partner_command

        return revoke_partner_command(settings, args.name)
    if args.command == "partner":
        return _signing_key(settings, args.name, args.format, args.alg)
    if args.command == "keys":
        from propdev.admin_cli import keys_command

        return asyncio.run(keys_command(settings, args.keys))
    if args.command == "totp":
        from propdev.admin_cli import recovery_codes_command

        return asyncio.run(recovery_codes_command(settings, args.username))
    if args.command == "pki":
        return asyncio.run(_issue_partner(settings, args.name, args.allow_ip))
    if args.command == "audit":
        from propdev.integrity import commands as audit_commands

        if args.audit == "rotate-checkpoint-key":
            return audit_commands.rotate_command(settings)
        if args.audit == "checkpoint-keys":
            return audit_commands.keys_command(settings)
        return asyncio.run(audit_commands.verify_command(settings, args.public_key))
    if args.command == "slo-rules":
        from propdev.observability.rules import rules_command

        return rules_command(settings.slo_file, args.out)
    return 2


async def _until_signal(coro: Coroutine[Any, Any, None]) -> None:
    """Run ``coro`` until it ends or SIGINT/SIGTERM arrives, then cancel it cleanly."""
    task = asyncio.ensure_future(coro)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, task.cancel)
    try:
        await task
    except asyncio.CancelledError:
        pass


async def _serve(settings: Settings) -> int:
    from propdev.node import serve

    await _until_signal(serve(settings))
    log.info("node_stopped")
    return 0


async def _seed(settings: Settings) -> int:
    from propdev.devkit import seed_demo

    credentials = await seed_demo(settings)
    print(
        json.dumps(
            {
                "credentials": str(settings.credentials_path),
                "residents": [r["username"] for r in credentials["residents"]],
                "access_points": len(credentials["access_points"]),
            }
        )
    )
    return 0


async def _issue_partner(settings: Settings, name: str, cidrs: list[str]) -> int:
    from propdev.devkit import register_partner
    from propdev.storage import Database, migrate

    try:
        networks = [str(ipaddress.ip_network(c, strict=False)) for c in cidrs]
    except ValueError as exc:
        print(f"--allow-ip: {exc}", file=sys.stderr)
        return 2
    db = Database(settings.database_url)
    try:
        await migrate(db)
        cert = await register_partner(settings, db, name, networks or ["127.0.0.0/8", "::1/128"])
    finally:
        await db.close()
    print(json.dumps({"partner": name, "cert": str(cert), "key": str(cert.with_name("key.pem"))}))
    return 0


def _signing_key(settings: Settings, name: str, fmt: str, alg: str | None) -> int:
    from propdev.config import PartnerSigning
    from propdev.partners import partner_key, signing_key_path

    config = settings.signing_for(name) or PartnerSigning(name, alg or SIGNING_ALGORITHMS[0])
    if alg is not None and alg != config.algorithm:
        print(f"--alg {alg}: PROPDEV_PARTNER_SIGNING says {config.algorithm}", file=sys.stderr)
        return 2
    try:
        key = partner_key(settings.data_dir, config)
    except ValueError as exc:  # SigningKeyError: a key of another kind, unreadable
        print(str(exc), file=sys.stderr)
        return 2
    print(key.pem().rstrip() if fmt == "pem" else json.dumps(key.jwk()))
    signing = "on" if settings.signing_for(name) else "off (not in PROPDEV_PARTNER_SIGNING)"
    print(
        f"partner {name}: {key.algorithm}, keyid {key.key_id}, "
        f"key {signing_key_path(settings.data_dir, name)}, signing {signing}",
        file=sys.stderr,
    )
    return 0
