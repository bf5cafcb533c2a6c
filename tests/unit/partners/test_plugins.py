"""Adapters as plug-ins: the built-ins and third parties through the same entry-point group."""

from __future__ import annotations

import importlib.metadata
import ssl
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest

from propdev.partners import (
    BUILTINS,
    GROUP,
    AcmeAdapter,
    Adapters,
    AdapterSpec,
    ApiKey,
    UnknownAdapterError,
    VendorHttpAdapter,
)

ROOT = Path(__file__).resolve().parents[3]

THIRD_PARTY = """
from propdev.partners import DeviceInfo, DeviceStatus, OpenResult


class BoltAdapter:
    def __init__(self, spec):
        self.spec = spec

    @classmethod
    def from_spec(cls, spec):
        return cls(spec)

    @property
    def partner_id(self):
        return self.spec.partner_id

    async def open(self, device_id, *, request_id, traceparent=None):
        return OpenResult(device_id, "bolt-" + request_id)

    async def device_status(self, device_id):
        return DeviceStatus(device_id, True, "locked")

    async def list_devices(self):
        return [DeviceInfo("b-1", "door", "Bolt door")]

    async def close(self):
        pass


class NotAnAdapter:
    pass
"""


def spec(partner_id: str = "p") -> AdapterSpec:
    return AdapterSpec(
        partner_id=partner_id,
        base_url="https://vendor.example",
        ssl_context=ssl.create_default_context(),
        timeout=2.0,
        credential=ApiKey("k"),
    )


@pytest.fixture
def bolt_distribution(tmp_path: Path) -> Iterator[Path]:
    """A package installed the way pip leaves one: a module and a ``*.dist-info`` whose
    ``entry_points.txt`` declares adapters in ``propdev.adapters``."""
    (tmp_path / "bolt_propdev.py").write_text(THIRD_PARTY)
    info = tmp_path / "bolt_propdev-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: bolt-propdev\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(
        f"[{GROUP}]\n"
        "bolt = bolt_propdev:BoltAdapter\n"
        "broken = bolt_propdev:Missing\n"
        "hollow = bolt_propdev:NotAnAdapter\n"
    )
    sys.path.insert(0, str(tmp_path))
    try:
        yield tmp_path
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("bolt_propdev", None)


def test_the_built_ins_are_the_entry_points_pyproject_declares() -> None:
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["entry-points"]
    assert declared[GROUP] == {point.name: point.value for point in BUILTINS}


def test_the_built_ins_are_there_without_any_installed_entry_point() -> None:
    adapters = Adapters.discover(entry_points=lambda: [])
    assert adapters.names() == ["acme", "simulator", "vendor"]
    assert isinstance(adapters.build("simulator", spec()), VendorHttpAdapter)
    assert isinstance(adapters.build("acme", spec()), AcmeAdapter)


def test_a_third_party_adapter_is_found_through_its_distribution(bolt_distribution: Path) -> None:
    adapters = Adapters.discover()
    assert "bolt" in adapters.names()
    adapter = adapters.build("bolt", spec("bolt-vendor"))
    assert adapter.partner_id == "bolt-vendor"
    assert type(adapter).__module__ == "bolt_propdev"
    # One that cannot be imported, or is no adapter class, is left out; the others stay.
    assert "broken" not in adapters and "hollow" not in adapters
    assert {"simulator", "acme"} <= set(adapters.names())


async def test_a_third_party_adapter_answers_as_a_partner_adapter(bolt_distribution: Path) -> None:
    adapter = Adapters.discover().build("bolt", spec())
    result = await adapter.open("b-1", request_id="r-1")
    assert (result.device_id, result.vendor_command_id) == ("b-1", "bolt-r-1")


def test_an_unknown_adapter_names_the_registered_ones() -> None:
    adapters = Adapters.discover(entry_points=lambda: [])
    with pytest.raises(UnknownAdapterError) as caught:
        adapters.build("nope", spec())
    assert caught.value.known == ["acme", "simulator", "vendor"]


def test_installed_entry_points_are_read_from_the_group(bolt_distribution: Path) -> None:
    names = {p.name for p in importlib.metadata.entry_points(group=GROUP)}
    assert "bolt" in names
