"""A small closed-loop HTTP/1.1 load generator (asyncio + uvloop, keep-alive, no dependencies).

Why not httpx for the load itself: on a 2-core machine the client shares the CPU with the
server under test, and httpx spends several times more CPU per request than this raw
keep-alive client (`benchmarks/bench_booking_cost.py --client-cost` shows both). httpx is
still used for setup calls (sandbox config, health checks).

Closed loop: `concurrency` workers each send a request, wait for the answer, and send the
next one, for `warmup + duration` seconds. Throughput counts the answers that arrive inside
the measured window (after the warm-up); latencies are those answers' round trips. Requests
still in flight when the window closes are waited for and not counted.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

try:  # uvicorn[standard] brings uvloop; the client is cheaper with it
    import uvloop
except ImportError:  # pragma: no cover
    uvloop = None

Request = tuple[str, str, bytes, bytes]  # method, path, extra header lines (b"K: v\r\n"...), body


class HttpConn:
    """One keep-alive HTTP/1.1 connection; answers must carry Content-Length or be chunked."""

    def __init__(self, host: str, port: int):
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self._host_header = f"Host: {host}:{port}\r\n".encode()

    async def connect(self) -> None:
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        sock = self.writer.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def close(self) -> None:
        if self.writer is not None:
            with contextlib.suppress(Exception):
                self.writer.close()
        self.reader = self.writer = None

    async def request(self, method: str, path: str, headers: bytes = b"", body: bytes = b"") -> tuple[int, bytes]:
        if self.writer is None:
            await self.connect()
        head = b"%s %s HTTP/1.1\r\n%sContent-Length: %d\r\n%s\r\n" % (
            method.encode(), path.encode(), self._host_header, len(body), headers,
        )
        self.writer.write(head + body)
        reader = self.reader
        line = await reader.readline()
        if not line:
            self.close()
            raise ConnectionError("server closed the connection")
        status = int(line.split(b" ", 2)[1])
        length, chunked, close = None, False, False
        while True:
            line = await reader.readline()
            if line in (b"\r\n", b"\n", b""):
                break
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"transfer-encoding" and b"chunked" in value.lower():
                chunked = True
            elif name == b"connection" and b"close" in value.lower():
                close = True
        if chunked:
            parts = []
            while True:
                size = int((await reader.readline()).split(b";")[0], 16)
                if size == 0:
                    await reader.readline()
                    break
                parts.append(await reader.readexactly(size))
                await reader.readline()
            data = b"".join(parts)
        elif length is not None:
            data = await reader.readexactly(length)
        else:
            data = await reader.read()
            close = True
        if close:
            self.close()
        return status, data


def percentile(sorted_values: list[float], p: float) -> float:
    """Nearest-rank percentile of an ascending list (0 for an empty one)."""
    if not sorted_values:
        return 0.0
    k = max(0, min(len(sorted_values) - 1, int(round(p / 100 * len(sorted_values) + 0.5)) - 1))
    return sorted_values[k]


@dataclass
class LoadResult:
    name: str
    concurrency: int
    duration_s: float
    ok: int = 0
    statuses: Counter = field(default_factory=Counter)
    latencies_ms: list[float] = field(default_factory=list)  # of the OK answers, sorted
    samples: list[str] = field(default_factory=list)  # bodies of a few unexpected answers
    started_at: float = 0.0  # perf_counter of the measured window's start
    done: list[tuple[float, float]] = field(default_factory=list)  # (start, end) of OK answers
    sent: int = 0  # every answer received, warm-up and tail included

    @property
    def rps(self) -> float:
        return self.ok / self.duration_s if self.duration_s else 0.0

    def pct(self, p: float) -> float:
        return percentile(self.latencies_ms, p)

    @property
    def errors(self) -> int:
        return sum(self.statuses.values()) - self.ok

    def summary(self) -> str:
        bad = {k: v for k, v in self.statuses.items() if k != "ok"}
        return (
            f"{self.name}: {self.rps:,.1f} req/s over {self.duration_s:.1f}s at concurrency {self.concurrency} "
            f"({self.ok} ok{', unexpected ' + str(bad) if bad else ''}); latency ms "
            f"p50 {self.pct(50):.1f}  p90 {self.pct(90):.1f}  p99 {self.pct(99):.1f}  max "
            f"{(self.latencies_ms[-1] if self.latencies_ms else 0):.1f}"
        )

    def as_dict(self) -> dict:
        return {
            "name": self.name, "concurrency": self.concurrency, "duration_s": round(self.duration_s, 2),
            "ok": self.ok, "errors": self.errors, "rps": round(self.rps, 1),
            "p50_ms": round(self.pct(50), 2), "p90_ms": round(self.pct(90), 2),
            "p99_ms": round(self.pct(99), 2),
            "max_ms": round(self.latencies_ms[-1], 2) if self.latencies_ms else 0.0,
        }


async def closed_loop(
    host: str,
    port: int,
    *,
    name: str,
    concurrency: int,
    duration: float,
    warmup: float,
    make: Callable[[int], Request],
    expect: tuple[int, ...] = (200, 201),
    keep_spans: bool = False,
    window: tuple[Callable[[], None], Callable[[], None]] | None = None,
    stop_when: Callable[[], bool] | None = None,
) -> LoadResult:
    """Run `concurrency` workers; worker i sends make(i) requests back to back.
    `window` = (on_start, on_end) are called when the measured window opens and closes
    (e.g. to read CPU counters over exactly that window). With `stop_when`, the window closes
    early once stop_when() is true (checked every 50 ms; `duration` is then a maximum) and
    result.duration_s is the window's real length."""
    t0 = time.perf_counter()
    t_start, t_end = t0 + warmup, t0 + warmup + duration
    result = LoadResult(name=name, concurrency=concurrency, duration_s=duration, started_at=t_start)
    lat = result.latencies_ms

    async def marks() -> None:
        nonlocal t_end
        await asyncio.sleep(max(0.0, t_start - time.perf_counter()))
        if window is not None:
            window[0]()
        while time.perf_counter() < t_end:
            if stop_when is not None and stop_when():
                t_end = time.perf_counter()
                result.duration_s = t_end - t_start
                break
            await asyncio.sleep(0.05 if stop_when is not None else max(0.0, t_end - time.perf_counter()))
        if window is not None:
            window[1]()

    async def worker(i: int) -> None:
        conn = HttpConn(host, port)
        try:
            while time.perf_counter() < t_end:
                method, path, headers, body = make(i)
                s = time.perf_counter()
                try:
                    status, data = await conn.request(method, path, headers, body)
                    key = "ok" if status in expect else status
                except (OSError, asyncio.IncompleteReadError, ValueError, IndexError) as exc:
                    conn.close()
                    status, data, key = None, str(exc).encode(), type(exc).__name__
                e = time.perf_counter()
                result.sent += 1
                if t_start <= e <= t_end:
                    result.statuses[key] += 1
                    if key == "ok":
                        result.ok += 1
                        lat.append((e - s) * 1000)
                        if keep_spans:
                            result.done.append((s, e))
                    elif len(result.samples) < 5:
                        result.samples.append(f"{status}: {data[:300]!r}")
        finally:
            conn.close()

    tasks = [worker(i) for i in range(concurrency)]
    if window is not None or stop_when is not None:
        tasks.append(marks())
    await asyncio.gather(*tasks)
    lat.sort()
    return result


def run(coro):
    """Run a coroutine on uvloop when available."""
    if uvloop is not None:
        return uvloop.run(coro)
    return asyncio.run(coro)
