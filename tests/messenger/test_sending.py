"""Socket sends: pushed from the event loop after commit, stored in batches."""

from __future__ import annotations

import asyncio
import json

import pytest
from django.db import transaction

from realtime.batching import BatchQueue
from sessions_app.messenger import messaging, notify, sending
from sessions_app.messenger.models import ConversationMessage
from sessions_app.messenger.sending import new_send_queue

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(30)]


@pytest.fixture
def heard(monkeypatch):
    """``(group, frame type, seq)`` of every broadcast, and whether the database
    thread was inside a transaction when it was sent (never: after commit)."""
    got = []

    async def record(group, text, *, exclude=None, seq=None):
        got.append((group, json.loads(text)["type"], seq))

    async def record_event(group, event):
        got.append((group, event["type"], None))

    monkeypatch.setattr(notify, "broadcast", record)
    monkeypatch.setattr(notify, "publish_event", record_event)
    return got


async def test_deferred_pushes_from_the_loop_after_commit(group, alice, heard):
    def send_and_look():
        message, _ = messaging.message_send(
            conversation_id=group.pk, user=alice, content="hi"
        )
        return message, list(heard)  # what was pushed by the time it returned

    message, during = await notify.deferred(send_and_look)
    assert during == []  # nothing from the database thread
    assert [(t, s) for _, t, s in heard] == [
        ("message.new", message.seq),
        ("messenger.activity", None),
    ]


async def test_a_rolled_back_write_pushes_nothing(group, alice, heard):
    def send_then_fail():
        with transaction.atomic():
            messaging.message_send(conversation_id=group.pk, user=alice, content="x")
            raise RuntimeError("after the send, in the same transaction")

    with pytest.raises(RuntimeError):
        await notify.deferred(send_then_fail)
    assert heard == []
    assert not await ConversationMessage.objects.filter(conversation=group).aexists()


async def test_a_committed_write_pushes_though_the_call_then_fails(group, alice, heard):
    def send_then_fail():
        messaging.message_send(conversation_id=group.pk, user=alice, content="x")
        raise RuntimeError("after the commit")

    with pytest.raises(RuntimeError):
        await notify.deferred(send_then_fail)
    assert [t for _, t, _ in heard] == ["message.new", "messenger.activity"]


async def test_a_failed_push_is_logged_and_the_others_go(
    group, alice, monkeypatch, caplog
):
    got = []

    async def flaky(group_name, text, *, exclude=None, seq=None):
        raise ConnectionError("layer down")

    async def record_event(group_name, event):
        got.append(event["type"])

    monkeypatch.setattr(notify, "broadcast", flaky)
    monkeypatch.setattr(notify, "publish_event", record_event)
    message, created = await notify.deferred(
        messaging.message_send, conversation_id=group.pk, user=alice, content="x"
    )
    assert created and got == ["messenger.activity"]
    assert "push failed" in caplog.text


async def test_sends_that_queue_meanwhile_share_one_batch(
    group, alice, bob, carol, heard, monkeypatch
):
    batches = []
    real = messaging.messages_send

    def spy(*, sends):
        batches.append(len(sends))
        return real(sends=sends)

    monkeypatch.setattr(sending, "messages_send", spy)
    queue = new_send_queue()
    first = asyncio.ensure_future(
        queue.submit(conversation_id=group.pk, user=alice, content="one")
    )
    await asyncio.sleep(0)  # the first batch is on its way: the rest wait for it
    rest = [
        queue.submit(conversation_id=group.pk, user=bob, content="two"),
        queue.submit(conversation_id=group.pk, user=carol, content="stranger"),
        queue.submit(conversation_id=group.pk, user=alice, content="three"),
    ]
    results = await asyncio.gather(first, *rest, return_exceptions=True)
    assert batches == [1, 3]
    one, two, refused, three = results
    assert [one[0].seq, two[0].seq, three[0].seq] == [1, 2, 3]
    assert type(refused).__name__ == "NotFound"
    assert [s for _, t, s in heard if t == "message.new"] == [1, 2, 3]
    assert queue.task is None and queue.waiting == []


async def test_a_batch_that_fails_fails_each_send_and_the_queue_goes_on(
    group, alice, monkeypatch
):
    def broken(*, sends):
        raise RuntimeError("database thread gone")

    monkeypatch.setattr(sending, "messages_send", broken)
    queue = new_send_queue()
    with pytest.raises(RuntimeError):
        await queue.submit(conversation_id=group.pk, user=alice, content="x")
    monkeypatch.setattr(sending, "messages_send", messaging.messages_send)
    message, created = await queue.submit(
        conversation_id=group.pk, user=alice, content="y"
    )
    assert created and message.seq == 1


async def test_a_sender_gone_meanwhile_is_skipped(group, alice, bob, heard):
    queue = new_send_queue()
    first = asyncio.ensure_future(
        queue.submit(conversation_id=group.pk, user=alice, content="one")
    )
    await asyncio.sleep(0)
    gone = asyncio.ensure_future(
        queue.submit(conversation_id=group.pk, user=bob, content="two")
    )
    await asyncio.sleep(0)
    gone.cancel()  # its socket closed while the first batch was stored
    drain = queue.task
    assert (await first)[0].seq == 1
    await drain
    # Stored and pushed all the same: the write was made for a socket now gone.
    assert [s for _, t, s in heard if t == "message.new"] == [1, 2]


async def test_cancelling_the_queue_cancels_its_batch(group, alice, monkeypatch):
    started = asyncio.Event()

    async def stuck(service, /, **kwargs):
        started.set()
        await asyncio.sleep(60)

    monkeypatch.setattr(notify, "deferred", stuck)
    queue = new_send_queue()
    waiter = asyncio.ensure_future(
        queue.submit(conversation_id=group.pk, user=alice, content="x")
    )
    await started.wait()
    queue.task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert queue.task is None


def test_one_queue_per_event_loop():
    async def get():
        return sending.send_queue()

    first, second = asyncio.run(get()), asyncio.run(get())
    assert isinstance(first, BatchQueue) and first is not second
