"""WebhookSender: one signed POST with in-process retries (tenacity), classified into an Outcome.

Retried: timeouts, connection errors, 429 and 5xx, with exponential backoff and jitter, honouring
`Retry-After`. Not retried: any other non-2xx answer (the receiver said no; the row goes dead with its
answer), an invalid URL or a destination in a denied network (permanent: dead at once). Any other
exception is a failed attempt with its error, never a crashed delivery task. Every attempt feeds the
webhook's circuit breaker; retries stop as soon as it opens.

A receiver's answer is read only up to a few KB (a hostile target cannot fill memory) and only a short,
cleaned excerpt of a refusal is kept in `last_error` and shown by `/test`.
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
import re
import time
from dataclasses import dataclass, replace
from typing import Any

import httpx
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, wait_random_exponential

from app.alerts.breaker import BreakerState, CircuitBreaker
from app.alerts.signing import encode, signed_headers
from app.kit.netguard import AddressDenied
from app.kit.redact import mask_text, mask_url
from app.kit.urls import UrlError, validate_webhook_url
from app.metrics import DELIVERIES

log = logging.getLogger("argus.alerts.sender")
ANSWER_MAX = 160  # characters of a refusal's body kept in last_error and shown by /test
READ_MAX = 16_384  # bytes of an answer read at most (a 2xx body is drained up to this, for keep-alive)
ERROR_MAX = 500
_UNPRINTABLE = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]+")
# Errors that no retry can fix: the request cannot even be built or sent as addressed.
_PERMANENT_HTTPX = (httpx.InvalidURL, httpx.UnsupportedProtocol, httpx.LocalProtocolError)


def clean_error(text: str, limit: int = ERROR_MAX) -> str:
    """Error text fit for a row and a response: credentials masked, one line (no control characters,
    which also keeps NUL away from PostgreSQL), at most `limit` characters."""
    text = _UNPRINTABLE.sub(" ", mask_text(text)).strip()
    return text if len(text) <= limit else text[: limit - 1] + "…"


def describe(exc: BaseException) -> str:
    return clean_error(f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__)


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
        except Exception as exc:  # a bug or a library surprise: a failed attempt, retried later
            return self._unexpected(target, key, exc, max(count, 1))
        raise AssertionError("unreachable")

    async def send_once(self, target: Target, payload: dict[str, Any], key: str, kind: str) -> Outcome:
        """One attempt, no retry, no breaker: `POST /api/webhooks/{id}/test`. Never raises."""
        try:
            return await self._attempt(target, encode(payload), key, kind, CircuitBreaker())
        except RetryableFailure as exc:
            return Outcome(False, 1, exc.status_code, exc.error, retry_after=exc.retry_after)
        except Exception as exc:
            return self._unexpected(target, key, exc, 1)

    async def _attempt(
        self, target: Target, body: bytes, key: str, kind: str, breaker: CircuitBreaker
    ) -> Outcome:
        try:  # a row stored before URLs were checked, or edited in the database
            validate_webhook_url(target.url)
        except UrlError as exc:
            return self._refused(target, key, f"invalid webhook URL: {exc}", "invalid_url")
        headers = signed_headers(target.secret, body, key, kind)
        try:
            async with asyncio.timeout(target.timeout_s * 2):  # httpx's timeout is per read, not in all
                code, answer, retry_after = await self._post(target, body, headers)
        except AddressDenied as exc:
            return self._refused(target, key, clean_error(str(exc)), "denied")
        except _PERMANENT_HTTPX as exc:
            return self._refused(target, key, f"invalid webhook URL: {describe(exc)}", "invalid_url")
        except (TimeoutError, httpx.TimeoutException) as exc:
            self._failed(breaker, "timeout")
            raise RetryableFailure(f"timeout after {target.timeout_s:g}s ({type(exc).__name__})") from exc
        except httpx.TransportError as exc:
            self._failed(breaker, "connect_error")
            raise RetryableFailure(describe(exc)) from exc
        if 200 <= code < 300:
            breaker.record_success()
            DELIVERIES.labels(outcome="delivered").inc()
            return Outcome(True, 1, code)
        if code == 429 or code >= 500:
            self._failed(breaker, f"http_{code // 100}xx" if code != 429 else "http_429")
            raise RetryableFailure(answer, code, retry_after)
        breaker.record_success()  # the receiver is up; it refused this body
        DELIVERIES.labels(outcome="rejected").inc()
        log.warning("webhook %s (%s) refused %s: %s", target.name, mask_url(target.url), key, answer)
        return Outcome(False, 1, code, answer, permanent=True)

    async def _post(
        self, target: Target, body: bytes, headers: dict[str, str]
    ) -> tuple[int, str, float | None]:
        """(status, "HTTP <code>: <short excerpt>", Retry-After), reading at most READ_MAX bytes."""
        request = self._client.build_request(
            "POST", target.url, content=body, headers=headers, timeout=target.timeout_s
        )
        response = await self._client.send(request, stream=True)
        try:
            raw = await _read_some(response, READ_MAX)
        finally:
            await response.aclose()
        code = response.status_code
        if 200 <= code < 300:
            return code, "", None
        excerpt = clean_error(raw.decode("utf-8", "replace"), ANSWER_MAX)
        return code, f"HTTP {code}: {excerpt}".strip(), parse_retry_after(response.headers.get("retry-after"))

    @staticmethod
    def _refused(target: Target, key: str, error: str, outcome: str) -> Outcome:
        """A permanent failure of ours (bad URL, denied address): the row goes dead with the reason."""
        DELIVERIES.labels(outcome=outcome).inc()
        log.warning("webhook %s (%s): %s not sent: %s", target.name, mask_url(target.url), key, error)
        return Outcome(False, 1, None, error, permanent=True)

    @staticmethod
    def _unexpected(target: Target, key: str, exc: Exception, attempts: int) -> Outcome:
        DELIVERIES.labels(outcome="error").inc()
        log.error("webhook %s: delivery %s failed unexpectedly", target.name, key, exc_info=exc)
        return Outcome(False, attempts, None, f"internal error: {describe(exc)}")

    @staticmethod
    def _failed(breaker: CircuitBreaker, outcome: str) -> None:
        breaker.record_failure()
        DELIVERIES.labels(outcome=outcome).inc()


async def _read_some(response: httpx.Response, limit: int) -> bytes:
    """Up to `limit` raw bytes of the body (undecoded: no decompression bomb); the rest is left unread."""
    data = bytearray()
    async for chunk in response.aiter_raw():
        data += chunk
        if len(data) >= limit:
            break
    return bytes(data[:limit])
