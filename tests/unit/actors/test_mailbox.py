from __future__ import annotations

import pytest

from propdev.actors import Mailbox, MailboxFull, MailboxStatistics
from tests.unit.actors.conftest import running


def test_a_mailbox_is_first_in_first_out() -> None:
    mailbox: Mailbox[int] = Mailbox(3)
    for item in (1, 2, 3):
        mailbox.put_nowait(item)
    assert [mailbox.get_nowait() for _ in range(3)] == [1, 2, 3]


def test_put_nowait_on_a_full_mailbox_raises_mailbox_full() -> None:
    mailbox: Mailbox[int] = Mailbox(2)
    mailbox.put_nowait(1)
    mailbox.put_nowait(2)
    with pytest.raises(MailboxFull):
        mailbox.put_nowait(3)
    assert len(mailbox) == 2


def test_statistics_report_depth_capacity_and_waiters() -> None:
    mailbox: Mailbox[int] = Mailbox(5)
    mailbox.put_nowait(1)
    assert mailbox.statistics() == MailboxStatistics(depth=1, capacity=5, waiters=0)


def test_push_front_redelivers_first_even_past_capacity() -> None:
    mailbox: Mailbox[int] = Mailbox(1)
    mailbox.put_nowait(2)
    mailbox.push_front(1)
    assert mailbox.drain() == [1, 2]


def test_an_empty_mailbox_releases_its_storage() -> None:
    mailbox: Mailbox[int] = Mailbox(4)
    mailbox.put_nowait(1)
    mailbox.get_nowait()
    mailbox.release()
    assert mailbox._items is None
    assert not mailbox


async def test_put_waits_for_room_and_get_wakes_it() -> None:
    mailbox: Mailbox[int] = Mailbox(1)
    mailbox.put_nowait(1)
    waiting = await running(mailbox.put(2))
    assert not waiting.done()
    assert mailbox.statistics().waiters == 1
    assert mailbox.get_nowait() == 1
    await waiting
    assert mailbox.drain() == [2]


async def test_fail_waiters_raises_in_waiting_senders() -> None:
    mailbox: Mailbox[int] = Mailbox(1)
    mailbox.put_nowait(1)
    waiting = await running(mailbox.put(2))
    mailbox.fail_waiters(RuntimeError("closed"))
    with pytest.raises(RuntimeError, match="closed"):
        await waiting
