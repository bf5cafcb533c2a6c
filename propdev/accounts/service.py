"""``Accounts``: what a person does with their own account, without staff.

- change the password (``account.password_change``): the current one is checked (failures
  count in the sign-in throttle), every other session is signed out;
- list the sessions and sign one out (``account.session_revoke``);
- reset a forgotten password with a one-time code sent by the ``Notifier``
  (``account.password_reset``): every session is signed out;
- activate an invited account with its activation code (``account.activate``).

Each change is one transaction with its audit entry (actor ``user:<id>``, subject the account).
A refused attempt is an entry too, ``denied``, written before the refusal is answered: a wrong
current password (``bad_password``), a wrong, expired or spent code (``bad_code``,
``code_spent``), an account that may not (``not_eligible``) or a username of no one's
(``unknown_user``, actor ``anonymous``), the throttle's refusal (``throttled``); the attempted
username and the address go to its personal fields, never a password or a code.
A signed-out session's refresh tokens are revoked in the store, and its access tokens (their
``sid``) through ``on_grant_revoked``: the node's revocations, heard by every node of a
cluster, so they stop at once everywhere.

A reset request answers the same whatever the username, and at once: the code is drawn,
stored and sent in the background, so neither the answer nor its timing says whether the
account exists. Requests are limited per address (``TooManyAttemptsError``) and per account
(silently: no more codes sent), and wrong codes count as failed sign-ins of the account.
"""

from __future__ import annotations

import asyncio
import hmac
import time
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import structlog

import propdev.accounts.codes as codes
import propdev.accounts.sessions as sessions
from propdev.accounts.errors import (
    AccountGoneError,
    InvalidCodeError,
    InvalidFieldError,
    SessionNotFoundError,
    TooManyAttemptsError,
    WrongPasswordError,
)
from propdev.accounts.notifier import RESET, Message, Notifier
from propdev.accounts.policy import check_new_password
from propdev.accounts.sessions import Session
from propdev.security import (
    Ceiling,
    FailureThrottle,
    LocalThrottle,
    RedisThrottle,
    SignInThrottle,
    hash_password,
    new_totp_secret,
    person_key_in,
    provisioning_uri,
    seal_record_in,
    seal_user_fields,
    vault_of,
    verify_password,
    wrapped_key_of,
)
from propdev.security import User as Account
from propdev.security.auth_audit import ANONYMOUS  # an attempt on a username of no one's
from propdev.storage import Database, Row, UnitConnection, audit

log = structlog.get_logger()

PASSWORD_CHANGE = "account.password_change"
SESSION_REVOKE = "account.session_revoke"
PASSWORD_RESET = "account.password_reset"
ACTIVATE = "account.activate"

RESET_CODE_TTL = 900.0
ACTIVATION_CODE_TTL = 7 * 24 * 3600.0
CODES_PER_ACCOUNT = Ceiling(3, 900.0)  # reset codes sent to one account per 15 minutes
REQUEST_WINDOW = 300.0
MAX_USERNAME = 128

GrantRevoked = Callable[[str, float], Awaitable[None]]

_ACCOUNT = (
    "SELECT u.*, r.moved_out_at AS moved_out_at, s.disabled_at AS disabled_at, "
    + wrapped_key_of("u.id")
    + " FROM users u"
    " LEFT JOIN residencies r ON r.user_id = u.id LEFT JOIN staff s ON s.user_id = u.id"
    " WHERE u.{column} = :value"
)
STAFF_ROLES = frozenset({"admin", "operator", "auditor"})
TOTP_ISSUER = "propdev"


def actor(user_id: str) -> str:
    """The audit actor of a person acting on their own account (as for their opens)."""
    return f"user:{user_id}"


def read_fields(body: object, names: Sequence[str]) -> dict[str, str]:
    """The string fields ``names`` of a JSON object, each required; anything else refused."""
    if not isinstance(body, Mapping):
        raise InvalidFieldError("body", "expected a JSON object")
    for key in body:
        if key not in names:
            raise InvalidFieldError(str(key), "unknown field")
    found: dict[str, str] = {}
    for name in names:
        value = body.get(name)
        if value is None:
            raise InvalidFieldError(name, "required")
        if not isinstance(value, str):
            raise InvalidFieldError(name, "must be a string")
        found[name] = value
    return found


def _username(value: str) -> str:
    name = value.strip().lower()
    if not name or len(name) > MAX_USERNAME:
        raise InvalidFieldError("username", f"must be 1 to {MAX_USERNAME} characters")
    return name


@dataclass(frozen=True, slots=True)
class ResetRequests:
    """Reset requests counted per client address (refused past the ceiling) and per account
    (no more codes sent past ``CODES_PER_ACCOUNT``)."""

    address: FailureThrottle
    account: FailureThrottle

    @classmethod
    def local(cls, per_address: int, *, clock: Callable[[], float] = time.time) -> ResetRequests:
        """This process's counts; ``per_address`` requests per 5 minutes."""
        return cls(
            address=LocalThrottle(Ceiling(per_address, REQUEST_WINDOW), clock=clock),
            account=LocalThrottle(CODES_PER_ACCOUNT, clock=clock),
        )

    @classmethod
    def shared(cls, redis: Any, *, prefix: str, per_address: int) -> ResetRequests:
        """Counts in a cluster's Redis under ``prefix`` (``ip:`` and ``acct:``)."""
        return cls(
            address=RedisThrottle(
                redis, Ceiling(per_address, REQUEST_WINDOW), prefix=f"{prefix}ip:"
            ),
            account=RedisThrottle(redis, CODES_PER_ACCOUNT, prefix=f"{prefix}acct:"),
        )


class Accounts:
    """Self-service on the accounts of one store (see the module docstring)."""

    def __init__(
        self,
        db: Database,
        *,
        notifier: Notifier,
        throttle: SignInThrottle,
        requests: ResetRequests,
        token_ttl: float,
        reset_ttl: float = RESET_CODE_TTL,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.db = db
        self.notifier = notifier
        self.throttle = throttle
        self.requests = requests
        self.token_ttl = token_ttl
        self.reset_ttl = reset_ttl
        self.clock = clock
        # The node's revocations: a revoked grant's access tokens are refused everywhere.
        self.on_grant_revoked: GrantRevoked | None = None
        self._deliveries: set[asyncio.Task[None]] = set()

    # -- password change ------------------------------------------------------------------

    async def change_password(
        self,
        user_id: str,
        current_sid: str | None,
        body: object,
        *,
        remote: str | None = None,
    ) -> int:
        """Check ``current_password``, set ``new_password`` and sign out every session but
        ``current_sid``; return how many were signed out."""
        data = read_fields(body, ("current_password", "new_password"))
        row = await self._account("id", user_id)
        if row is None or not _can_sign_in(row):
            raise AccountGoneError(user_id)
        name = str(row["username"])
        new = check_new_password(data["new_password"], name)
        address = remote or ""
        wait = await self.throttle.login_wait(name, address)
        if wait:
            await self._refused(PASSWORD_CHANGE, user_id, "throttled", address=address)
            raise TooManyAttemptsError(wait.seconds)
        old_hash = str(row["password_hash"])
        if not await asyncio.to_thread(verify_password, old_hash, data["current_password"]):
            await self._refused(PASSWORD_CHANGE, user_id, "bad_password", address=address)
            await self.throttle.login_failed(name, address)
            raise WrongPasswordError(user_id)
        new_hash = await asyncio.to_thread(hash_password, new)
        now = self.clock()

        def store(conn: UnitConnection) -> list[str] | None:
            changed = conn.run(
                "UPDATE users SET password_hash = :new WHERE id = :id AND password_hash = :old"
                " RETURNING id",
                new=new_hash,
                id=user_id,
                old=old_hash,
            )
            if not changed:  # changed meanwhile (another change, a move-out)
                return None
            revoked = sessions.revoke_others(conn, user_id, current_sid)
            for purpose in (codes.RESET, codes.ACTIVATION):  # a password chosen: moot
                conn.run(codes.RETIRE, user_id=user_id, purpose=purpose, now=now)
            audit.sync_append(
                conn, _record(user_id, PASSWORD_CHANGE, now, sessions_signed_out=len(revoked))
            )
            return revoked

        revoked = await self.db.unit(store)
        if revoked is None:
            await self._refused(PASSWORD_CHANGE, user_id, "changed_meanwhile", address=address)
            raise WrongPasswordError(user_id)
        await self.throttle.login_succeeded(name, address)
        await self._signed_out(revoked, now)
        log.info("password_changed", user_id=user_id, sessions_signed_out=len(revoked))
        return len(revoked)

    # -- sessions -------------------------------------------------------------------------

    async def sessions(self, user_id: str) -> list[Session]:
        """The account's live sessions, the most recently used first."""
        rows = await self.db.fetch_all(sessions.LIST, user_id=user_id, now=self.clock())
        return [Session.from_row(row) for row in rows]

    async def end_session(self, user_id: str, session_id: str) -> None:
        """Sign out one of the account's sessions; ``SessionNotFoundError`` if it is none of
        them. Ending one that had ended already changes nothing and is not an error."""
        now = self.clock()

        def store(conn: UnitConnection) -> bool:
            if not sessions.revoke_one(conn, user_id, session_id):
                return False
            audit.sync_append(conn, _record(user_id, SESSION_REVOKE, now, session=session_id))
            return True

        if not await self.db.unit(store):
            raise SessionNotFoundError(session_id)
        await self._signed_out([session_id], now)
        log.info("session_signed_out", user_id=user_id)

    # -- password reset -------------------------------------------------------------------

    async def request_reset(self, body: object, *, remote: str | None = None) -> None:
        """Send a reset code to ``username``'s account if there is one that may reset; answers
        the same (and as fast) whether there is or not."""
        name = _username(read_fields(body, ("username",))["username"])
        address = remote or ""
        wait = await self.requests.address.retry_after(address)
        if wait:
            raise TooManyAttemptsError(wait)
        await self.requests.address.failed(address)
        if await self.requests.account.retry_after(name):
            log.warning("password_reset_suppressed", reason="too_many_codes")
            return
        await self.requests.account.failed(name)
        self._background(self._send_reset(name))

    async def confirm_reset(self, body: object, *, remote: str | None = None) -> None:
        """Set ``new_password`` if ``code`` is the account's live reset code; every session of
        the account is signed out."""
        data = read_fields(body, ("username", "code", "new_password"))
        await self._redeem(
            codes.RESET,
            _username(data["username"]),
            data["code"],
            check_new_password(data["new_password"], data["username"]),
            PASSWORD_RESET,
            remote,
        )

    # -- activation -----------------------------------------------------------------------

    async def activate(self, body: object, *, remote: str | None = None) -> dict[str, Any]:
        """Set the password of an invited account with its activation code; what the answer
        carries besides: nothing for a resident, the new TOTP seed as ``totp_uri`` for staff
        (their second factor is mandatory: the first login with a code of it completes the
        enrolment)."""
        data = read_fields(body, ("username", "activation_code", "password"))
        name = _username(data["username"])
        secret = await self._redeem(
            codes.ACTIVATION,
            name,
            data["activation_code"],
            check_new_password(data["password"], data["username"], field="password"),
            ACTIVATE,
            remote,
        )
        if secret is None:
            return {}
        return {"totp_uri": provisioning_uri(secret, name, TOTP_ISSUER)}

    # -- lifecycle ------------------------------------------------------------------------

    async def settle(self) -> None:
        """Wait for the deliveries under way (tools, tests, shutdown)."""
        while self._deliveries:
            await asyncio.gather(*list(self._deliveries), return_exceptions=True)

    # -- internals ------------------------------------------------------------------------

    async def _account(self, column: str, value: str) -> Row | None:
        return await self.db.fetch_one(_ACCOUNT.format(column=column), value=value)

    def _background(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._deliveries.add(task)
        task.add_done_callback(self._deliveries.discard)

    async def _send_reset(self, name: str) -> None:
        try:
            row = await self._account("username", name)
            if row is None or not _may_reset(row):
                log.info("password_reset_not_sent", reason="no_such_resident")
                return
            user_id = str(row["id"])
            now = self.clock()
            code, statements = codes.issue(
                self.db, user_id, codes.RESET, ttl=self.reset_ttl, now=now
            )

            def store(conn: UnitConnection) -> None:
                for sql, params in statements:
                    conn.run(sql, **params)

            await self.db.unit(store)
            account = Account.from_row(row, vault_of(self.db))
            minutes = max(1, round(self.reset_ttl / 60))
            await self.notifier.send(
                Message(
                    user_id=user_id,
                    username=account.username,
                    phone=account.phone,
                    purpose=RESET,
                    code=code,
                    expires_at=now + self.reset_ttl,
                    text=f"Your password reset code: {code}. It expires in {minutes} min.",
                )
            )
            log.info("password_reset_sent", user_id=user_id)
        except Exception:
            log.exception("password_reset_not_sent", reason="delivery_failed")

    async def _redeem(
        self,
        purpose: str,
        name: str,
        code: str,
        password: str,
        action: str,
        remote: str | None,
    ) -> str | None:
        """Redeem the code; the new TOTP seed of a staff account's activation, else None."""
        address = remote or ""
        wait = await self.throttle.login_wait(name, address)
        if wait:
            await self._refused(action, None, "throttled", username=name, address=address)
            raise TooManyAttemptsError(wait.seconds)
        now = self.clock()
        row = await self._account("username", name)
        # The same statements whether the account exists or not (no timing tells which).
        eligible = row is not None and (
            _may_activate(row) if purpose == codes.ACTIVATION else _may_reset(row)
        )
        owner = str(row["id"]) if row is not None and eligible else ""
        live = await self.db.fetch_all(
            codes.LIVE, user_id=owner, purpose=purpose, now=now, max=codes.MAX_ATTEMPTS
        )
        hashed = codes.code_hash(self.db, owner, purpose, code)
        found = next(
            (c for c in live if hashed and hmac.compare_digest(hashed, str(c["code_hash"]))),
            None,
        )
        if row is None or not eligible or found is None:
            # The entry names the account only when the username is one (an attempt on it).
            refusal = _record(
                str(row["id"]) if row is not None else None,
                action,
                now,
                decision="denied",
                reason="bad_code" if eligible else "not_eligible" if row else "unknown_user",
                personal={"username": name, "address": address},
            )
            missed = live[0]["id"] if live else None

            def refuse(conn: UnitConnection) -> None:
                if missed is not None:
                    conn.run(codes.MISSED, id=missed)
                audit.sync_append(conn, seal_record_in(conn.run, vault_of(self.db), refusal))

            await self.db.unit(refuse)
            await self.throttle.login_failed(name, address)
            raise InvalidCodeError(purpose)
        user_id = str(row["id"])
        password_hash = await asyncio.to_thread(hash_password, password)
        secret = new_totp_secret() if purpose == codes.ACTIVATION and _is_staff(row) else None

        def store(conn: UnitConnection) -> list[str] | None:
            claimed = conn.run(codes.CLAIM, id=found["id"], now=now, max=codes.MAX_ATTEMPTS)
            if not claimed:  # used or spent meanwhile
                return None
            conn.run(
                "UPDATE users SET password_hash = :h WHERE id = :id", h=password_hash, id=user_id
            )
            if secret is not None:  # staff: a new second factor, mandatory from now on
                vault = vault_of(self.db)
                key = person_key_in(conn.run, vault, user_id)
                sealed = seal_user_fields(vault, user_id, key, totp_secret=secret)
                conn.run(
                    "UPDATE users SET totp_secret = :t WHERE id = :id",
                    t=sealed["totp_secret"],
                    id=user_id,
                )
            revoked = sessions.revoke_all(conn, user_id)
            audit.sync_append(conn, _record(user_id, action, now, sessions_signed_out=len(revoked)))
            return revoked

        revoked = await self.db.unit(store)
        if revoked is None:
            await self._refused(action, user_id, "code_spent", username=name, address=address)
            raise InvalidCodeError(purpose)
        await self.throttle.login_succeeded(name, address)
        await self._signed_out(revoked, now)
        log.info("account_code_redeemed", action=action, user_id=user_id)
        return secret

    async def _refused(
        self, action: str, user_id: str | None, reason: str, **personal: str
    ) -> None:
        """The ``denied`` entry of a refused attempt, before the refusal is answered (no
        change to record it with); ``personal``: the attempted username, the address."""
        record = _record(
            user_id, action, self.clock(), decision="denied", reason=reason, personal=personal
        )
        vault = vault_of(self.db)
        await self.db.unit(
            lambda conn: audit.sync_append(conn, seal_record_in(conn.run, vault, record))
        )

    async def _signed_out(self, families: Sequence[str], now: float) -> None:
        """Refuse the access tokens of ``families`` on every node."""
        if self.on_grant_revoked is None:
            if families:
                log.warning("grant_revocations_not_published", count=len(families))
            return
        for sid in families:
            await self.on_grant_revoked(sid, now + self.token_ttl)


def _can_sign_in(row: Row) -> bool:
    return row["moved_out_at"] is None


def _may_reset(row: Row) -> bool:
    """Residents who live here reset their passwords themselves; staff accounts are reset by
    an administrator."""
    roles = str(row["roles"]).split(",")
    return "resident" in roles and row["moved_out_at"] is None


def _is_staff(row: Row) -> bool:
    return bool(STAFF_ROLES & set(str(row["roles"]).split(",")))


def _may_activate(row: Row) -> bool:
    """Residents who live here, and staff accounts not disabled, activate with a code."""
    if _is_staff(row):
        return row["disabled_at"] is None
    return _may_reset(row)


def _record(
    user_id: str | None,
    action: str,
    at: float,
    *,
    decision: str = "granted",
    reason: str = "",
    personal: Mapping[str, str] | None = None,
    **ids: object,
) -> audit.AuditRecord:
    """An account's entry: ``reason`` a refusal's code, else the ``ids`` as ``key=value``;
    actor and subject the account, ``anonymous`` and none for a username that is no one's."""
    return audit.AuditRecord(
        at=at,
        actor=actor(user_id) if user_id is not None else ANONYMOUS,
        action=action,
        access_point_id=None,
        decision=decision,
        reason=reason or " ".join(f"{k}={v}" for k, v in ids.items()),
        subject=user_id,
        personal={k: v for k, v in (personal or {}).items() if v} or None,
    )
