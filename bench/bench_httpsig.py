"""RFC 9421 signatures on partner calls: what they cost, against baselines of the same run.

    .venv/bin/python bench/bench_httpsig.py [--rounds 3] [--seconds 1] [--quick] [--json PATH]

* S1 ``RequestSigner.sign`` of a vendor open (POST, ``Idempotency-Key``, no body: its
  signature base, Ed25519, the headers written) vs a bare Ed25519
  signature of a signature base of the same size (cryptography, key loaded): the price of the
  signature base and headers over the cryptography itself, >= 0.33 (at most 3 signatures' cost);
* S2 door opens/s over HTTPS (``VendorHttpAdapter`` → the simulator served by
  ``run_partner_sim``, 16 in flight, client and server in this process) with our signatures
  (the simulator not checking them: our cost only) vs the same without, >= 0.8;
* S3 the same with the simulator verifying (the library's verifier: a vendor's cost, here
  sharing our process and core): no goal, so "info".

Rounds interleave baseline and candidates (``bench.common.interleave``, >= 3); the ratio is
taken per round, its median and spread reported. An open that raises is an error and fails
the figure; a signature the simulator refused is an error of S3.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cryptography.hazmat.primitives.asymmetric import ed25519

from bench.bench_micro import rate
from bench.common import Goal, ainterleave, figure, interleave, print_figures, write_json
from propdev.config import PartnerSigning, Settings
from propdev.devkit import VendorSimulator, run_partner_sim
from propdev.partners import VendorHttpAdapter, vendor_api_key
from propdev.partners.httpsig import RequestSigner, RequestVerifier, partner_key
from propdev.pki import client_context, ensure_ca

URL = "https://127.0.0.1:9443/vendor/v1/devices/sim-door-1/open"
CONCURRENCY = 16


def sign_cost(rounds: int, seconds: float) -> dict[str, Any]:
    key = ed25519.Ed25519PrivateKey.generate()
    signer = RequestSigner(key, algorithm="ed25519", key_id="k" * 43)
    sample = signer.sign("POST", URL, {"Idempotency-Key": "0" * 32})
    base = (sample["Signature-Input"] + URL + "0" * 32).encode()  # about the same length

    def bare() -> None:
        key.sign(base)

    def ours() -> None:
        signer.sign("POST", URL, {"Idempotency-Key": "0" * 32})

    runs = interleave(
        rounds, {"bare": lambda: rate(bare, seconds), "ours": lambda: rate(ours, seconds)}
    )
    return figure(
        "S1",
        "RequestSigner.sign, a vendor open",
        runs.results["ours"],
        runs.results["bare"],
        "bare Ed25519 sign of a same-size base",
        "signs/s",
        Goal(0.33),
    )


async def opens_per_second(adapter: VendorHttpAdapter, seconds: float) -> tuple[float, int]:
    """(successful opens per second, opens that raised) with ``CONCURRENCY`` in flight."""
    done = failed = 0
    deadline = time.perf_counter() + seconds
    counter = iter(range(10**9))

    async def worker() -> None:
        nonlocal done, failed
        while time.perf_counter() < deadline:
            try:
                await adapter.open("sim-door-1", request_id=f"r-{next(counter)}")
            except Exception:  # counted: a figure with errors fails
                failed += 1
            else:
                done += 1

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
    return done / (time.perf_counter() - start), failed


async def open_cost(rounds: int, seconds: float, data_dir: Path) -> list[dict[str, Any]]:
    settings = Settings(data_dir=data_dir).resolved()
    ensure_ca(settings.pki_dir)
    signing = dataclasses.replace(settings, partner_signing=(PartnerSigning("simulator"),))
    sim = VendorSimulator()
    server = await run_partner_sim(signing, port=0, sim=sim)
    verifier = sim.signatures
    assert isinstance(verifier, RequestVerifier)
    signer = RequestSigner.for_key(partner_key(data_dir, PartnerSigning("simulator")))

    def adapter(with_signer: RequestSigner | None) -> VendorHttpAdapter:
        return VendorHttpAdapter(
            "simulator",
            server.url,
            ssl_context=client_context(settings.pki_dir),
            api_key=vendor_api_key(data_dir),
            timeout=10,
            signer=with_signer,
        )

    plain, signed = adapter(None), adapter(signer)
    errors = {"plain": 0, "signed": 0, "verified": 0}

    def step(name: str, which: VendorHttpAdapter, verify: bool) -> Any:
        async def one() -> float:
            sim.signatures = verifier if verify else None
            sim.reset()
            per_s, failed = await opens_per_second(which, seconds)
            errors[name] += failed
            return per_s

        return one

    try:
        sim.signatures = None
        await opens_per_second(plain, 0.3)  # warm both connection pools
        await opens_per_second(signed, 0.3)
        runs = await ainterleave(
            rounds,
            {
                "plain": step("plain", plain, False),
                "signed": step("signed", signed, False),
                "verified": step("verified", signed, True),
            },
        )
    finally:
        await plain.close()
        await signed.close()
        await server.close()
        await sim.close()
    refused = verifier.snapshot()["refused"]
    return [
        figure(
            "S2",
            "HTTPS door opens, signed (vendor not verifying)",
            runs.results["signed"],
            runs.results["plain"],
            "the same opens unsigned",
            "opens/s",
            Goal(0.8),
            errors=errors["signed"],
            baseline_errors=errors["plain"],
        ),
        figure(
            "S3",
            "HTTPS door opens, signed and verified by the simulator (same process)",
            runs.results["verified"],
            runs.results["plain"],
            "the same opens unsigned",
            "opens/s",
            None,  # no goal: info
            errors=errors["verified"] + sum(refused.values()),  # refused signatures
            baseline_errors=errors["plain"],
        ),
    ]


async def run(rounds: int, seconds: float) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        figures = [sign_cost(rounds, seconds), *await open_cost(rounds, seconds * 2, Path(tmp))]
    return {"benchmark": "bench_httpsig", "rounds": rounds, "figures": figures}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=1.0)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    seconds = 0.5 if args.quick else args.seconds
    result = asyncio.run(run(args.rounds, seconds))
    print_figures(result["figures"])
    write_json(args.json, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
