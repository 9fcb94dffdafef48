"""Open sockets follow their session, and one user holds only so many of them.

Django checks a session on every HTTP request; a websocket is checked once, at connect, and could otherwise
go on serving a user who has since signed out, changed their password or been deactivated. So this process
keeps a list of its open sockets, each with the session it was opened with, and every
CHAT_SESSION_CHECK_INTERVAL seconds checks them all at once (two queries, however many sockets there are) and
closes those whose session has ended.

The list is per event loop, which under uvicorn means per server process: the socket cap
(CHAT_SOCKETS_PER_USER) counts one process's sockets, so behind N processes a user may hold up to N times it.
"""

import asyncio
import logging
from collections import Counter
from collections.abc import Collection
from typing import NamedTuple

from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.conf import settings
from django.contrib.auth import HASH_SESSION_KEY, get_user_model
from django.contrib.sessions.models import Session
from django.utils import timezone
from django.utils.crypto import constant_time_compare

from chat import frames
from chat.db import db_async

log = logging.getLogger(__name__)


class SessionRef(NamedTuple):
    """The session a socket was opened with, as the socket's connect found it."""

    session_key: str
    user_id: int
    auth_hash: str


class Ending(NamedTuple):
    """Why the server closes a socket: an `error` frame with `code` and `detail`, then `close_code`."""

    code: str
    detail: str
    close_code: int


# Application close codes are 4000-4999; these read as HTTP's 401 and 429.
SESSION_ENDED = Ending("session_ended", "You were signed out. Sign in again to go on.", 4401)
TOO_MANY_SOCKETS = Ending("too_many_sockets", "Too many chat tabs are open. Close one, then reload.", 4429)


def session_ref(scope: dict) -> SessionRef:
    """The socket's session, from a scope whose user the auth middleware has already signed in (which also
    loaded the session, so nothing here touches the database)."""
    session = scope["session"]
    return SessionRef(session.session_key, scope["user"].pk, session.get(HASH_SESSION_KEY, ""))


def sessions_live(refs: Collection[SessionRef]) -> set[SessionRef]:
    """Those of `refs` whose session still signs its user in: the session row exists and has not expired, and
    the user exists, is active, and has the auth hash the socket was opened with (a password change changes
    it). Two queries, however many refs. The same test Django's auth makes on each request, with the database
    session store this project uses."""
    live_keys = set(
        Session.objects.filter(
            session_key__in={ref.session_key for ref in refs}, expire_date__gt=timezone.now()
        ).values_list("session_key", flat=True)
    )
    user_ids = {ref.user_id for ref in refs}
    users = get_user_model().objects.filter(pk__in=user_ids, is_active=True).only("password")
    hashes = {user.pk: user.get_session_auth_hash() for user in users}
    return {
        ref for ref in refs
        if ref.session_key in live_keys and ref.user_id in hashes
        and constant_time_compare(ref.auth_hash, hashes[ref.user_id])
    }


def session_is_live(session_key: str, user_id: int, auth_hash: str) -> bool:
    """Whether the session a socket was opened with (its `session_ref`) still signs its user in: False after a
    logout, a password change, deactivation, or the session's deletion or expiry.

    Synchronous, two reads, no writes and no locks: call it inside the transaction that admits a turn, before
    anything is stored, so a frame that would spend money on an ended session is refused at once rather than
    within the check interval. A session that ends after the call and before the commit is not seen; the
    socket is then closed within CHAT_SESSION_CHECK_INTERVAL like any other."""
    return bool(sessions_live([SessionRef(session_key, user_id, auth_hash)]))


async def socket_end(consumer: AsyncJsonWebsocketConsumer, ending: Ending) -> None:
    """Tell the client why, then close. The consumer sends nothing after its close (see its `__call__`)."""
    await consumer.send_json(frames.error_frame(ending.code, ending.detail))
    await consumer.close(code=ending.close_code, reason=ending.detail)


class SocketWatch:
    """The open sockets of one event loop, and the task that checks their sessions while there are any."""

    def __init__(self):
        self.sockets: dict[AsyncJsonWebsocketConsumer, SessionRef] = {}
        self.per_user: Counter[int] = Counter()
        self.task = asyncio.create_task(self._check_while_watching())

    async def _check_while_watching(self) -> None:
        while self.sockets:
            await asyncio.sleep(settings.CHAT_SESSION_CHECK_INTERVAL)
            try:
                await self._close_ended()
            except Exception:
                log.exception("checking the sessions of open sockets failed; trying again next interval")

    async def _close_ended(self) -> None:
        watched = dict(self.sockets)
        live = await db_async(sessions_live)(set(watched.values()))
        for consumer, ref in watched.items():
            if ref not in live and consumer in self.sockets:
                socket_unwatch(consumer)
                await socket_end(consumer, SESSION_ENDED)


_watches: dict[asyncio.AbstractEventLoop, SocketWatch] = {}


def socket_watch(consumer: AsyncJsonWebsocketConsumer, ref: SessionRef) -> bool:
    """Watch this socket's session, or return False when its user already holds CHAT_SOCKETS_PER_USER sockets
    in this event loop. Counting and adding happen with no await between them, so sockets that connect at the
    same moment cannot pass the cap together."""
    loop = asyncio.get_running_loop()
    watch = _watches.get(loop)
    if (watch.per_user[ref.user_id] if watch else 0) >= settings.CHAT_SOCKETS_PER_USER:
        return False
    if watch is None:
        watch = _watches[loop] = SocketWatch()
    watch.sockets[consumer] = ref
    watch.per_user[ref.user_id] += 1
    return True


def socket_unwatch(consumer: AsyncJsonWebsocketConsumer) -> None:
    """Forget a socket (safe to call for one never watched). A loop left with none drops its watch, whose task
    ends at its next wake-up."""
    loop = asyncio.get_running_loop()
    watch = _watches.get(loop)
    ref = watch.sockets.pop(consumer, None) if watch else None
    if ref is None:
        return
    watch.per_user[ref.user_id] -= 1
    if not watch.per_user[ref.user_id]:
        del watch.per_user[ref.user_id]
    if not watch.sockets:
        del _watches[loop]
