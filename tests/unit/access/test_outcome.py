"""An open's domain outcome: its words, its dict form (stored under an idempotency key and sent
between nodes), the command lifecycle's reasons, and answers stored before outcomes were."""

from __future__ import annotations

import pytest

from propdev.access.outcome import (
    OpenOutcome,
    Reason,
    Result,
    failed,
    granted,
    refused,
    stored_answer,
)

EVERY_FIELD = OpenOutcome(
    Result.REFUSED,
    "ap-1",
    "vendor_refused:denied",
    command_id="cmd-1",
    vendor_command_id="v-1",
    vendor_reason="denied",
    retry_after=2.5,
    detail="the vendor said no",
    replayed=True,
    online=False,
)


def test_the_results_and_reasons_are_the_words_clients_see() -> None:
    assert [r.value for r in Result] == ["granted", "refused", "failed"]
    assert Reason.VENDOR_REFUSED == "vendor_refused"
    assert Reason.PARTNER_CIRCUIT_OPEN == "partner_circuit_open"


def test_an_outcome_survives_its_dict_form_field_for_field() -> None:
    data = EVERY_FIELD.to_dict()
    assert data == {
        "result": "refused",
        "access_point_id": "ap-1",
        "reason": "vendor_refused:denied",
        "command_id": "cmd-1",
        "vendor_command_id": "v-1",
        "vendor_reason": "denied",
        "retry_after": 2.5,
        "detail": "the vendor said no",
        "replayed": True,
        "online": False,
    }
    assert OpenOutcome.from_dict(data) == EVERY_FIELD
    assert type(data["result"]) is str


def test_a_minimal_dict_reads_with_the_defaults() -> None:
    outcome = OpenOutcome.from_dict({"result": "failed", "access_point_id": 7})
    assert outcome == OpenOutcome(Result.FAILED, "7")
    assert outcome.reason == "" and outcome.detail == "" and outcome.replayed is False
    assert outcome.online is None and outcome.retry_after is None


def test_a_dict_with_values_of_other_types_reads_as_the_outcome_types() -> None:
    outcome = OpenOutcome.from_dict(
        {"result": "granted", "access_point_id": "ap", "reason": 0, "detail": 1, "replayed": 1}
    )
    assert (outcome.reason, outcome.detail, outcome.replayed) == ("0", "1", True)
    assert outcome.result is Result.GRANTED


def test_an_unknown_result_is_an_error() -> None:
    with pytest.raises(ValueError):
        OpenOutcome.from_dict({"result": "maybe", "access_point_id": "ap"})


def test_only_a_granted_outcome_is_granted() -> None:
    assert granted("ap", "c", None).granted
    assert not refused("ap", Reason.NO_RIGHT).granted
    assert not failed("ap", Reason.PARTNER_TIMEOUT).granted


def test_granted_names_its_commands_and_says_the_device_is_online() -> None:
    assert granted("ap", "c", "v") == OpenOutcome(
        Result.GRANTED, "ap", "", command_id="c", vendor_command_id="v", online=True
    )


def test_refused_and_failed_carry_their_reason_and_fields() -> None:
    assert refused("ap", "no_right", command_id="c") == OpenOutcome(
        Result.REFUSED, "ap", "no_right", command_id="c"
    )
    assert failed("ap", "partner_busy", retry_after=1.0) == OpenOutcome(
        Result.FAILED, "ap", "partner_busy", retry_after=1.0
    )


def test_a_replay_is_the_same_outcome_marked_replayed() -> None:
    original = granted("ap", "c", "v")
    replay = original.as_replay()
    assert replay.replayed and not original.replayed
    assert replay == OpenOutcome.from_dict({**original.to_dict(), "replayed": True})


@pytest.mark.parametrize(
    ("outcome", "lifecycle"),
    [
        (failed("ap", "device_offline"), "offline"),
        (failed("ap", "device_jammed"), "jammed"),
        (failed("ap", "device_busy"), "busy"),
        (failed("ap", Reason.PARTNER_TIMEOUT), "timeout"),
        (failed("ap", Reason.PARTNER_UNAVAILABLE), "unavailable"),
        (refused("ap", "vendor_refused:denied", vendor_reason="denied"), "refused"),
        (refused("ap", "vendor_refused:device_jammed", vendor_reason="device_jammed"), "jammed"),
        (failed("ap", Reason.PARTNER_CIRCUIT_OPEN), "partner_circuit_open"),
        (refused("ap", "vendor_refused:odd", vendor_reason="odd"), "odd"),
    ],
)
def test_the_command_lifecycle_names_a_failure_by_the_vendors_reason_first(
    outcome: OpenOutcome, lifecycle: str
) -> None:
    assert outcome.lifecycle_reason == lifecycle


def test_a_stored_outcome_is_read_back_as_it_was() -> None:
    assert stored_answer(403, EVERY_FIELD.to_dict(), "elsewhere") == EVERY_FIELD


def test_an_old_stored_200_is_a_grant_of_its_command() -> None:
    body = {"access_point_id": "ap-9", "command_id": "c-1", "vendor_command_id": "v-1"}
    assert stored_answer(200, body, "ap-x") == granted("ap-9", "c-1", "v-1")
    assert stored_answer(200, {"command_id": 5}, "ap-x") == granted("ap-x", "5", None)


def test_an_old_stored_403_is_a_vendor_refusal_with_its_reason() -> None:
    body = {"access_point_id": "ap-9", "command_id": "c-1", "reason": "device_jammed"}
    assert stored_answer(403, body, "ap-x") == OpenOutcome(
        Result.REFUSED,
        "ap-9",
        "vendor_refused:device_jammed",
        command_id="c-1",
        vendor_reason="device_jammed",
    )


def test_an_old_stored_403_without_a_reason_was_a_plain_denial() -> None:
    outcome = stored_answer(403, {}, "ap-x")
    assert outcome == OpenOutcome(
        Result.REFUSED, "ap-x", "vendor_refused:denied", vendor_reason="denied"
    )
