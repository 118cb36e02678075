"""One Settings object, read from TUTORBOOK_* environment variables (and an optional .env)."""

from __future__ import annotations

import ipaddress
import json
import secrets
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

Duration = Literal[30, 45, 60, 90, 120]  # minutes a booking may last
ALLOWED_DURATIONS: tuple[Duration, ...] = get_args(Duration)
# A checkout's expires_at = booking time + TUTORBOOK_CHECKOUT_TTL_MINUTES + this margin (so the slot
# is held a little past Stripe's own expiry). Stripe wants expires_at "30 minutes to 24 hours
# after creation" (the Checkout Sessions API), which bounds the TTL setting.
CHECKOUT_MARGIN_MINUTES = 1
CHECKOUT_TTL_RANGE = (30, 24 * 60 - CHECKOUT_MARGIN_MINUTES)


class ConfigurationError(RuntimeError):
    """The configuration cannot run in the requested environment."""


class Settings(BaseSettings):
    """Every knob of Tutorbook; defaults run a demo with no configuration."""

    model_config = SettingsConfigDict(env_prefix="TUTORBOOK_", env_file=".env", extra="ignore")

    env: str = "development"
    var_dir: Path = Path("var")
    database_url: str = ""
    # A direct connection to PostgreSQL, past any PgBouncer: migrations and the mail worker's
    # LISTEN (neither works through a transaction-mode pooler). Empty: the database URL.
    database_direct_url: str = ""
    # Connections per engine and process (docs/operations.md, "Connections"): a process has two
    # engines on PostgreSQL (the async request path and the sync one), so it opens at most
    # 2 x (pool size + overflow); workers x that must stay under PostgreSQL's max_connections.
    db_pool_size: int = Field(default=10, ge=1, le=1000)
    db_max_overflow: int = Field(default=0, ge=0, le=1000)
    # How long a request waits for a pooled connection (or, on a sync route, for its place among
    # the pool's connections) before a 503 with Retry-After (issue #33: 30 s of waiting was a 500).
    # 10 s: the requests in flight (100) share the pool's 10 connections, so on a machine serving
    # fewer than 10 requests a second (a busy one) an admitted request's turn came after 5 s.
    db_pool_timeout_seconds: float = Field(default=10, gt=0)
    # The asyncio engine (asyncpg) for the hot async routes on PostgreSQL; off: a worker thread.
    db_async: bool = True
    # Ping each pooled connection before the async path uses it (off: a dead one fails one request, 503).
    db_async_pre_ping: bool = False
    # The database URL points at a transaction-mode PgBouncer: no server-side prepared statement
    # is kept (asyncpg's caches off, unique statement names; psycopg never prepares).
    db_pgbouncer: bool = False
    # Overload (tutorbook.api.overload): requests worked on at once per process, how many more may wait
    # for a place and for how long; the rest are answered 503 with Retry-After at once. Not tied to
    # the pool's size: a booking waiting on Stripe holds a place but no connection, and 100 parents
    # booking with Stripe at 300 ms need about 60 places (docs/PERFORMANCE.md section 9). The wait is
    # long enough for a crowd of 1,000 that waits for its answers to be served, not refused, by a
    # process answering 100 a second (900 queued / 100 per s = 9 s); past the queue, refused at once.
    max_requests_in_flight: int = Field(default=100, ge=1, le=100_000)
    admission_queue: int = Field(default=1000, ge=0, le=100_000)
    admission_wait_seconds: float = Field(default=10.0, ge=0, le=60)
    retry_after_seconds: int = Field(default=1, ge=1, le=3600)
    # anyio's worker threads (sync routes, password hashing, SQLite): FastAPI's default is 40.
    worker_threads: int = Field(default=40, ge=1, le=1000)
    # Garbage collection (app._tune_gc): freeze what start-up made, so no collection walks it
    # again, and collect the young generation less often than CPython's default (700, 10, 10).
    gc_freeze: bool = True
    gc_thresholds: Annotated[tuple[int, int, int], NoDecode] = (50_000, 20, 100)
    # The public teacher list's Cache-Control: 0 = "no-cache" (clients revalidate with its ETag
    # every time, so a change shows at once); N = "public, max-age=N" (a CDN may serve it N s).
    teachers_max_age_seconds: int = Field(default=0, ge=0, le=86_400)
    public_url: str = "http://127.0.0.1:8000"
    cors_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)
    log_json: bool | None = None
    log_level: str = "INFO"
    # OpenTelemetry tracing (tutorbook.telemetry; docs/operations.md, "Tracing"): off (nothing of
    # OpenTelemetry is imported), otlp (where to: the standard OTEL_EXPORTER_OTLP_* variables) or
    # console (spans on stderr). The ratio of new traces kept; a continued trace keeps its choice.
    tracing: Literal["off", "otlp", "console"] = "off"
    tracing_sample_ratio: float = Field(default=1.0, ge=0, le=1)

    jwt_secret: str = ""
    jwt_ttl_minutes: int = 12 * 60
    password_min_length: int = 8
    password_max_length: int = 256
    # zxcvbn's score (0-4) a new password needs; 3 is "safely unguessable" in its terms.
    password_min_score: int = Field(default=3, ge=0, le=4)
    argon2_time_cost: int = 3
    argon2_memory_kib: int = 65536
    argon2_parallelism: int = 4
    login_max_failures: int = 5
    login_window_seconds: int = Field(default=900, ge=1)
    # Proxies (IPs or CIDRs) whose X-Forwarded-For names the client; nobody else's is believed.
    trusted_proxies: Annotated[list[str], NoDecode] = Field(default_factory=list)
    # A request body larger than this is refused with 413 before it is read (the webhook: 512 KiB).
    max_body_bytes: int = Field(default=1024 * 1024, ge=1024)
    # `tutorbook serve`: a connection that has not sent a whole request head within this is closed.
    header_timeout_seconds: float = Field(default=10, gt=0, le=300)
    # Bearer token for Prometheus on /metrics (admins' JWTs work too); empty: admins only.
    metrics_token: str = ""

    stripe_secret_key: str = ""
    # Stripe signs the events of each webhook endpoint with that endpoint's own secret: the
    # platform's endpoint (/api/StripeWebhook/webhook) and the Connect one (/api/StripeWebhook/connect,
    # events of the teachers' connected accounts). Empty Connect secret: that route refuses all.
    stripe_webhook_secret: str = ""
    stripe_connect_webhook_secret: str = ""
    stripe_timeout_seconds: float = 10.0
    stripe_max_network_retries: int = 2
    # Async Stripe calls in flight per process (payments.limiter.CallBound): 1.5 x the calls completed a second
    # x their latency, at least the first, at most the second (also the connections kept for them).
    stripe_max_concurrent_calls: int = Field(default=24, ge=1)
    stripe_max_calls_in_flight: int = Field(default=256, ge=1, le=10_000)
    # Stripe calls the expire job makes at once (threads) when it settles stale checkouts in bulk.
    job_stripe_concurrency: int = Field(default=32, ge=1, le=256)
    checkout_ttl_minutes: int = Field(default=30, ge=CHECKOUT_TTL_RANGE[0])
    # The teacher row lock. Off only in the race test's control run (with the PostgreSQL
    # exclusion constraint dropped too), to show that the check in Python alone loses races.
    booking_guard: bool = True

    sandbox_host: str = "127.0.0.1"
    sandbox_port: int = 12111
    sandbox_url: str = ""
    sandbox_substitute_cancel_url: bool = False
    sandbox_enabled: bool = True

    # Stripe Connect (docs/payments.md): whether a teacher must have payouts enabled to be
    # booked, the platform's share of each payment, the country of new connected accounts.
    require_teacher_payouts: bool = False
    platform_fee_percent: float = Field(default=15, ge=0, le=100)
    connect_country: str = Field(default="US", min_length=2, max_length=2)

    # Bounded as a teacher's own terms are (teachers/schemas.py): a negative share would refund less than nothing.
    refund_full_before_hours: int = Field(default=24, ge=0, le=24 * 366)
    refund_late_percent: int = Field(default=0, ge=0, le=100)
    # A teacher's terms default to these (with the two above); see teachers/policy.py.
    reschedule_deadline_hours: int = Field(default=24, ge=0, le=24 * 366)
    max_reschedules: int = Field(default=2, ge=0, le=20)

    meeting_provider: str = "jitsi"
    jitsi_base_url: str = "https://meet.jit.si"
    meeting_max_failures: int = 5
    google_credentials_mode: str = "service_account"
    google_service_account_file: str = ""
    google_impersonate: str = ""
    google_calendar_id: str = ""
    google_send_invites: bool = False

    # Mail: SMTP (smtp://user:pass@host:587 with STARTTLS, smtps:// for implicit TLS); unset keeps
    # mail in the development mailbox (/dev/mail, `tutorbook mail list`). See docs/operations.md.
    smtp_url: str = ""
    mail_from: str = ""
    product_name: str = "Tutorbook"
    smtp_timeout_seconds: float = 10.0
    mail_max_attempts: int = Field(default=8, ge=1)
    mail_retry_base_seconds: float = Field(default=60, gt=0)
    mail_batch_size: int = Field(default=50, ge=1)
    # "Complete your payment" goes out this long after booking, only if still Pending and unpaid.
    mail_payment_nudge_minutes: int = Field(default=10, ge=0)
    # A confirmation waits this long for the meeting link before it goes out without one.
    mail_link_wait_minutes: int = Field(default=10, ge=0)
    # Changes to one lesson within this long are told in one email of its latest state, sent this
    # long after the last of them (ten moves in a minute: one "new time" email to each side).
    mail_change_window_seconds: int = Field(default=120, ge=0, le=3600)
    password_reset_ttl_minutes: int = Field(default=30, ge=1, le=24 * 60)
    # At most one password reset email per account this often (asking again sooner sends nothing).
    password_reset_interval_minutes: int = Field(default=5, ge=0, le=60)

    jobs_enabled: bool = True
    # On SIGTERM `tutorbook serve` stops accepting and gives the requests in flight this long to
    # finish (uvicorn's timeout_graceful_shutdown); then it closes its pools and exits 0.
    shutdown_grace_seconds: int = Field(default=30, ge=1, le=3600)
    # Before that, for this long, it goes on answering everything while /health/ready answers 503,
    # so a load balancer takes it out of rotation first (0: no drain, stop accepting at once).
    shutdown_drain_seconds: float = Field(default=0, ge=0, le=600)
    job_mail_interval_s: float = 15
    # On PostgreSQL the mail worker LISTENs for new mail (jobs/wakeup.py); off: it polls only.
    mail_listen: bool = True
    job_reminders_interval_s: float = 300
    job_expire_interval_s: float = 60
    job_complete_interval_s: float = 300
    job_meetings_interval_s: float = 60
    job_purge_interval_s: float = 3600
    job_credits_interval_s: float = 3600  # credits past their validity expired, the 30/7-day warnings
    job_reconcile_interval_s: float = 600
    job_calendar_sync_interval_s: float = 300
    job_series_interval_s: float = 300

    # Weekly series paid by card (issue #29): each later lesson is charged off-session this many
    # days before it starts; a charge that fails leaves the parent a link to pay that lesson until
    # this many hours before it starts, after which only that lesson is cancelled.
    series_charge_days_before: int = Field(default=3, ge=1, le=30)
    series_pay_deadline_hours: int = Field(default=24, ge=1, le=24 * 14)

    # Teachers' own calendars (docs/calendars.md): how they are fetched and how long their busy
    # times are trusted after the last good fetch.
    calendar_allow_http: bool = False  # development only: plain http:// addresses
    calendar_allow_private: bool = False  # development and tests: loopback, private, link-local hosts
    calendar_max_bytes: int = Field(default=5_000_000, ge=1024)
    calendar_timeout_seconds: float = Field(default=10.0, gt=0, le=120)
    calendar_stale_hours: int = Field(default=24, ge=1)
    calendar_horizon_days: int = Field(default=371, ge=7, le=800)
    purge_retention_days: int = 30
    orphan_threshold_minutes: int = 60
    reconcile_lookback_hours: int = 48

    @field_validator("checkout_ttl_minutes")
    @classmethod
    def _checkout_ttl(cls, value: int) -> int:
        low, high = CHECKOUT_TTL_RANGE
        if not low <= value <= high:
            raise ValueError(
                f"must be {low} to {high} minutes: with the {CHECKOUT_MARGIN_MINUTES}-minute margin Tutorbook adds, "
                "a checkout's expires_at must lie within Stripe's 30 minutes to 24 hours after creation"
            )
        return value

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _split_origins(cls, value: Any) -> Any:
        if isinstance(value, str):
            if value.strip().startswith("["):
                return json.loads(value)
            return [v.strip() for v in value.split(",") if v.strip()]
        return value

    @field_validator("gc_thresholds", mode="before")
    @classmethod
    def _split_thresholds(cls, value: Any) -> Any:
        if isinstance(value, str):
            parts = [p.strip() for p in value.split(",")]
            if len(parts) != 3 or not all(p.isdigit() for p in parts):
                raise ValueError("TUTORBOOK_GC_THRESHOLDS: three whole numbers, e.g. 50000,20,100")
            return tuple(int(p) for p in parts)
        return value

    @field_validator("trusted_proxies", mode="before")
    @classmethod
    def _split_proxies(cls, value: Any) -> Any:
        items = [v.strip() for v in value.split(",") if v.strip()] if isinstance(value, str) else value
        for item in items:
            try:
                ipaddress.ip_network(item, strict=False)
            except ValueError as exc:
                raise ValueError(f"TUTORBOOK_TRUSTED_PROXIES: {item!r} is not an IP address or CIDR network") from exc
        return items

    def google_config(self) -> dict[str, Any]:
        """GoogleMeetProvider's keyword arguments (service-account mode; see docs/meetings.md)."""
        if self.google_credentials_mode != "service_account":
            raise ConfigurationError(
                "Only TUTORBOOK_GOOGLE_CREDENTIALS_MODE=service_account is wired to the settings; "
                "per-teacher OAuth tokens need a token store (see docs/meetings.md)"
            )
        return {
            "credentials_mode": "service_account",
            "service_account_file": self.google_service_account_file or None,
            "impersonate": self.google_impersonate or None,
            "calendar_id": self.google_calendar_id or None,
            "send_attendee_invites": self.google_send_invites,
        }

    @property
    def is_production(self) -> bool:
        return self.env.lower() == "production"

    @property
    def sender(self) -> str:
        """The From address: TUTORBOOK_MAIL_FROM, or a development default."""
        return self.mail_from or f"{self.product_name} <no-reply@tutorbook.invalid>"

    @property
    def uses_sandbox(self) -> bool:
        return not self.stripe_secret_key

    @property
    def direct_url(self) -> str:
        """TUTORBOOK_DATABASE_DIRECT_URL, or the database URL."""
        return self.database_direct_url or self.database_url

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    def resolved(self) -> Settings:
        """Fill the development defaults (SQLite in var/, generated secrets) and check production."""
        updates: dict[str, Any] = {}
        if not self.database_url:
            updates["database_url"] = f"sqlite:///{(self.var_dir / 'tutorbook.db').as_posix()}"
        if self.is_production:
            self._check_production(updates)
        if not self.jwt_secret:
            updates["jwt_secret"] = self._kept_secret("jwt-secret", lambda: secrets.token_urlsafe(48))
        if self.uses_sandbox and not self.stripe_webhook_secret:
            updates["stripe_webhook_secret"] = self._kept_secret(
                "webhook-secret", lambda: "whsec_" + secrets.token_hex(24)
            )
        if self.uses_sandbox and not self.stripe_connect_webhook_secret:
            updates["stripe_connect_webhook_secret"] = self._kept_secret(
                "connect-webhook-secret", lambda: "whsec_" + secrets.token_hex(24)
            )
        if self.uses_sandbox and not self.sandbox_url:
            updates["sandbox_url"] = f"http://{self.sandbox_host}:{self.sandbox_port}"
        return self.model_copy(update=updates)

    def _check_production(self, updates: dict[str, Any]) -> None:
        unsafe = [name for name in ("calendar_allow_http", "calendar_allow_private") if getattr(self, name)]
        if unsafe:
            raise ConfigurationError(
                "TUTORBOOK_ENV=production refuses "
                + ", ".join(f"TUTORBOOK_{name.upper()}=true" for name in unsafe)
                + " (development settings: calendar addresses could reach your private network)"
            )
        missing = []
        url = updates.get("database_url", self.database_url)
        if url.startswith("sqlite"):
            missing.append("TUTORBOOK_DATABASE_URL (a postgresql+psycopg:// URL)")
        if not self.jwt_secret:
            missing.append("TUTORBOOK_JWT_SECRET")
        if not self.stripe_secret_key:
            missing.append("TUTORBOOK_STRIPE_SECRET_KEY")
        if not self.stripe_webhook_secret:
            missing.append("TUTORBOOK_STRIPE_WEBHOOK_SECRET")
        if not self.smtp_url:
            missing.append("TUTORBOOK_SMTP_URL (smtp:// or smtps://)")
        if not self.mail_from:
            missing.append("TUTORBOOK_MAIL_FROM")
        if missing:
            raise ConfigurationError(
                "TUTORBOOK_ENV=production refuses generated secrets, the sandbox, SQLite and the development "
                "mailbox; set: " + ", ".join(missing)
            )

    def _kept_secret(self, name: str, make: Callable[[], str]) -> str:
        """A secret generated once and kept in var/, so restarts keep sessions and signatures."""
        path = self.var_dir / name
        if path.exists():
            return path.read_text().strip()
        self.var_dir.mkdir(parents=True, exist_ok=True)
        value = make()
        path.write_text(value)
        path.chmod(0o600)
        return value


@lru_cache
def get_settings() -> Settings:
    """The process-wide settings, resolved once."""
    return Settings().resolved()
