"""GuardedTransport against a real local HTTP server: denied networks checked on the resolved address,
one lookup per connection, and the connection made to the address that was checked."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from app.kit.netguard import AddressDenied, GuardedBackend, GuardedTransport
from app.kit.urls import parse_networks
from tests.support.webhook_receiver import WebhookReceiver

LOOPBACK = parse_networks("127.0.0.0/8,::1/128")
DEFAULT = parse_networks("169.254.0.0/16,fe80::/10,fd00:ec2::/32")


class FakeDns(GuardedBackend):
    """A resolver whose answers change on every lookup, as a rebinding attacker's DNS does."""

    def __init__(self, deny: tuple, answers: list[list[str]]) -> None:  # type: ignore[type-arg]
        super().__init__(deny)
        self.answers = answers
        self.lookups: list[str] = []

    async def lookup(self, host: str, port: int) -> list[str]:
        self.lookups.append(host)
        return self.answers[min(len(self.lookups), len(self.answers)) - 1]


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    with WebhookReceiver() as r:
        yield r


async def post(transport: httpx.AsyncBaseTransport, url: str) -> httpx.Response:
    async with httpx.AsyncClient(transport=transport) as client:
        return await client.post(url, content=b"{}")


async def test_loopback_is_allowed_by_default(receiver: WebhookReceiver) -> None:
    response = await post(GuardedTransport(DEFAULT), receiver.url.replace("127.0.0.1", "localhost"))
    assert response.status_code == 200 and len(receiver.received) == 1


@pytest.mark.parametrize("host", ["localhost", "127.0.0.1", "2130706433", "127.1", "0x7f000001"])
async def test_a_denied_address_is_refused_whatever_the_spelling(
    receiver: WebhookReceiver, host: str
) -> None:
    with pytest.raises(AddressDenied, match="denied network"):
        await post(GuardedTransport(LOOPBACK), receiver.url.replace("127.0.0.1", host))
    assert receiver.received == []


async def test_a_name_resolving_into_a_denied_network_is_refused(receiver: WebhookReceiver) -> None:
    dns = FakeDns(DEFAULT, [["127.0.0.1", "169.254.169.254"]])  # one bad address is enough
    with pytest.raises(AddressDenied, match=r"169\.254\.169\.254"):
        await post(GuardedTransport(DEFAULT, backend=dns), f"http://hooks.test:{receiver.port}/hook")
    assert receiver.received == []


async def test_rebinding_does_not_help(receiver: WebhookReceiver) -> None:
    # given: a name that resolves to an allowed address first, and to a denied one on any later lookup
    dns = FakeDns(DEFAULT, [["127.0.0.1"], ["169.254.169.254"]])
    transport = GuardedTransport(DEFAULT, backend=dns)
    # when: a request is made (the name exists nowhere but in FakeDns)
    response = await post(transport, f"http://rebind.test:{receiver.port}/hook")
    # then: one lookup, and the connection went to the very address that was checked
    assert response.status_code == 200 and dns.lookups == ["rebind.test"]
    assert receiver.received[0].headers["host"] == f"rebind.test:{receiver.port}"
    # and: a new connection looks up again and is refused on the new answer
    with pytest.raises(AddressDenied):
        await post(transport, f"http://rebind.test:{receiver.port}/again")
    assert len(receiver.received) == 1


async def test_an_unresolvable_name_is_a_connect_error() -> None:
    with pytest.raises(httpx.ConnectError, match="cannot resolve"):
        await post(GuardedTransport(DEFAULT), "http://no-such-host.invalid/")
