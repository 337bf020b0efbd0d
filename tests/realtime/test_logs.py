"""Credentials never reach a log line."""

from __future__ import annotations

import logging

import pytest

from realtime.logfilters import RedactSecretsFilter, redact
from tests.conftest import closed_with, communicator

JWT = "eyJhbGciOiJIUzI1NiJ9.eyJ1c2VyX2lkIjoxfQ.c2lnbmF0dXJlLXNpZ25hdHVyZQ"


@pytest.mark.parametrize(
    "line",
    [
        f"GET /ws/echo/?token={JWT}&x=1",
        "ticket=abcDEF123 used",
        'payload {"token": "s3cr3t-value"}',
        "Authorization: Bearer s3cr3t-value",
        f"something {JWT} inside",
        "password=hunter2",
    ],
)
def test_redact_masks_credentials(line):
    cleaned = redact(line)
    for secret in (JWT, "abcDEF123", "s3cr3t-value", "hunter2"):
        assert secret not in cleaned
    assert "redacted" in cleaned


def test_filter_rewrites_the_record_and_keeps_clean_ones():
    record = logging.LogRecord(
        "x", logging.INFO, __file__, 1, "t=%s", (f"token={JWT}",), None
    )
    assert RedactSecretsFilter().filter(record)
    assert JWT not in record.getMessage()
    clean = logging.LogRecord(
        "x", logging.INFO, __file__, 1, "plain %s", ("text",), None
    )
    RedactSecretsFilter().filter(clean)
    assert clean.getMessage() == "plain text" and clean.args == ("text",)


@pytest.mark.django_db(transaction=True)
@pytest.mark.timeout(20)
async def test_refused_credential_is_logged_without_it(caplog):
    caplog.set_level(logging.INFO, logger="realtime")
    comm = communicator("/ws/echo/", token=JWT)
    await comm.connect()
    assert await closed_with(comm) == 4001
    await comm.disconnect()
    assert "socket credential refused" in caplog.text
    assert JWT not in caplog.text and JWT.split(".")[2] not in caplog.text
