"""The emails of signing up and of resetting a password: how many may go out, and sent off the request path.

Both pages answer the same whether or not an account exists, but sending on the request path gave it away by
time: Django's reset mails only a known address, and an SMTP server may take up to EMAIL_TIMEOUT seconds to
accept. So the page's answer is decided first and the message goes to a thread of this process. And both pages
mail an address that anyone types, so without a limit they would mail anyone, over and over, from this
server: each address and each client get a few an hour, and the pages say the same beyond that.
"""

import hashlib
import ipaddress
import logging
from concurrent.futures import Future, ThreadPoolExecutor, wait

from django.conf import settings
from django.core.cache import cache
from django.core.mail import EmailMessage

from accounts.lockout import client_address

logger = logging.getLogger(__name__)

# A few threads, not one per message: a burst queues its messages instead of opening as many SMTP connections.
# They are not daemons: at exit Python waits for them, so a message accepted before SIGTERM is still sent.
_senders = ThreadPoolExecutor(max_workers=4, thread_name_prefix="accounts-mail")
_sending: set[Future] = set()

HOUR = 3600


def mail_send_later(message: EmailMessage) -> None:
    """Send `message` from a thread; a failure is logged there, as nobody waits for it. The message must be
    complete: the thread touches neither the request nor the database."""
    future = _senders.submit(_send, message)
    _sending.add(future)
    future.add_done_callback(_sending.discard)


def _send(message: EmailMessage) -> None:
    try:
        message.send()
    except Exception:
        logger.exception("Could not send the email %r to %s.", message.subject, ", ".join(message.to))


def mail_sent_wait(timeout: float = 10) -> None:
    """Wait until every message handed to `mail_send_later` so far is sent or has failed: for tests, which
    read the outbox after the request that mailed."""
    wait(list(_sending), timeout=timeout)


def account_mail_allowed(*, address: str, request, purpose: str) -> bool:
    """Whether this request may mail `address` (for `purpose`, named in the log), counting it: at most
    ACCOUNT_EMAILS_PER_CLIENT_PER_HOUR from the client and ACCOUNT_EMAILS_PER_ADDRESS_PER_HOUR to one address,
    sign-ups and resets together. Every request counts, whether or not an account has the address, so the
    limit says nothing about accounts either. The caller answers as if the mail were sent."""
    client = client_network(request)
    for scope, value, limit in (
        ("client", client, settings.ACCOUNT_EMAILS_PER_CLIENT_PER_HOUR),
        ("address", address.strip().lower(), settings.ACCOUNT_EMAILS_PER_ADDRESS_PER_HOUR),
    ):
        if _hour_count(scope, value) > limit:
            logger.warning(
                "Not sending the %s email to %s (requested from %s): over %d an hour per %s.",
                purpose, address, client, limit, scope,
            )
            return False
    return True


def client_network(request) -> str:
    """The client's address; for IPv6 its /64, which one subscriber usually holds whole."""
    address = client_address(request) or "unknown"
    try:
        parsed = ipaddress.ip_address(address)
    except ValueError:
        return address
    return str(ipaddress.ip_network(f"{parsed}/64", strict=False)) if parsed.version == 6 else address


def _hour_count(scope: str, value: str) -> int:
    """Count one more in the hour that began at this key's first count, atomically across processes.
    `incr` fails for a missing (or just expired, or evicted) key; `add` then creates it unless another
    process did first, whose counter the next turn increments."""
    key = f"accounts-mail:{scope}:{hashlib.sha256(value.encode()).hexdigest()}"
    while True:
        try:
            return cache.incr(key)
        except ValueError:
            if cache.add(key, 1, timeout=HOUR):
                return 1
