"""Request and response shapes for password reset, the calendar feed and mail settings."""

from __future__ import annotations

from pydantic import EmailStr, Field

from tutorbook.schemas import CamelModel, InputModel


class ForgotPasswordIn(InputModel):
    email: EmailStr


class ResetPasswordIn(InputModel):
    token: str = Field(min_length=10, max_length=200)
    password: str = Field(min_length=8, max_length=1024)


class MailSettingsIn(InputModel):
    reminders: bool


class MailSettingsOut(CamelModel):
    reminders: bool


class CalendarFeedOut(CamelModel):
    url: str
