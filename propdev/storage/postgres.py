"""PostgreSQL behind a primary switch: libpq multi-host URLs and the errors of a failover.

``PROPDEV_DATABASE_URL`` may name several servers as libpq does,
``postgresql://u@h1:5432,h2:5432/db?target_session_attrs=read-write``: libpq (under psycopg)
tries them in order and, with ``read-write``, keeps the first that accepts writes, so after a
promotion new connections find the new primary. SQLAlchemy's URL parser refuses a comma list
in the netloc, so ``sqlalchemy_url`` moves the hosts into repeated ``host=`` query parameters,
which SQLAlchemy hands to psycopg as libpq's ``host=h1,h2 port=5432,5432``.

During a switch the pool's connections die: ``pool_pre_ping`` replaces a dead one at checkout,
and one that fails in use (57P01 ``AdminShutdown``) is an ``OperationalError`` that invalidates
the pool. A connection still open to a server that is now read-only (a demoted primary, a
standby promoted elsewhere) passes the ping but fails writes with 25006
(``ReadOnlySqlTransaction``, DB-API ``InternalError``): ``mark_failover_errors`` makes
SQLAlchemy treat that, and 57P03 (``CannotConnectNow``), as a disconnect, so the pool drops its
connections and the caller sees ``StoreUnavailableError`` (503), not a server error.

Single-statement reads have an engine of their own without ``pool_pre_ping``
(``Database.read_engine``, AUTOCOMMIT): a read that finds its pooled connection dead drops that
pool and runs once more on a fresh connection; a failover error seen by any engine of the
``Database`` drops the read pool too (a demoted primary still answers reads).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl, urlencode

from sqlalchemy import event
from sqlalchemy.engine import Engine

from propdev.storage.errors import StoreUnavailableError

CONNECT_TIMEOUT = "5"
"""libpq's per-host connect timeout (seconds) for a multi-host URL that sets none: its default
is none at all (psycopg: 130 s), and a host that swallows packets would hold every connect."""

FAILOVER_SQLSTATES = frozenset(
    {
        "25006",  # read_only_sql_transaction: a write on a server that is no longer primary
        "57P01",  # admin_shutdown: the server is stopping
        "57P02",  # crash_shutdown
        "57P03",  # cannot_connect_now: shutting down, starting, in recovery
    }
)


def sqlalchemy_url(url: str, driver: str = "postgresql+psycopg") -> str:
    """``url`` (``postgresql://`` or ``postgres://``) for SQLAlchemy with ``driver``; a comma
    list of hosts in the netloc becomes repeated ``host=`` query parameters."""
    rest = url.split(":", 1)[1]  # //netloc/path?query
    if not rest.startswith("//"):
        return f"{driver}:{rest}"
    netloc_end = len(rest)
    for mark in ("/", "?", "#"):
        found = rest.find(mark, 2)
        if found != -1:
            netloc_end = min(netloc_end, found)
    netloc, tail = rest[2:netloc_end], rest[netloc_end:]
    userinfo, at, hostlist = netloc.rpartition("@")
    if "," not in hostlist:
        return f"{driver}:{rest}"
    path, _, query = tail.partition("?")
    params = parse_qsl(query, keep_blank_values=True)
    if not any(k == "connect_timeout" for k, _ in params):
        params.append(("connect_timeout", CONNECT_TIMEOUT))
    hosts = [("host", h) for h in hostlist.split(",") if h]
    return f"{driver}://{userinfo}{at}/{path.lstrip('/')}?{urlencode(hosts + params, safe=':[]')}"


def mark_failover_errors(engine: Engine, on_failover: Callable[[], None] | None = None) -> None:
    """Make ``engine`` treat a failover's SQLSTATEs as disconnects (see the module's doc) and
    call ``on_failover()`` on each (so that other engines over the same servers drop their
    connections too: a read-only server answers reads)."""

    def classify(context: Any) -> StoreUnavailableError | None:
        if on_failover is not None and _failover_sqlstate(context):
            on_failover()
        return _classify(context)

    event.listen(engine, "handle_error", classify)


def _failover_sqlstate(context: Any) -> bool:
    return getattr(context.original_exception, "sqlstate", None) in FAILOVER_SQLSTATES


def _classify(context: Any) -> StoreUnavailableError | None:
    """A failover's error: a disconnect (the pool drops its connections), raised as
    ``StoreUnavailableError``; during a pre-ping only the former, so that the pool replaces
    the connection at checkout instead of failing it."""
    sqlstate = getattr(context.original_exception, "sqlstate", None)
    if sqlstate not in FAILOVER_SQLSTATES:
        return None
    context.is_disconnect = True
    if context.is_pre_ping:
        return None
    first = str(context.original_exception).splitlines()[0] if context.original_exception else ""
    return StoreUnavailableError(f"{sqlstate}: {first}")
