"""What a request must be before any of it is stored: a JSON body of at most 1 MB, nested at
most 64 deep, under its integration's rate limit."""

from __future__ import annotations

import asyncio
import json
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request

MAX_BODY = 1_000_000
MAX_DEPTH = 64


class HttpProblem(Exception):
    """A request refused with a status, a sentence and the field at fault, never a trace."""

    def __init__(
        self,
        status: int,
        message: str,
        errors: list[str] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.errors = errors or [message]
        self.headers = headers or {}


async def read_json(request: Request, within: float) -> Any:
    """The body as JSON: 415 for a content type other than JSON, 413 over 1 MB, 408 when it
    is not all in within `within` seconds (a sender dripping it holds nothing for long),
    400 for text that is not JSON (with line and column) or nested too deeply."""
    kind = request.headers.get("content-type", "application/json").split(";")[0].strip().lower()
    if kind not in ("application/json", "text/json", "") and not kind.endswith("+json"):
        raise HttpProblem(415, f"content-type: expected application/json, got {kind!r}")
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > MAX_BODY:
        raise HttpProblem(413, f"body: at most {MAX_BODY} bytes, got {declared}")
    chunks: list[bytes] = []
    size = 0
    try:
        async with asyncio.timeout(within):
            async for chunk in request.stream():
                size += len(chunk)
                if size > MAX_BODY:
                    raise HttpProblem(413, f"body: at most {MAX_BODY} bytes")
                chunks.append(chunk)
    except TimeoutError:
        raise HttpProblem(
            408,
            f"body: not all received within {within:g} s ({size} bytes came)",
            headers={"Connection": "close"},
        ) from None
    raw = b"".join(chunks)
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise HttpProblem(400, f"body: not UTF-8 text (byte {exc.start + 1})") from None
    if not text.strip():
        raise HttpProblem(400, "body: expected a JSON object, got nothing")
    try:
        value = json.loads(text)
    except RecursionError:
        raise HttpProblem(400, f"body: nested more than {MAX_DEPTH} deep") from None
    except json.JSONDecodeError as exc:
        where = f"line {exc.lineno}, column {exc.colno}"
        raise HttpProblem(
            400, f"body: not valid JSON: {exc.msg.removesuffix(' at')} at {where}"
        ) from None
    except ValueError:  # a whole number longer than Python converts (4,300 digits)
        raise HttpProblem(400, "body: a number in it has too many digits") from None
    if _depth(value) > MAX_DEPTH:
        raise HttpProblem(400, f"body: nested more than {MAX_DEPTH} deep")
    return value


def _depth(value: Any) -> int:
    """How deeply `value` nests, without recursion."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, level = stack.pop()
        deepest = max(deepest, level)
        if level > MAX_DEPTH:
            return level
        if isinstance(item, dict):
            stack.extend((child, level + 1) for child in item.values())
        elif isinstance(item, list):
            stack.extend((child, level + 1) for child in item)
    return deepest


@dataclass
class _Bucket:
    tokens: float
    at: float


class RateLimiter:
    """A token bucket per integration: `limit` events a minute, bursts up to `limit`.

    Each `vigil serve` process keeps its own buckets, so behind a load balancer of N
    processes an integration may send up to N times its limit.
    """

    def __init__(self, monotonic: Callable[[], float] = time.monotonic) -> None:
        self._monotonic = monotonic
        self._buckets: dict[str, _Bucket] = {}
        self._lock = threading.Lock()

    def take(self, name: str, limit: int, count: int = 1) -> float:
        """0 when `count` events may pass now, else the seconds until they may.

        More events at once than the bucket holds (an Alertmanager group larger than the
        limit) pass when it is full and empty it: waiting for tokens that never come would
        hold them back for good, and a debt for all of them would hold back every alert
        after them (3,000 at 120 a minute: 25 minutes)."""
        rate = limit / 60.0
        now = self._monotonic()
        with self._lock:
            bucket = self._buckets.setdefault(name, _Bucket(float(limit), now))
            bucket.tokens = min(float(limit), bucket.tokens + (now - bucket.at) * rate)
            bucket.at = now
            needed = min(count, limit)
            if bucket.tokens >= needed:
                bucket.tokens -= needed
                return 0.0
            return (needed - bucket.tokens) / rate


def retry_after(seconds: float) -> str:
    return str(max(1, math.ceil(seconds)))
