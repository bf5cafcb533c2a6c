"""``run.py partner check NAME``: a short scripted session against a vendor's sandbox, what an
integrator runs before go-live. One line per step, ``PASS`` or ``FAIL`` with what was seen;
exit 0 when every step passed, 1 otherwise (2: no such partner).

The vendor is reached exactly as the nodes reach it: the registry's adapter, base URL, server
CA and credential (``propdev.management.partners``). Steps, in order:

- ``status``: its device list, and the status of the device checked (``--device``, else its
  first door);
- ``open``: that device opens. A vendor that answers the open itself (the simulator's 200)
  answers within the partner's timeout. A vendor that confirms later (acme: 202 + ticket, then
  a ``command_result`` callback) confirms to the nodes, not to this command: the check waits,
  up to ``--wait`` seconds, for a node to record that callback for its own request id and
  hands it to the adapter as a node would (the open then ends with the vendor's result);
  none in time is a ``FAIL`` that says the vendor accepted and never confirmed;
- ``idempotent retry``: the same open again (the same request id, ``Idempotency-Key``) answers
  the same vendor command, not a second one;
- ``callback round trip``: after the open, a callback about that device reaches our node
  within ``--wait`` seconds (recorded in the store by whichever node took it);
- ``signed webhook``: that callback was accepted, so its Standard Webhooks signature verified
  with the partner's webhook secret (and its mTLS certificate, bound token and address were
  the partner's): a refused one is never recorded.

The steps after a failed one that needs it are reported ``FAIL`` as not run.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass

from propdev.config import Settings
from propdev.management import PartnerRegistry, adapter_spec, partner_url
from propdev.partners import (
    Adapters,
    Confirmation,
    ConfirmsByCallback,
    PartnerAdapter,
    PartnerError,
    PartnerGateway,
)
from propdev.security.crypto import open_vault
from propdev.storage import Database, migrate

POLL = 0.2
AFTER_OPEN = ("idempotent retry", "callback round trip", "signed webhook")


@dataclass(frozen=True, slots=True)
class Step:
    name: str
    ok: bool
    detail: str

    def line(self) -> str:
        return f"{'PASS' if self.ok else 'FAIL'} {self.name}: {self.detail}"


async def _status(adapter: PartnerAdapter, device: str | None) -> tuple[Step, str | None]:
    try:
        devices = await adapter.list_devices()
        chosen = device or next((d.device_id for d in devices if d.kind == "door"), None)
        if chosen is None:
            return Step("status", False, f"{len(devices)} devices, no door to check"), None
        status = await adapter.device_status(chosen)
    except PartnerError as exc:
        return Step("status", False, f"{type(exc).__name__}: {exc}"), None
    detail = f"{len(devices)} devices; {chosen} online={status.online} state={status.state}"
    return Step("status", status.online, detail), chosen


async def _callback(db: Database, name: str, device: str, since: float, wait: float) -> bool:
    deadline = time.monotonic() + wait
    while True:
        row = await db.fetch_one(
            "SELECT type FROM partner_events WHERE partner_id = :p AND device_id = :d "
            "AND received_at >= :t",
            p=name,
            d=device,
            t=since,
        )
        if row is not None:
            return True
        if time.monotonic() >= deadline:
            return False
        await asyncio.sleep(POLL)


async def run_check(
    settings: Settings, name: str, *, device: str | None = None, wait: float = 10.0
) -> list[Step] | None:
    """The steps' verdicts; None when ``name`` is no registered partner."""
    db = Database(settings.database_url)
    try:
        await migrate(db)
        await open_vault(settings, db)
        registry = PartnerRegistry(
            db, adapters=lambda: [], pki_dir=settings.pki_dir, announce=_nobody
        )
        record = await registry.load(name)
        if record is None:
            return None
        url = partner_url(record, settings)
        if url is None:
            return [Step("status", False, "no base URL to reach the vendor at")]
        spec = adapter_spec(record, settings, url)
        try:
            built = Adapters.discover().build(record.adapter, spec)
        except PartnerError as exc:
            return [Step("status", False, str(exc))]
        # Each call bounded by the partner's timeout, as on the nodes; no breaker in the way.
        # An open confirmed later waits for the confirming callback (``--wait``) instead.
        confirms = built if isinstance(built, ConfirmsByCallback) else None
        timeout = spec.timeout if confirms is None else max(spec.timeout, wait)
        adapter = PartnerGateway(built, timeout=timeout, breaker_failures=1000, breaker_reset=1.0)
        try:
            return await _session(db, adapter, name, device, wait, confirms)
        finally:
            await adapter.close()
    finally:
        await db.close()


async def _nobody(name: str) -> None:
    """The check changes nothing, so it announces nothing."""


async def _confirmation(
    db: Database, name: str, device: str, request_id: str, since: float
) -> Confirmation:
    """The vendor's ``command_result`` of our open, once a node has recorded it (polls; the
    caller bounds the wait)."""
    while True:
        row = await db.fetch_one(
            "SELECT vendor_command_id, result, error FROM partner_events WHERE partner_id = :p "
            "AND device_id = :d AND type = 'command_result' AND command_ref = :r "
            "AND received_at >= :t",
            p=name,
            d=device,
            r=request_id,
            t=since,
        )
        if row is not None and row["vendor_command_id"]:
            ok = row["result"] == "done"
            return Confirmation(str(row["vendor_command_id"]), ok, row["error"])
        await asyncio.sleep(POLL)


async def _open(
    db: Database,
    adapter: PartnerAdapter,
    confirms: ConfirmsByCallback | None,
    where: tuple[str, str, float],
    request_id: str,
    wait: float,
) -> tuple[Step, str | None]:
    """The ``open`` step and the vendor's command id: its answer, or (confirmed later) its
    confirming callback."""
    name, device, since = where
    if confirms is None:
        try:
            first = await adapter.open(device, request_id=request_id)
        except PartnerError as exc:
            return Step("open", False, f"{type(exc).__name__}: {exc}"), None
        opened = f"{device} opened, vendor command {first.vendor_command_id}"
        return Step("open", True, opened), first.vendor_command_id
    opening = asyncio.ensure_future(adapter.open(device, request_id=request_id))
    watching = asyncio.ensure_future(_confirmation(db, name, device, request_id, since))
    try:
        done, _ = await asyncio.wait(
            {opening, watching}, timeout=wait, return_when=asyncio.FIRST_COMPLETED
        )
        if watching in done:
            confirms.confirm(watching.result())  # as a node hands it to the waiting open
            await asyncio.wait({opening}, timeout=wait)
        if not opening.done():
            silent = (
                f"no confirming callback (command_result for request {request_id}) reached "
                f"the node within {wait:g}s: the open is not confirmed (check the vendor's "
                "callback URL, certificate and webhook secret)"
            )
            return Step("open", False, silent), None
        try:
            first = opening.result()
        except PartnerError as exc:
            said = " (its confirming callback)" if watching in done else ""
            return Step("open", False, f"{type(exc).__name__}: {exc}{said}"), None
        opened = f"{device} opened, vendor command {first.vendor_command_id}, confirmed by callback"
        return Step("open", True, opened), first.vendor_command_id
    finally:
        for task in (opening, watching):
            task.cancel()
        await asyncio.gather(opening, watching, return_exceptions=True)


async def _session(
    db: Database,
    adapter: PartnerAdapter,
    name: str,
    device: str | None,
    wait: float,
    confirms: ConfirmsByCallback | None = None,
) -> list[Step]:
    steps: list[Step] = []
    status, chosen = await _status(adapter, device)
    steps.append(status)
    if chosen is None:
        return [
            *steps,
            *_not_run("open", "idempotent retry", "callback round trip", "signed webhook"),
        ]
    request_id = f"check-{uuid.uuid4()}"
    since = time.time() - 1.0  # the node's clock may lag ours a little
    opened, first_command = await _open(
        db, adapter, confirms, (name, chosen, since), request_id, wait
    )
    steps.append(opened)
    if first_command is None:
        return [*steps, *_not_run(*AFTER_OPEN)]
    try:
        again = await adapter.open(chosen, request_id=request_id)
        same = again.vendor_command_id == first_command
        steps.append(
            Step(
                "idempotent retry",
                same,
                "the same command answered"
                if same
                else f"a second command {again.vendor_command_id} for the same request id",
            )
        )
    except PartnerError as exc:
        steps.append(Step("idempotent retry", False, f"{type(exc).__name__}: {exc}"))
    arrived = await _callback(db, name, chosen, since, wait)
    steps.append(
        Step(
            "callback round trip",
            arrived,
            f"a callback about {chosen} reached the node"
            if arrived
            else f"no callback about {chosen} reached the node within {wait:g}s",
        )
    )
    steps.append(
        Step(
            "signed webhook",
            arrived,
            "accepted: signature, client certificate, bound token and address verified"
            if arrived
            else "none accepted (not sent, or refused: check the webhook secret and certificate)",
        )
    )
    return steps


def _not_run(*names: str) -> list[Step]:
    return [Step(n, False, "not run") for n in names]


def partner_check_command(settings: Settings, name: str, device: str | None, wait: float) -> int:
    steps = asyncio.run(run_check(settings, name, device=device, wait=wait))
    if steps is None:
        print(f"no partner {name!r} is registered")
        return 2
    for step in steps:
        print(step.line())
    failed = [s for s in steps if not s.ok]
    print(f"{len(steps) - len(failed)} passed, {len(failed)} failed")
    return 1 if failed else 0
