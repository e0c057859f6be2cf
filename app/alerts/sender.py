"""WebhookSender: one signed POST with in-process retries (tenacity), classified into an Outcome.

Retried: timeouts, connection errors, 429 and 5xx, with exponential backoff and jitter, honouring
`Retry-After`. Not retried: any other non-2xx answer (the receiver said no; the row goes dead with its
answer). Every attempt feeds the webhook's circuit breaker; retries stop as soon as it opens.
"""

from __future__ import annotations

import email.utils
import logging
import time
from dataclasses import dataclass, replace
from typing import Any

import httpx
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, wait_random_exponential

from app.alerts.breaker import BreakerState, CircuitBreaker
from app.alerts.signing import encode, signed_headers
from app.kit.redact import mask_text, mask_url
from app.metrics import DELIVERIES

log = logging.getLogger("argus.alerts.sender")
ANSWER_MAX = 500  # keep the receiver's answer short in last_error


@dataclass(frozen=True, slots=True)
class Target:
    """A webhook as the sender needs it (a snapshot, never an ORM row)."""

    id: int
    name: str
    url: str
    secret: str
    timeout_s: float
    enabled: bool = True


@dataclass(frozen=True, slots=True)
class Outcome:
    ok: bool
    attempts: int
    status_code: int | None = None
    error: str | None = None
    permanent: bool = False  # the receiver refused (4xx): do not retry
    retry_after: float | None = None


class RetryableFailure(Exception):
    def __init__(self, error: str, status_code: int | None = None, retry_after: float | None = None) -> None:
        super().__init__(error)
        self.error = error
        self.status_code = status_code
        self.retry_after = retry_after


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds from a `Retry-After` header: delta-seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


class WebhookSender:
    def __init__(
        self,
        client: httpx.AsyncClient,
        *,
        attempts: int = 3,
        retry_initial_s: float = 0.5,
        retry_max_s: float = 5.0,
    ) -> None:
        self._client = client
        self._attempts = attempts
        self._retry_max_s = retry_max_s
        self._jitter = wait_random_exponential(multiplier=retry_initial_s, max=retry_max_s)

    async def send(
        self, target: Target, payload: dict[str, Any], key: str, kind: str, breaker: CircuitBreaker
    ) -> Outcome:
        body = encode(payload)
        count = 0

        def stop(state: RetryCallState) -> bool:
            exc = state.outcome.exception() if state.outcome else None
            too_long = isinstance(exc, RetryableFailure) and (exc.retry_after or 0) > self._retry_max_s
            return count >= self._attempts or breaker.state is not BreakerState.closed or too_long

        def wait(state: RetryCallState) -> float:
            exc = state.outcome.exception() if state.outcome else None
            if isinstance(exc, RetryableFailure) and exc.retry_after is not None:
                return min(exc.retry_after, self._retry_max_s)
            return float(self._jitter(state))

        retrying = AsyncRetrying(
            stop=stop, wait=wait, retry=retry_if_exception_type(RetryableFailure), reraise=True
        )
        try:
            async for attempt in retrying:
                with attempt:
                    count += 1
                    outcome = await self._attempt(target, body, key, kind, breaker)
                    return replace(outcome, attempts=count)
        except RetryableFailure as exc:
            return Outcome(False, count, exc.status_code, exc.error, retry_after=exc.retry_after)
        raise AssertionError("unreachable")

    async def send_once(self, target: Target, payload: dict[str, Any], key: str, kind: str) -> Outcome:
        """One attempt, no retry, no breaker: `POST /api/webhooks/{id}/test`."""
        try:
            return await self._attempt(target, encode(payload), key, kind, CircuitBreaker())
        except RetryableFailure as exc:
            return Outcome(False, 1, exc.status_code, exc.error, retry_after=exc.retry_after)

    async def _attempt(
        self, target: Target, body: bytes, key: str, kind: str, breaker: CircuitBreaker
    ) -> Outcome:
        headers = signed_headers(target.secret, body, key, kind)
        try:
            response = await self._client.post(
                target.url, content=body, headers=headers, timeout=target.timeout_s
            )
        except httpx.TimeoutException as exc:
            self._failed(breaker, "timeout")
            raise RetryableFailure(f"timeout after {target.timeout_s:g}s ({type(exc).__name__})") from exc
        except httpx.TransportError as exc:
            self._failed(breaker, "connect_error")
            raise RetryableFailure(
                f"{type(exc).__name__}: {mask_text(str(exc)) or 'transport error'}"
            ) from exc
        code = response.status_code
        if 200 <= code < 300:
            breaker.record_success()
            DELIVERIES.labels(outcome="delivered").inc()
            return Outcome(True, 1, code)
        answer = f"HTTP {code}: {response.text[:ANSWER_MAX]}".strip()
        if code == 429 or code >= 500:
            self._failed(breaker, f"http_{code // 100}xx" if code != 429 else "http_429")
            raise RetryableFailure(answer, code, parse_retry_after(response.headers.get("retry-after")))
        breaker.record_success()  # the receiver is up; it refused this body
        DELIVERIES.labels(outcome="rejected").inc()
        log.warning("webhook %s (%s) refused %s: %s", target.name, mask_url(target.url), key, answer)
        return Outcome(False, 1, code, answer, permanent=True)

    @staticmethod
    def _failed(breaker: CircuitBreaker, outcome: str) -> None:
        breaker.record_failure()
        DELIVERIES.labels(outcome=outcome).inc()
