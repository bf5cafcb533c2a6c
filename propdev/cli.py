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
    sim.add_argument(
        "--partner",
        default="simulator",
        help="the partner the intercom vendor is (its API key, callback certificate, signatures)",
    )
    sim.add_argument("--client-cert", metavar="PEM", help="the partner's client certificate")
    sim.add_argument("--client-key", metavar="PEM", help="the key of --client-cert")
    sim.add_argument(
        "--webhook-secret", metavar="S", help="signs the callbacks (Standard Webhooks)"
    )
    sim.add_argument("--api-key", metavar="K", help="the key our node must present")
    sim.add_argument(
        "--callback-url", metavar="URL", help="our node (default PROPDEV_CALLBACK_URL)"
    )
    sim.add_argument(
        "--protocol",
        choices=("simulator", "acme"),
        default="simulator",
        help="which of the simulated vendors is --partner (the other keeps its demo partner)",
    )
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
    check = partner.add_parser(
        "check", help="a scripted session against the vendor's sandbox: one PASS/FAIL per step"
    )
    check.add_argument("name")
    check.add_argument("--device", help="the vendor's device to open (default: its first door)")
    check.add_argument(
        "--wait", type=float, default=10.0, help="seconds to wait for the callback (default 10)"
    )
    signing.add_argument("--format", choices=("pem", "jwk"), default="pem")
    signing.add_argument(
        "--alg", choices=SIGNING_ALGORITHMS, help="when PROPDEV_PARTNER_SIGNING does not name it"
    )
    keys = sub.add_parser("keys", help="data keys (envelope encryption)").add_subparsers(
        dest="keys", required=True
    )
    keys.add_parser("rotate", help="add a data key and re-encrypt every sealed value with it")
    keys.add_parser("status", help="how many sealed values each data key protects")
    rotate_signing = keys.add_parser(
        "rotate-signing",
        help="a new token-signing key signs from now; the old stay in the JWKS for the overlap",
    )
    rotate_signing.add_argument(
        "--retire-old", action="store_true", help="retire every older key now (a compromise)"
    )
    keys.add_parser("signing", help="the token-signing keys and when each retires")
    backup = sub.add_parser("backup", help="encrypted backups").add_subparsers(
        dest="backup", required=True
    )
    for action, text in (
        ("create", "write a consistent, encrypted backup of the store and the data dir"),
        ("verify", "authenticate a backup and check its parts; write nothing"),
        ("restore", "fill an empty data dir and store from a backup"),
    ):
        backup_action = backup.add_parser(action, help=text)
        backup_action.add_argument("file")
        if action == "restore":
            backup_action.add_argument(
                "--erasures",
                metavar="FILE",
                help="then re-apply the erasures made since the backup (privacy erasures "
                "export of a surviving node, or the audit stream's lines)",
            )
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
    retention = sub.add_parser("retention", help="personal data kept only so long").add_subparsers(
        dest="retention", required=True
    )
    retention_run = retention.add_parser("run", help="apply the retention settings once")
    retention_run.add_argument("--as-of", help="ISO-8601 moment to apply them as of (default: now)")
    privacy = sub.add_parser("privacy", help="personal data: erasures after a restore")
    erasures = (
        privacy.add_subparsers(dest="privacy", required=True)
        .add_parser("erasures", help="the list of erased residents")
        .add_subparsers(dest="erasures", required=True)
    )
    erasures.add_parser("export", help="print this store's erasure list (JSON)")
    reapply = erasures.add_parser(
        "reapply", help="apply the erasures of a list (or audit stream lines) not applied here"
    )
    reapply.add_argument("file")
    sub.add_parser(
        "doctor", help="check the store, Redis, keys, certificates, clock and public URL"
    )
    rules = sub.add_parser("slo-rules", help="write the SLOs' Prometheus recording/alert rules")
    rules.add_argument("--out", default="deploy/prometheus", help="directory to write into")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        settings = Settings.from_env(toml_path=args.config)
    except SettingsError as exc:
        if args.command == "doctor":
            from propdev.doctor import settings_failure

            return settings_failure(exc)
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2
    from propdev.observability import configure_logging

    # A server's logs are its output (stdout, where a container's collector reads them); a
    # one-shot command's stdout is its answer (JSON a script parses), so its logs, the audit
    # entries it writes among them, go to stderr (collected all the same).
    servers = ("serve", "partner-sim", "utilities-sim")
    configure_logging(
        settings.log_level,
        node_id=settings.node_id,
        stream=sys.stdout if args.command in servers else sys.stderr,
    )
    if args.command == "backup":  # before the data dir is made: a restore wants it empty
        from propdev.backup.command import backup_command

        return backup_command(settings, args.backup, args.file, getattr(args, "erasures", None))
    if args.command == "doctor":  # read-only: it makes no data dir
        from propdev.doctor import doctor_command

        return doctor_command(settings)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    if args.command == "serve":
        return asyncio.run(_serve(settings))
    if args.command == "seed-demo":
        return asyncio.run(_seed(settings))
    if args.command == "partner-sim":
        from pathlib import Path

        from propdev.devkit import PartnerIdentity, serve_partner_sim

        if (args.client_cert is None) != (args.client_key is None):
            print("--client-cert and --client-key go together", file=sys.stderr)
            return 2
        identity = PartnerIdentity(
            args.partner,
            client_cert=Path(args.client_cert) if args.client_cert else None,
            client_key=Path(args.client_key) if args.client_key else None,
            webhook_secret=args.webhook_secret,
            api_key=args.api_key,
            callback_url=args.callback_url,
        )
        served = serve_partner_sim(
            settings, host=args.host, port=args.port, identity=identity, protocol=args.protocol
        )
        asyncio.run(_until_signal(served))
        return 0
    if args.command == "utilities-sim":
        from propdev.devkit import serve_housing_sim

        asyncio.run(_until_signal(serve_housing_sim(settings, host=args.host, port=args.port)))
        return 0
    if args.command == "pki" and args.pki == "revoke-partner":
        from propdev.admin_cli import revoke_partner_command

        return revoke_partner_command(settings, args.name)
    if args.command == "partner" and args.partner == "check":
        from propdev.partner_check import partner_check_command

        return partner_check_command(settings, args.name, args.device, args.wait)
    if args.command == "partner":
        return _signing_key(settings, args.name, args.format, args.alg)
    if args.command == "keys" and args.keys in ("rotate-signing", "signing"):
        from propdev.admin_cli import signing_keys_command

        return signing_keys_command(settings, args.keys, getattr(args, "retire_old", False))
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
    if args.command == "retention":
        from propdev.privacy import retention_command

        return asyncio.run(retention_command(settings, args.as_of))
    if args.command == "privacy":
        from propdev.privacy import erasures_export_command, reapply_command

        if args.erasures == "export":
            return asyncio.run(erasures_export_command(settings))
        return asyncio.run(reapply_command(settings, args.file))
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
    from propdev.storage import MigrationError

    try:
        await _until_signal(serve(settings, whole_process=True))
    except MigrationError as exc:  # a schema this release may not run on: say so, no traceback
        log.error("node_refused_schema", error=str(exc))
        print(f"propdev cannot start: {exc}", file=sys.stderr)
        return 1
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
    from propdev.admin_cli import append_cli

    allowed = networks or ["127.0.0.0/8", "::1/128"]
    db = Database(settings.database_url)
    try:
        await migrate(db)
        await append_cli(db, "partner.issue", reason=f"partner={name} allow_ip={','.join(allowed)}")
        cert = await register_partner(settings, db, name, allowed)
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
    if not signing_key_path(settings.data_dir, name).exists():  # about to be made: a change
        from propdev.admin_cli import cli_audit

        reason = f"partner={name} alg={config.algorithm}"
        asyncio.run(cli_audit(settings, "partner.signing_key", reason=reason))
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
