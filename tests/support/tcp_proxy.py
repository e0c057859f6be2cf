"""A TCP proxy on loopback that a test stops and restarts: a node cut off from its database (and back).

proxy = await TcpProxy.start(5432)            # listens on a free port of 127.0.0.1
url = f"postgresql+asyncpg://postgres@127.0.0.1:{proxy.port}/db"
await proxy.cut()                             # listener closed, every open connection reset
await proxy.restore()                         # the same port accepts again
await proxy.pause()                           # a blackhole: connections stay open, no byte passes
await proxy.resume()                          # held bytes flow again
"""

from __future__ import annotations

import asyncio
import contextlib
import socket

from tests.support.server import free_port


class TcpProxy:
    def __init__(self, target_port: int, target_host: str = "127.0.0.1", port: int | None = None) -> None:
        self.target = (target_host, target_port)
        self.port = port or free_port()
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._pipes: set[asyncio.Task[None]] = set()
        self._flowing = asyncio.Event()
        self._flowing.set()

    @classmethod
    async def start(cls, target_port: int, target_host: str = "127.0.0.1") -> TcpProxy:
        proxy = cls(target_port, target_host)
        await proxy.restore()
        return proxy

    @property
    def up(self) -> bool:
        return self._server is not None

    async def restore(self) -> None:
        if self._server is None:
            self._server = await asyncio.start_server(
                self._accept, "127.0.0.1", self.port, reuse_address=True
            )

    async def pause(self) -> None:
        """A peer that hangs without closing: connections (old and new) are accepted and kept, but no
        byte is forwarded either way until resume()."""
        self._flowing.clear()

    async def resume(self) -> None:
        self._flowing.set()

    async def cut(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.close()
        for writer in list(self._writers):
            with contextlib.suppress(OSError):
                sock = writer.get_extra_info("socket")
                if sock is not None:  # RST, not a polite FIN: like a partition noticed by the kernel
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
                writer.close()
        self._writers.clear()
        for task in list(self._pipes):
            task.cancel()
        await asyncio.gather(*self._pipes, return_exceptions=True)
        if server is not None:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(2):
                    await server.wait_closed()

    async def aclose(self) -> None:
        await self.cut()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.close()
            return
        self._writers.update((writer, up_writer))
        for src, dst in ((reader, up_writer), (up_reader, writer)):
            task = asyncio.create_task(self._pipe(src, dst))
            self._pipes.add(task)
            task.add_done_callback(self._pipes.discard)

    async def _pipe(self, src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
        try:
            while data := await src.read(65536):
                await self._flowing.wait()
                dst.write(data)
                await dst.drain()
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            self._writers.discard(dst)
            with contextlib.suppress(OSError):
                dst.close()
