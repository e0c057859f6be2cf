"""retry(): transient failures are waited out, others raised at once, stops and deadlines honoured."""

from __future__ import annotations

import pytest
from sqlalchemy.exc import IntegrityError, OperationalError

from app.kit.retry import any_error, backoff_delay, is_transient, retry


class Flaky:
    """Fails `failures` times with `exc`, then answers."""

    def __init__(self, failures: int, exc: Exception) -> None:
        self.failures = failures
        self.exc = exc
        self.calls = 0

    async def __call__(self) -> str:
        self.calls += 1
        if self.calls <= self.failures:
            raise self.exc
        return "ok"


async def no_wait(_: float) -> None:
    return None


def test_database_unavailable_is_transient_and_refused_rows_are_not() -> None:
    assert is_transient(OperationalError("SELECT 1", {}, Exception("no such table")))
    assert is_transient(ConnectionRefusedError())
    assert not is_transient(IntegrityError("INSERT", {}, Exception("foreign key")))
    assert not is_transient(ValueError("bad row"))


async def test_transient_failures_are_retried_until_it_answers() -> None:
    op = Flaky(3, OperationalError("SELECT 1", {}, Exception("down")))
    errors: list[int] = []
    result = await retry(op, on_error=lambda exc, n: errors.append(n), sleep=no_wait)
    assert result == "ok" and op.calls == 4 and errors == [1, 2, 3]


async def test_a_refused_operation_is_raised_at_once() -> None:
    op = Flaky(1, IntegrityError("INSERT", {}, Exception("foreign key")))
    with pytest.raises(IntegrityError):
        await retry(op, sleep=no_wait)
    assert op.calls == 1


async def test_lambdas_and_async_hooks_work() -> None:
    op = Flaky(1, ValueError("x"))
    noted: list[BaseException] = []

    async def note(exc: BaseException, _: int) -> None:
        noted.append(exc)

    assert await retry(lambda: op(), retry_on=any_error, on_error=note, sleep=no_wait) == "ok"
    assert len(noted) == 1


async def test_stop_when_raises_the_last_failure() -> None:
    op = Flaky(100, ConnectionError("down"))
    with pytest.raises(ConnectionError):
        await retry(op, stop_when=lambda: op.calls >= 2, sleep=no_wait)
    assert op.calls == 2


async def test_a_deadline_stops_before_a_wait_that_would_pass_it() -> None:
    op = Flaky(100, ConnectionError("down"))
    with pytest.raises(ConnectionError):
        await retry(op, initial=10.0, deadline_s=1.0, sleep=no_wait)
    assert op.calls == 1


def test_backoff_doubles_from_initial_up_to_the_cap() -> None:
    assert [backoff_delay(n, 0.5, 3.0) for n in range(1, 6)] == [0.5, 1.0, 2.0, 3.0, 3.0]
    assert 1.0 <= backoff_delay(2, 0.5, 10.0, jitter=0.2) <= 1.2
