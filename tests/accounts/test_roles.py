"""Role is defined once: the users table's CHECK, the register schema and AuthUser agree with it."""

import typing
import uuid

import pytest

from tutorbook.accounts.models import User
from tutorbook.accounts.schemas import RegisterIn
from tutorbook.identity import AuthUser, Role


def _user(role) -> AuthUser:
    return AuthUser(id=uuid.uuid4(), role=role, email="a@example.com", full_name="A", time_zone="UTC")


def test_the_users_check_constraint_allows_exactly_the_roles():
    (check,) = [c for c in User.__table__.constraints if c.name and str(c.name).endswith("role")]
    assert str(check.sqltext) == "role IN (" + ",".join(f"'{r.value}'" for r in Role) + ")"


def test_one_registers_as_a_parent_or_a_teacher_never_as_an_admin():
    assert set(typing.get_args(RegisterIn.model_fields["role"].annotation)) == {Role.PARENT, Role.TEACHER}


@pytest.mark.parametrize("role", list(Role))
def test_an_auth_user_holds_its_role_as_the_enum_whether_given_the_enum_or_its_value(role):
    for given in (role, role.value):
        user = _user(given)
        assert type(user.role) is Role and user.role is role


def test_an_auth_user_with_an_unknown_role_cannot_be_made():
    with pytest.raises(ValueError):
        _user("Root")
