"""A lean HTTP/1.1 load generator for the benchmarks: keep-alive connections over asyncio
streams, each sending one request at a time and reading the whole answer.

Why not httpx: its client spent about 2.2 ms of CPU a request on a 2-core machine, so a
benchmark driving `vigil serve` with it measured the client (about 420 requests a second
against `/healthz`, with the server idle most of the time). Here a request costs tens of
microseconds, and the client's own CPU time is reported beside the figures so a reader can
see which side was the limit.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from urllib.parse import urlsplit


@dataclass
class Answer:
    status: int
    body: bytes


class Connection:
    """One keep-alive connection to the server."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, host: str):
        self._reader = reader
        self._writer = writer
        self._host = host

    @classmethod
    async def open(cls, url: str) -> Connection:
        parts = urlsplit(url)
        if parts.scheme != "http" or parts.hostname is None or parts.port is None:
            raise ValueError(f"expected http://host:port, got {url!r}")
        reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
        return cls(reader, writer, f"{parts.hostname}:{parts.port}")

    async def post_json(self, path: str, payload: object) -> Answer:
        body = json.dumps(payload).encode()
        head = (
            f"POST {path} HTTP/1.1\r\nHost: {self._host}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        )
        self._writer.write(head.encode() + body)
        return await self._answer()

    async def get(self, path: str) -> Answer:
        self._writer.write(f"GET {path} HTTP/1.1\r\nHost: {self._host}\r\n\r\n".encode())
        return await self._answer()

    async def _answer(self) -> Answer:
        head = await self._reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        length = None
        for line in lines[1:]:
            name, _, value = line.partition(":")
            if name.strip().lower() == "content-length":
                length = int(value)
            elif name.strip().lower() == "transfer-encoding":
                raise ValueError(f"expected a Content-Length answer, got {line!r}")
        if length is None:
            raise ValueError("the answer has no Content-Length")
        return Answer(status, await self._reader.readexactly(length))

    async def close(self) -> None:
        self._writer.close()
        await self._writer.wait_closed()


@dataclass
class Load:
    """What one run of `drive` measured."""

    took: float
    """Seconds from the first request to the last answer."""
    latencies: list[float] = field(default_factory=list)
    """Seconds from sending each request to its whole answer, in the order they ended."""
    statuses: list[int] = field(default_factory=list)
    client_cpu: float = 0.0
    """This process's CPU seconds while it drove the load (the generator's own cost)."""


async def drive(
    url: str,
    items: Sequence[object],
    clients: int,
    send: Callable[[Connection, object], Awaitable[Answer]],
) -> Load:
    """Send every item through `clients` connections, each taking the next unsent item as
    soon as its last answer is in."""
    connections = [await Connection.open(url) for _ in range(clients)]
    load = Load(took=0.0)
    position = 0

    async def client(connection: Connection) -> None:
        nonlocal position
        while position < len(items):
            item = items[position]
            position += 1
            started = time.perf_counter()
            answer = await send(connection, item)
            load.latencies.append(time.perf_counter() - started)
            load.statuses.append(answer.status)

    cpu, started = time.process_time(), time.perf_counter()
    try:
        await asyncio.gather(*(client(connection) for connection in connections))
    finally:
        load.took = time.perf_counter() - started
        load.client_cpu = time.process_time() - cpu
        for connection in connections:
            await connection.close()
    return load
