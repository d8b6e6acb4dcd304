"""What can go wrong in the accounts use cases; each is a platform problem type (RFC 9457),
so the exception handler renders them like every other service's errors."""

from __future__ import annotations

from kit.problems import Conflict, TooManyRequests, Unauthorized


class EmailTaken(Conflict):
    code = "email-taken"

    def __init__(self) -> None:
        super().__init__("An account with this e-mail address already exists.")


class InvalidCredentials(Unauthorized):
    code = "invalid-credentials"

    def __init__(self) -> None:
        super().__init__("Wrong e-mail address or password.", headers={})


class InvalidRefreshToken(Unauthorized):
    code = "invalid-refresh-token"

    def __init__(
        self, detail: str = "The refresh token is invalid, expired or already used."
    ) -> None:
        super().__init__(detail, headers={})


class _Throttled(TooManyRequests):
    """A budget is spent: the answer says when to try again (``Retry-After``, in seconds)."""

    message = ""

    def __init__(self, retry_after: int) -> None:
        super().__init__(
            self.message, headers={"Retry-After": str(retry_after)}, retry_after=retry_after
        )


class LoginThrottled(_Throttled):
    code = "login-throttled"
    message = "Too many failed logins; try again later."


class RegistrationThrottled(_Throttled):
    code = "registration-throttled"
    message = "Too many registrations; try again later."
