"""Fetching a teacher's calendar address safely: https only (http with a development setting), no
private, loopback or link-local hosts (checked on the address actually connected to, and again
after each redirect), a few redirects at most, a size cap and one deadline for the whole fetch,
a conditional GET (ETag, Last-Modified). The address is a secret: errors and logs name its host only."""

from __future__ import annotations

import ipaddress
import socket
import time
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as LookupTimeout
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin, urlsplit

import httpx

MAX_REDIRECTS = 3
CHUNK = 64 * 1024
# Name lookups run here so a resolver that hangs cannot hold a fetch past its deadline.
_LOOKUPS = ThreadPoolExecutor(max_workers=4, thread_name_prefix="calendar-dns")


@dataclass(frozen=True)
class Limits:
    allow_http: bool = False
    allow_private: bool = False
    max_bytes: int = 5_000_000
    timeout: float = 10.0


@dataclass(frozen=True)
class Fetched:
    """What the address gave: the body, or None when unchanged since `etag`/`last_modified`."""

    body: bytes | None
    etag: str | None = None
    last_modified: str | None = None


class FetchError(Exception):
    """Why the calendar could not be read, in words for the teacher (never the full address)."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


def normalise(url: str) -> str:
    """webcal:// (Apple, Outlook) is https://; anything else is kept as given."""
    url = url.strip()
    if url.lower().startswith("webcal://"):
        return "https://" + url[len("webcal://") :]
    return url


def mask(url: str) -> str:
    """What may be shown of a secret address: its scheme, host and last four characters."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname or '?'}/…{url[-4:]}"


def check_url(url: str, *, limits: Limits) -> None:
    """Refuse an address of the wrong scheme or without a host (before anything is fetched)."""
    parts = urlsplit(url)
    allowed = ("https", "http") if limits.allow_http else ("https",)
    if parts.scheme.lower() not in allowed:
        raise FetchError("The address must start with https://")
    if not parts.hostname:
        raise FetchError("The address has no host")
    try:
        parts.port  # noqa: B018 - raises on a port out of range
    except ValueError as exc:
        raise FetchError("The address has a bad port") from exc


def public_address(host: str, port: int, *, limits: Limits, deadline: float | None = None) -> str:
    """The IP address to connect to for `host`: every address it resolves to must be public
    (unless allowed), so a host cannot point at the private network, now or on a later lookup."""
    lookup = _LOOKUPS.submit(socket.getaddrinfo, host, port, type=socket.SOCK_STREAM)
    try:
        infos = lookup.result(timeout=limits.timeout if deadline is None else _left(deadline, limits))
    except LookupTimeout as exc:
        raise FetchError(f"The host {host} took longer than {limits.timeout:g} s to look up") from exc
    except (OSError, UnicodeError) as exc:
        raise FetchError(f"The host {host} was not found") from exc
    addresses = [str(info[4][0]) for info in infos]
    if not addresses:
        raise FetchError(f"The host {host} was not found")
    if not limits.allow_private:
        for text in addresses:
            if not is_public(text):
                raise FetchError(f"The host {host} is on a private network; give a public calendar address")
    return addresses[0]


def is_public(text: str) -> bool:
    """Whether an IP address is on the public internet (not private, loopback, link-local, ...)."""
    ip = ipaddress.ip_address(text.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


def fetch(
    url: str,
    *,
    limits: Limits,
    etag: str | None = None,
    last_modified: str | None = None,
    transport: httpx.BaseTransport | None = None,
) -> Fetched:
    """GET the calendar (conditionally), following at most MAX_REDIRECTS redirects, each checked
    as the first address was. Raises FetchError."""
    deadline = time.monotonic() + limits.timeout
    headers = {"accept": "text/calendar, */*;q=0.5", "user-agent": "Tutorbook calendar sync"}
    if etag:
        headers["if-none-match"] = etag
    if last_modified:
        headers["if-modified-since"] = last_modified
    with httpx.Client(transport=transport, follow_redirects=False, trust_env=False) as client:
        for _ in range(MAX_REDIRECTS + 1):
            check_url(url, limits=limits)
            response_or_next = _one(client, url, headers=headers, limits=limits, deadline=deadline)
            if isinstance(response_or_next, Fetched):
                return response_or_next
            url = response_or_next
    raise FetchError(f"The address redirected more than {MAX_REDIRECTS} times")


def _one(client: httpx.Client, url: str, *, headers: dict[str, Any], limits: Limits, deadline: float) -> Fetched | str:
    """One request to the pinned address: the result, or the next URL of a redirect."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    scheme = parts.scheme.lower()
    port = parts.port or (443 if scheme == "https" else 80)
    ip = public_address(host, port, limits=limits, deadline=deadline)
    try:
        pinned = httpx.URL(url).copy_with(host=ip)
    except (httpx.InvalidURL, ValueError) as exc:
        raise FetchError("The address is not a valid URL") from exc
    named = f"[{host}]" if ":" in host else host  # an IPv6 literal keeps its brackets in Host
    host_header = named if parts.port is None else f"{named}:{parts.port}"
    try:
        with client.stream(
            "GET",
            pinned,
            headers={**headers, "host": host_header},
            extensions={"sni_hostname": host},  # TLS checks the certificate of the name, not the IP
            timeout=_left(deadline, limits),
        ) as response:
            if response.status_code in (301, 302, 303, 307, 308):
                location = response.headers.get("location")
                if not location:
                    raise FetchError(f"The calendar's server ({host}) redirected nowhere")
                return str(urljoin(url, location))
            if response.status_code == 304:
                return Fetched(None, headers.get("if-none-match"), headers.get("if-modified-since"))
            if response.status_code != 200:
                raise FetchError(f"The calendar's server ({host}) answered {response.status_code}")
            body = _read(response, limits=limits, deadline=deadline, host=host)
            return Fetched(body, response.headers.get("etag"), response.headers.get("last-modified"))
    except httpx.TimeoutException as exc:
        raise FetchError(f"The calendar's server ({host}) took longer than {limits.timeout:g} s") from exc
    except httpx.HTTPError as exc:
        raise FetchError(f"The calendar's server ({host}) could not be reached ({type(exc).__name__})") from exc


def _left(deadline: float, limits: Limits) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise FetchError(f"The calendar took longer than {limits.timeout:g} s to load")
    return left


def _read(response: httpx.Response, *, limits: Limits, deadline: float, host: str) -> bytes:
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limits.max_bytes:
        raise FetchError(f"The calendar is larger than {limits.max_bytes:,} bytes")
    chunks: list[bytes] = []
    size = 0
    for chunk in response.iter_bytes(CHUNK):
        size += len(chunk)
        if size > limits.max_bytes:
            raise FetchError(f"The calendar is larger than {limits.max_bytes:,} bytes")
        chunks.append(chunk)
        _left(deadline, limits)  # a server trickling bytes cannot hold the job past the deadline
    return b"".join(chunks)
