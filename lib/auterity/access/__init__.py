"""Who may see what: roles and grants (:mod:`~auterity.access.policy`, the committed
``parameters/access.yml``), users in the warehouse with argon2id passwords and sign-in
backoff (:mod:`~auterity.access.users`), stable keyed pseudonyms for personal data
(:mod:`~auterity.access.pseudonyms`) and the audit trail (:mod:`~auterity.access.trail`).

This layer sits between the warehouse and the metric layer: the metric layer applies a
role's row filters to every question, so reports, dashboards, exports, emails and the
API cannot go around them.
"""

from auterity.access.policy import (
    PERMISSIONS,
    Policy,
    Role,
    load_policy,
    policy_file,
    sees_within,
)
from auterity.access.pseudonyms import pseudonym
from auterity.access.trail import audit_trail, note_denied, note_export, note_policy
from auterity.access.users import (
    SIGN_IN_MODES,
    AccessDenied,
    SignIn,
    User,
    active_user,
    add_user,
    authenticate,
    get_user,
    has_users,
    list_users,
    set_disabled,
    set_password,
    set_role,
    sign_in_mode,
)

__all__ = [
    "PERMISSIONS",
    "SIGN_IN_MODES",
    "AccessDenied",
    "Policy",
    "Role",
    "SignIn",
    "User",
    "active_user",
    "add_user",
    "audit_trail",
    "authenticate",
    "get_user",
    "has_users",
    "list_users",
    "load_policy",
    "note_denied",
    "note_export",
    "note_policy",
    "policy_file",
    "pseudonym",
    "sees_within",
    "set_disabled",
    "set_password",
    "set_role",
    "sign_in_mode",
]
