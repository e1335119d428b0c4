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
