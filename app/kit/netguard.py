"""An httpx transport that refuses to connect into denied networks, checked on the address it connects to.

Checking a webhook's URL when it is saved is not enough: a hostname can resolve anywhere, and resolve
differently a second later (DNS rebinding). So the check sits in httpcore's network backend: resolve the
host once, refuse if any of its addresses is denied, then connect to those very addresses. TLS still
verifies the certificate against the hostname (httpcore passes the URL's host as server name), and the
connection pool is keyed by the hostname, so nothing else changes.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Iterable, Sequence
from typing import Any

import httpcore
import httpx

from app.kit.urls import IPNetwork, is_denied


class AddressDenied(Exception):
    """The destination is in a denied network. Not an httpx error on purpose: nothing retries it."""


class GuardedBackend(httpcore.AsyncNetworkBackend):
    def __init__(self, deny: Sequence[IPNetwork], inner: httpcore.AsyncNetworkBackend | None = None) -> None:
        self.deny = tuple(deny)
        self._inner = inner or httpcore.AnyIOBackend()

    async def lookup(self, host: str, port: int) -> list[str]:
        """The system resolver's addresses for `host` (a literal IP in any spelling comes back as is)."""
        loop = asyncio.get_running_loop()
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
        return list(dict.fromkeys(str(info[4][0]) for info in infos))

    async def resolve(self, host: str, port: int, timeout: float | None) -> list[str]:
        """Every address `host` resolves to, looked up once; AddressDenied if any of them is denied."""
        try:
            addresses = await asyncio.wait_for(self.lookup(host, port), timeout)
        except TimeoutError:
            raise httpcore.ConnectTimeout(f"resolving {host} timed out") from None
        except OSError as exc:
            raise httpcore.ConnectError(f"cannot resolve {host}: {exc.strerror or exc}") from None
        for address in addresses:
            if is_denied(ipaddress.ip_address(address.split("%", 1)[0]), self.deny):
                raise AddressDenied(
                    f"{host} resolves to {address}, in a denied network (ARGUS_WEBHOOK_DENY_NETWORKS)"
                )
        return addresses

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        error: Exception | None = None
        for address in await self.resolve(host, port, timeout):
            try:
                return await self._inner.connect_tcp(
                    address, port, timeout=timeout, local_address=local_address, socket_options=socket_options
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                error = exc
        raise error or httpcore.ConnectError(f"{host} has no address")

    async def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore.AsyncNetworkStream:
        raise AddressDenied("unix sockets are not a webhook destination")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class GuardedTransport(httpx.AsyncHTTPTransport):
    """httpx's own transport (HTTP/1.1, TLS with SSL_CERT_FILE/SSL_CERT_DIR honoured, pooling) with the
    guarded backend underneath. A client given a transport ignores HTTP(S)_PROXY, as it must here: a
    proxy would connect for us, past the check."""

    def __init__(
        self,
        deny: Sequence[IPNetwork],
        limits: httpx.Limits = httpx.Limits(),
        backend: GuardedBackend | None = None,
    ) -> None:
        super().__init__(limits=limits)
        self.backend = backend or GuardedBackend(deny)
        self._pool = httpcore.AsyncConnectionPool(  # replaces the plain pool httpx made
            ssl_context=httpx.create_ssl_context(),
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=self.backend,
        )
