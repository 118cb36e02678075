"""Notifications: the mail outbox (written in the transaction of the change it reports), the
templates, the iCalendar invites, SMTP delivery and the development mailbox."""
