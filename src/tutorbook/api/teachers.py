"""/api/Teachers."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Annotated, Any

from fastapi import Path, Query, Request, Response
from pydantic_core import to_json
from sqlalchemy.orm import Session

from tutorbook.api import teacher_list as listing_api
from tutorbook.api.deps import ServicesDep, TeacherUser
from tutorbook.api.routing import Router
from tutorbook.bookings import availability as week_cache
from tutorbook.bookings import earnings, reporting
from tutorbook.bookings.schemas import EarningsOut, MonthTotalOut, SessionEarningOut
from tutorbook.clock import utc_now
from tutorbook.config import ALLOWED_DURATIONS
from tutorbook.errors import Unprocessable
from tutorbook.flows import payouts as payout_flows
from tutorbook.schemas import Envelope, Reply, errors, ok
from tutorbook.teachers import service, slots
from tutorbook.teachers.policy import Terms
from tutorbook.teachers.schemas import (
    AvailabilityIn,
    MeOut,
    OnboardingOut,
    PayoutStatusOut,
    PolicyIn,
    PolicyOut,
    ProfileIn,
    SlotOut,
    SubjectFilter,
    TeacherOut,
    TimeOffIn,
    TimeOffOut,
    WindowOut,
    hhmm,
    minutes,
)
from tutorbook.validation import Instant

router = Router(prefix="/api/Teachers", tags=["Teachers"], responses=errors(400, 401, 403, 404, 422))

TeacherId = Annotated[uuid.UUID, Path(alias="teacherId")]
TimeOffId = Annotated[uuid.UUID, Path(alias="timeOffId")]


def _windows_out(ws: list[slots.Window]) -> list[WindowOut]:
    return [WindowOut(weekday=w.weekday, start=hhmm(w.start_minute), end=hhmm(w.end_minute)) for w in ws]


AfterName = Annotated[
    str | None,
    Query(max_length=400, description="the cursor the previous page's `Link` gave (opaque): the page after it"),
]
LIST_HEADERS = {
    "Link": {
        "description": 'with `pageSize`, when more teachers follow: `<url of the next page>; rel="next"`',
        "schema": {"type": "string"},
    },
    "ETag": {
        "description": "send it back as `If-None-Match`: 304 while the list has not changed",
        "schema": {"type": "string"},
    },
}


@router.get(
    "",
    response_model=Envelope[list[TeacherOut]],
    name="list",
    responses={200: {"headers": LIST_HEADERS}, 304: {"description": "the list has not changed (If-None-Match)"}},
)
async def list_teachers(
    request: Request,
    svc: ServicesDep,
    subject: SubjectFilter | None = Query(default=None),
    min_rate: int | None = Query(default=None, alias="minRate", ge=0, description="minor units per hour, at least"),
    max_rate: int | None = Query(default=None, alias="maxRate", ge=0, description="minor units per hour, at most"),
    page_size: int | None = Query(default=None, alias="pageSize", ge=1, le=100, description="a page at a time"),
    after: AfterName = None,
) -> Response:
    """Listed teachers with subjects and price per hour, by name; optionally one subject and a
    price range. Whole by default; with `pageSize`, a page at a time (the next page's URL in the
    `Link` header). Answers carry an `ETag` (304 for `If-None-Match` while no teacher changed)."""
    position = listing_api.decode_after(after)
    listing = await svc.read(svc.teacher_list.current)
    query = (subject.lower() if subject else None, min_rate, max_rate, page_size, position)
    etag = listing_api.etag(listing.version, query)
    headers = {"ETag": etag, "Cache-Control": listing_api.cache_control(svc.settings.teachers_max_age_seconds)}
    if etag in listing_api.if_none_match(request):
        return Response(status_code=304, headers=headers)
    page, nxt = listing_api.select(
        listing.teachers, subject=subject, min_rate=min_rate, max_rate=max_rate, page_size=page_size, after=position
    )
    if nxt is not None:
        headers["Link"] = f'<{request.url.include_query_params(after=nxt)}>; rel="next"'
    body = listing.render(query, lambda: listing_api.render(page))
    return Response(body, media_type="application/json", headers=headers)


def me_out(session: Session, teacher_id: uuid.UUID) -> MeOut:
    gaps = service.checklist(session, teacher_id)
    return MeOut(**service.get_teacher(session, teacher_id).model_dump(), listed=not gaps, missing=gaps)


@router.get("/me", response_model=Envelope[MeOut])
async def get_me(user: TeacherUser, svc: ServicesDep) -> Reply:
    """Your profile, and what is missing before parents see you (`missing`: price, subjects, hours)."""
    return ok(await svc.read(me_out, user.id))


@router.put("/me", response_model=Envelope[MeOut])
async def update_me(body: ProfileIn, user: TeacherUser, svc: ServicesDep) -> Reply:
    """Change your profile."""
    return ok(await svc.tx(_update_me, teacher_id=user.id, fields=body.model_dump()), "Profile updated")


def _update_me(session: Session, *, teacher_id: uuid.UUID, fields: dict[str, Any]) -> MeOut:
    service.update_profile(session, teacher_id=teacher_id, fields=fields)
    return me_out(session, teacher_id)


@router.get("/me/availability", response_model=Envelope[list[WindowOut]], name="my_availability")
async def my_windows(user: TeacherUser, svc: ServicesDep) -> Reply:
    """Your weekly hours."""
    return ok(_windows_out(await svc.read(service.windows, user.id)))


@router.put("/me/availability", response_model=Envelope[list[WindowOut]], name="set_my_availability")
async def set_my_windows(body: AvailabilityIn, user: TeacherUser, svc: ServicesDep) -> Reply:
    """Replace your weekly hours (local times in your profile's time zone)."""
    new = [slots.Window(w.weekday, minutes(w.start), minutes(w.end)) for w in body.windows]
    return ok(_windows_out(await svc.tx(service.set_windows, teacher_id=user.id, new=new)), "Availability updated")


@router.post("/me/payouts/onboard", response_model=Envelope[OnboardingOut], responses=errors(502, 504))
async def onboard_payouts(user: TeacherUser, svc: ServicesDep) -> Reply:
    """Connect payouts: your Stripe Express account (made once) and the Stripe-hosted onboarding
    page to send you to. Coming back says nothing by itself: read GET /me/payouts."""
    return ok(OnboardingOut(url=await payout_flows.onboard(svc, teacher=user)), "Continue on Stripe")


@router.get("/me/payouts", response_model=Envelope[PayoutStatusOut])
async def my_payouts(user: TeacherUser, svc: ServicesDep) -> Reply:
    """Your payout state, read from Stripe now (the last known one when Stripe is unreachable)."""
    return ok(PayoutStatusOut.model_validate(await payout_flows.refresh(svc, teacher=user)))


MAX_EARNINGS_RANGE = timedelta(days=732)


def earnings_range(from_: datetime | None, to: datetime | None, now: datetime) -> tuple[datetime, datetime]:
    """[from, to), by default the last 12 months and the next one; 422 when empty or over 2 years."""
    start = from_ or now - timedelta(days=365)
    end = to or now + timedelta(days=31)
    if end <= start or end - start > MAX_EARNINGS_RANGE:
        raise Unprocessable(
            "Give a range of at most two years, `from` before `to`",
            data=[{"field": "to", "message": "after from, at most 2 years later"}],
        )
    return start, end


def earnings_out(found: earnings.Earnings, start: datetime, end: datetime) -> EarningsOut:
    return EarningsOut(
        from_=start,
        to=end,
        sessions=[SessionEarningOut.model_validate(e, from_attributes=True) for e in found.sessions],
        months=[MonthTotalOut.model_validate(m, from_attributes=True) for m in found.months],
    )


@router.get("/me/earnings", response_model=Envelope[EarningsOut])
async def my_earnings(
    user: TeacherUser,
    svc: ServicesDep,
    from_: Instant | None = Query(default=None, alias="from"),
    to: Instant | None = Query(default=None),
) -> Reply:
    """Your paid sessions starting in [from, to) with gross, refunded, the platform's fee and your
    net (minor units), and totals per month."""
    start, end = earnings_range(from_, to, utc_now())
    found = await svc.read(earnings.for_teacher, teacher_id=user.id, start=start, end=end)
    return ok(earnings_out(found, start, end))


@router.get("/me/policy", response_model=Envelope[PolicyOut], name="my_policy")
async def my_policy(user: TeacherUser, svc: ServicesDep) -> Reply:
    """Your cancellation and reschedule terms (the platform's until you set your own)."""
    return ok(service.policy_out(await svc.read(service.terms, teacher_id=user.id, platform=svc.terms)))


@router.put("/me/policy", response_model=Envelope[PolicyOut], name="set_my_policy")
async def set_my_policy(body: PolicyIn, user: TeacherUser, svc: ServicesDep) -> Reply:
    """Set your terms for bookings paid from now on; bookings paid already keep the terms they were paid under."""
    new = await svc.tx(service.set_terms, teacher_id=user.id, new=Terms(**body.model_dump()))
    return ok(service.policy_out((new, False)), "Terms updated")


@router.get("/me/time-off", response_model=Envelope[list[TimeOffOut]])
async def my_time_off(user: TeacherUser, svc: ServicesDep) -> Reply:
    """Your time off that is not over yet, each with the paid sessions inside it (to cancel or move)."""
    found = await svc.read(reporting.time_off_with_sessions, teacher_id=user.id, now=utc_now())
    return ok([TimeOffOut(**t) for t in found])


@router.post("/me/time-off", response_model=Envelope[TimeOffOut], status_code=201)
async def add_my_time_off(body: TimeOffIn, user: TeacherUser, svc: ServicesDep) -> Reply:
    """Take a range out of your free time (UTC instants). Paid sessions inside it stay booked and
    are listed in `affectedSessions` for you to cancel or move."""
    out = await svc.tx(
        reporting.add_time_off,
        teacher_id=user.id,
        starts_at=body.starts_at,
        ends_at=body.ends_at,
        note=body.note,
        now=utc_now(),
    )
    return ok(TimeOffOut(**out), "Time off added")


@router.delete("/me/time-off/{timeOffId}", response_model=Envelope[None])
async def delete_my_time_off(time_off_id: TimeOffId, user: TeacherUser, svc: ServicesDep) -> Reply:
    """Remove one of your time-off ranges; its times are free again."""
    await svc.tx(service.delete_time_off, teacher_id=user.id, time_off_id=time_off_id)
    return ok(None, "Time off removed")


@router.get("/{teacherId}", response_model=Envelope[TeacherOut], name="get")
async def get_teacher(teacher_id: TeacherId, svc: ServicesDep) -> Reply:
    """One teacher."""
    return ok(await svc.read(service.get_teacher, teacher_id))


@router.get("/{teacherId}/availability", response_model=Envelope[list[SlotOut]])
async def availability(
    teacher_id: TeacherId,
    svc: ServicesDep,
    from_: Instant | None = Query(default=None, alias="from"),
    to: Instant | None = Query(default=None),
    duration_minutes: int = Query(default=60, alias="durationMinutes", description="the session's length"),
) -> Response:
    """Every session of `durationMinutes` that can be booked starting between `from` and `to`
    (default: the next 7 days), as {startsAt, endsAt}: whole inside the teacher's hours, outside
    their time off, clear of every holding booking. Each teacher's weeks are cached until their
    schedule changes (a booking, their hours or time off): a slot taken is gone from the next answer."""
    if duration_minutes not in ALLOWED_DURATIONS:
        allowed = ", ".join(map(str, ALLOWED_DURATIONS))
        raise Unprocessable(
            f"durationMinutes is one of {allowed}", data=[{"field": "durationMinutes", "message": "not offered"}]
        )
    now = utc_now()
    start = from_ or now
    end = to or start + timedelta(days=7)
    length = timedelta(minutes=duration_minutes)
    body = await svc.read(
        week_cache.bookable_answer,
        cache=svc.availability,
        teacher_id=teacher_id,
        start=start,
        end=end,
        minutes=duration_minutes,
        now=now,
        render=lambda starts: render_slots(starts, length),
    )
    return Response(body, media_type="application/json")


def render_slots(starts: list[datetime], length: timedelta) -> bytes:
    """`Envelope[list[SlotOut]]` of these starts as JSON bytes, byte for byte what FastAPI writes
    for the route's response model, without a model per slot (a week of 30-minute steps is 336 of
    them, each validated twice): pydantic's own serializer writes the datetimes. The starts are
    aware UTC (`slots.start_times`), which pydantic writes with a trailing Z, as `UtcDatetime` does."""
    data = [{"startsAt": s, "endsAt": s + length} for s in starts]
    return to_json({"success": True, "message": "OK", "data": data})
