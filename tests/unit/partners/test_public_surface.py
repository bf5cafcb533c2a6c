"""``propdev.partners``, ``propdev.housing`` and ``propdev.devkit`` re-export their public names
with a tuple ``__all__``."""

from __future__ import annotations

import types

import pytest

import propdev.devkit
import propdev.devkit.vendor_sim
import propdev.housing
import propdev.partners


@pytest.mark.parametrize(
    "package", [propdev.partners, propdev.housing, propdev.devkit, propdev.devkit.vendor_sim]
)
def test_every_public_name_is_exported_in_a_tuple(package: types.ModuleType) -> None:
    assert isinstance(package.__all__, tuple)
    assert len(set(package.__all__)) == len(package.__all__)
    for name in package.__all__:
        assert getattr(package, name) is not None, name
