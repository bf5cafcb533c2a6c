"""Plates: one normal form, looked up only by key; one owner per plate."""

from __future__ import annotations

import pytest

from propdev.access import InvalidPlateError, PlateTakenError, VehicleNotFoundError
from propdev.access import normalise_plate as normalise
from propdev.access.vehicles import plate_hint
from tests.unit.access.conftest import Estate

CYRILLIC = "\u0410 123 \u0412\u0421 77"  # Cyrillic A, VE, ES: as typed on a Russian keyboard


def test_plates_are_normalised_to_one_form() -> None:
    assert normalise(CYRILLIC) == "A123BC77"
    assert normalise("a123bc-77") == "A123BC77"
    assert normalise(" A 123 BC 777 ") == "A123BC777"
    assert plate_hint("A123BC777") == "777"


@pytest.mark.parametrize(
    "raw", ["", "ABCD", "1234", "A1", "A123BC77777", "\u0416123\u0416\u041677", 42]
)
def test_what_is_not_a_plate_is_refused(raw: object) -> None:
    with pytest.raises(InvalidPlateError) as caught:
        normalise(raw)
    assert caught.value.field == "plate"


async def test_a_plate_belongs_to_one_resident_and_is_found_in_any_spelling(estate: Estate) -> None:
    vehicle, new = await estate.vehicles.register(estate.owner, CYRILLIC)
    assert new and vehicle.plate == "A123BC77"
    again, new_again = await estate.vehicles.register(estate.owner, "a123bc77")
    assert (again.id, new_again) == (vehicle.id, False)
    with pytest.raises(PlateTakenError):
        await estate.vehicles.register(estate.neighbour, "A 123 BC 77")
    found = await estate.vehicles.find(normalise("a-123-bc-77"))
    assert found is not None and found.owner_id == estate.owner
    assert [v.id for v in await estate.vehicles.of(estate.owner)] == [vehicle.id]
    assert await estate.vehicles.of(estate.neighbour) == []


async def test_lookups_use_the_key_not_the_stored_plate(estate: Estate) -> None:
    vehicle, _ = await estate.vehicles.register(estate.owner, "B777OP99")
    await estate.db.execute("UPDATE vehicles SET plate_sealed = 'sealed-elsewhere'")
    found = await estate.vehicles.find("B777OP99")
    assert found is not None and found.id == vehicle.id


async def test_removing_is_for_the_owner_only_and_frees_the_plate(estate: Estate) -> None:
    vehicle, _ = await estate.vehicles.register(estate.owner, "B777OP99")
    with pytest.raises(VehicleNotFoundError):
        await estate.vehicles.remove(estate.neighbour, vehicle.id)
    await estate.vehicles.remove(estate.owner, vehicle.id)
    assert await estate.vehicles.find("B777OP99") is None
    _, new = await estate.vehicles.register(estate.neighbour, "B777OP99")
    assert new


async def test_vehicle_changes_and_refusals_are_audited_by_id_never_by_plate(
    estate: Estate,
) -> None:
    from propdev.access import TooManyVehiclesError
    from propdev.access.vehicles import MAX_VEHICLES, plate_key
    from propdev.storage.audit import AuditLog

    vehicle, _ = await estate.vehicles.register(estate.owner, "B777OP99")
    await estate.vehicles.register(estate.owner, "b 777 op 99")  # already hers: no entry
    with pytest.raises(PlateTakenError):
        await estate.vehicles.register(estate.neighbour, "B777OP99")
    await estate.vehicles.remove(estate.owner, vehicle.id, actor="operator:op-1")
    with pytest.raises(VehicleNotFoundError):
        await estate.vehicles.remove(estate.owner, vehicle.id)
    for i in range(MAX_VEHICLES):
        await estate.vehicles.register(estate.neighbour, f"C{i}00CC77")
    with pytest.raises(TooManyVehiclesError):
        await estate.vehicles.register(estate.neighbour, "E999EE77")

    every = [
        dict(r)
        for r in await estate.db.fetch_all(
            "SELECT actor, action, decision, reason, subject FROM audit ORDER BY id"
        )
    ]
    rows = [r for r in every if r["decision"] == "granted"]
    assert [(r["actor"], r["action"]) for r in rows[:2]] == [
        (f"user:{estate.owner}", "vehicle.register"),
        ("operator:op-1", "vehicle.remove"),
    ]
    assert [r["action"] for r in rows[2:]] == ["vehicle.register"] * MAX_VEHICLES
    assert (
        rows[0]["reason"] == rows[1]["reason"] == f"vehicle_id={vehicle.id} owner_id={estate.owner}"
    )
    # Refused: the plate someone else's (never whose), then one vehicle too many.
    neighbour = estate.neighbour
    assert [r for r in every if r["decision"] == "denied"] == [
        {
            "actor": f"user:{neighbour}",
            "action": "vehicle.register",
            "decision": "denied",
            "reason": f"{code} owner_id={neighbour}",
            "subject": neighbour,
        }
        for code in ("plate_taken", "too_many_vehicles")
    ]
    text = repr(every)
    assert "B777OP99" not in text and plate_key("B777OP99") not in text
    assert estate.owner not in text.split("plate_taken")[1].split("}")[0]
    assert await AuditLog(estate.db).verify() == (True, len(every), None)
