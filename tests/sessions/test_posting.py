"""Group commit of chat posts: one transaction per batch, each post its own
savepoint (a refused one takes no seq), pushed in seq order after commit."""

from __future__ import annotations

import asyncio
import json

import pytest
from asgiref.sync import sync_to_async

from realtime.errors import Invalid
from sessions_app import notify, posting, services
from sessions_app.models import Message, Participant

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(30)]


@pytest.fixture
def ann(session):
    participant, _ = services.participant_guest_join(session=session, nickname="ann")
    return participant


@pytest.fixture
def bo(session):
    participant, _ = services.participant_guest_join(session=session, nickname="bo")
    return participant


def post(session, who, content="hi", **extra) -> dict:
    return {"session_id": session.pk, "participant": who, "content": content, **extra}


def test_a_batch_answers_each_post_in_order_and_refusals_take_no_seq(session, ann, bo):
    first, _ = services.message_post(**post(session, ann, "before", client_id="c1"))
    gone, _ = services.participant_guest_join(session=session, nickname="gone")
    Participant.objects.filter(pk=gone.pk).delete()
    results = posting.messages_post(
        posts=[
            post(session, ann, "one"),
            post(session, bo, " \n "),  # blank: refused
            post(session, ann, "retried", client_id="c1"),  # the original back
            post(session, gone, "ghost"),  # refused
            post(session, bo, "two"),
        ]
    )
    one, blank, retried, ghost, two = results
    assert isinstance(blank, Invalid)
    assert isinstance(ghost, services.ParticipantGone)
    assert retried == (first, False)
    assert one[1] and two[1]
    assert [first.seq, one[0].seq, two[0].seq] == [1, 2, 3]
    session.refresh_from_db()
    assert session.last_seq == 3
    assert list(Message.objects.order_by("seq").values_list("content", flat=True)) == [
        "before",
        "one",
        "two",
    ]


def test_a_closed_session_refuses_every_post_of_the_batch(session, ann):
    services.session_close(session_id=session.pk)
    results = posting.messages_post(posts=[post(session, ann), post(session, ann)])
    assert all(isinstance(r, services.SessionClosed) for r in results)
    assert not Message.objects.exists()


def test_a_batch_failing_as_a_whole_posts_each_alone(session, ann, monkeypatch):
    calls = []
    real = services.message_post

    def flaky(**kwargs):
        calls.append(kwargs["content"])
        if len(calls) == 2:  # inside the batch: its transaction fails
            raise RuntimeError("the database went away mid-batch")
        return real(**kwargs)

    monkeypatch.setattr(services, "message_post", flaky)
    results = posting.messages_post(
        posts=[post(session, ann, "a"), post(session, ann, "b")]
    )
    assert calls == ["a", "b", "a", "b"]  # the batch, then each alone
    assert [r[0].seq for r in results] == [1, 2]  # the batch's "a" rolled back
    assert Message.objects.count() == 2


async def test_the_queue_batches_posts_that_arrive_meanwhile_and_pushes_in_order(
    session, ann, bo, monkeypatch
):
    heard, batches = [], []

    async def record(group, text, *, exclude=None, seq=None):
        heard.append((json.loads(text)["payload"]["content"], seq))

    real = posting.messages_post

    def spy(*, posts):
        batches.append(len(posts))
        return real(posts=posts)

    monkeypatch.setattr(notify, "broadcast", record)
    monkeypatch.setattr(posting, "messages_post", spy)
    queue = posting.new_post_queue()
    first = asyncio.ensure_future(queue.submit(**post(session, ann, "one")))
    await asyncio.sleep(0)  # the first batch is on its way: the rest wait for it
    rest = [
        queue.submit(**post(session, bo, "two")),
        queue.submit(**post(session, bo, "   ")),
        queue.submit(**post(session, ann, "three")),
    ]
    results = await asyncio.wait_for(
        asyncio.gather(first, *rest, return_exceptions=True), 10
    )
    assert batches == [1, 3]
    one, two, blank, three = results
    assert isinstance(blank, Invalid)
    assert [one[0].seq, two[0].seq, three[0].seq] == [1, 2, 3]
    assert heard == [("one", 1), ("two", 2), ("three", 3)]
    assert queue.task is None and queue.waiting == []


async def test_a_push_that_fails_does_not_fail_the_post(session, ann, monkeypatch):
    async def broken(message):
        raise RuntimeError("hub gone")

    monkeypatch.setattr(notify, "message_stored", broken)
    message, created = await posting.new_post_queue().submit(**post(session, ann))
    assert created and message.seq == 1
    assert await sync_to_async(Message.objects.count)() == 1


def test_one_queue_per_event_loop():
    async def get():
        return posting.post_queue()

    first, second = asyncio.run(get()), asyncio.run(get())
    assert first is not second
