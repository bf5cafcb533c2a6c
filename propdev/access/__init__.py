"""Access logic, ours: rights with schedules, guest passes, vehicles and plates, the opening
pipeline every credential goes through (``opening``) and its domain outcome (``outcome``), and
push notifications."""

from __future__ import annotations

from propdev.access.errors import (
    AccessError,
    InvalidFieldError,
    InvalidPlateError,
    InvalidScheduleError,
    NotEntitledError,
    PassNotFoundError,
    PlateTakenError,
    TooManyPassesError,
    TooManyVehiclesError,
    VehicleNotFoundError,
)
from propdev.access.lockout import LOCKED_OUT, KeypadLockout, KeypadPolicy, Lockout
from propdev.access.notify import Notifier, Presence, Pushes
from propdev.access.opening import (
    MAX_EVENT_AGE,
    Opening,
    OpenRequest,
    PendingOpen,
    Publisher,
    Via,
    command_id_for,
)
from propdev.access.outcome import OpenOutcome, Reason, Result, failed, granted, refused
from propdev.access.passes import GuestPass, GuestPasses, PassCodes, PassRequest
from propdev.access.rules import AccessRules, Clock, Decision
from propdev.access.schedule import Schedule, Window
from propdev.access.services import AccessServices, pass_code_key_path
from propdev.access.shared_lockout import RedisKeypadLockout
from propdev.access.trail import unanswered_open
from propdev.access.vehicles import (
    Vehicle,
    Vehicles,
    normalise_plate,
    plate_hint,
    plate_key,
)

__all__ = (
    "LOCKED_OUT",
    "MAX_EVENT_AGE",
    "AccessError",
    "AccessRules",
    "AccessServices",
    "Clock",
    "Decision",
    "GuestPass",
    "GuestPasses",
    "InvalidFieldError",
    "InvalidPlateError",
    "InvalidScheduleError",
    "KeypadLockout",
    "KeypadPolicy",
    "Lockout",
    "NotEntitledError",
    "Notifier",
    "OpenOutcome",
    "OpenRequest",
    "Opening",
    "PassCodes",
    "PassNotFoundError",
    "PassRequest",
    "PendingOpen",
    "PlateTakenError",
    "Presence",
    "Publisher",
    "Pushes",
    "Reason",
    "RedisKeypadLockout",
    "Result",
    "Schedule",
    "TooManyPassesError",
    "TooManyVehiclesError",
    "Vehicle",
    "VehicleNotFoundError",
    "Vehicles",
    "Via",
    "Window",
    "command_id_for",
    "failed",
    "granted",
    "normalise_plate",
    "pass_code_key_path",
    "plate_hint",
    "plate_key",
    "refused",
    "unanswered_open",
)
