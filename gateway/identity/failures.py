"""Why authentication failed: a metric label and an audit reason, never shown to the client."""

from __future__ import annotations

from enum import Enum

from gateway.policy.accounts import AccountState
from gateway.policy.decide import Reason


class AuthFailure(Enum):
    BAD_PASSWORD = "bad_password"  # noqa: S105 - a metric label
    UNKNOWN_USER = "unknown_user"
    DISABLED = "disabled"
    EXPIRED = "expired"
    LOCKED_OUT = "locked_out"
    MALFORMED = "malformed"
    BAD_TOKEN = "bad_token"  # noqa: S105 - a metric label
    INSECURE_TRANSPORT = "insecure_transport"
    UNAVAILABLE = "unavailable"  # a backend could not decide (IdentityUnavailable): 503


class IdentityUnavailable(Exception):
    """A backend could not decide: a directory or an issuer that is down, with nothing cached
    that may still be used. The caller gets 503 UNAVAILABLE, never a grant and never a 401.
    `backend` ("directory", "federation", "sso") and `reason` are short, low-cardinality labels."""

    def __init__(self, backend: str, reason: str) -> None:
        super().__init__(f"{backend} unavailable: {reason}")
        self.backend = backend
        self.reason = reason


def failure_for_state(state: AccountState) -> AuthFailure | None:
    """The one mapping of an account's state to a refusal (None: active)."""
    return _STATE_FAILURES.get(state)


def failure_for_gate(reason: Reason) -> AuthFailure | None:
    """The refusal for an account state that decided on its own (None: admin, not a refusal)."""
    return _GATE_FAILURES.get(reason)


_STATE_FAILURES = {AccountState.DISABLED: AuthFailure.DISABLED,
                   AccountState.EXPIRED: AuthFailure.EXPIRED}
_GATE_FAILURES = {Reason.DISABLED: AuthFailure.DISABLED, Reason.EXPIRED: AuthFailure.EXPIRED,
                  Reason.UNKNOWN_ACCOUNT: AuthFailure.UNKNOWN_USER}
