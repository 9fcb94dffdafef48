"""This site's own origin, for the places a browser is told what may talk to it: which pages may open a
websocket (SameOriginValidator), where a page's scripts may connect (SameHostSocketsCSPMiddleware), and where a
form may send it back to (`redirect_next`)."""

from urllib.parse import parse_qsl, urlencode, urlsplit

from channels.security.websocket import WebsocketDenier
from csp.middleware import CSPMiddleware, PolicyParts
from django.conf import settings
from django.core.exceptions import DisallowedHost
from django.http.request import is_same_domain, split_domain_port, validate_host
from django.shortcuts import redirect
from django.utils.http import url_has_allowed_host_and_scheme

DEFAULT_PORTS = {"http": 80, "https": 443}
# Query parameters a form's `next` loses: `message` (a search hit, chat/views.py `conversation_detail`) asks the
# page to switch branches, which going back after a theme or time zone answer must not ask again.
NEXT_DROPPED_PARAMETERS = frozenset({"message"})


def redirect_next(request, fallback: str = "home"):
    """A redirect back to the POST's `next` when it is an address on this site (Django's
    url_has_allowed_host_and_scheme against this request's host, https when this request is), without the
    parameters in NEXT_DROPPED_PARAMETERS; else to the URL named `fallback`."""
    target = request.POST.get("next", "")
    if not url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return redirect(fallback)
    parts = urlsplit(target)
    query = [
        (name, value)
        for name, value in parse_qsl(parts.query, keep_blank_values=True)
        if name not in NEXT_DROPPED_PARAMETERS
    ]
    return redirect(parts._replace(query=urlencode(query)).geturl() or fallback)


def origin_parts(origin: str) -> tuple[str, str, int] | None:
    """(scheme, host, port) of an origin such as https://chat.example.com, the port filled in from the scheme;
    None for anything that is not an http(s) origin."""
    try:
        parts = urlsplit(origin)
        port = parts.port
    except ValueError:  # a port that is not a number, or out of range
        return None
    if parts.scheme not in DEFAULT_PORTS or not parts.hostname:
        return None
    return parts.scheme, parts.hostname, port or DEFAULT_PORTS[parts.scheme]


def _trusted(origin: str) -> bool:
    """In CSRF_TRUSTED_ORIGINS, read as Django's CSRF check reads it: exact, or `https://*.example.com`."""
    for trusted in settings.CSRF_TRUSTED_ORIGINS:
        if "*" not in trusted:
            if (parts := origin_parts(trusted)) is not None and parts == origin_parts(origin):
                return True
            continue
        scheme, _, netloc = trusted.partition("://")
        origin_scheme, _, origin_netloc = origin.partition("://")
        if scheme == origin_scheme and is_same_domain(origin_netloc, netloc[1:]):
            return True
    return False


def _header(scope, name: bytes) -> str | None:
    values = [value for key, value in scope.get("headers", []) if key == name]
    return values[0].decode("latin1") if len(values) == 1 else None


def socket_origin_allowed(scope) -> bool:
    """Whether a websocket handshake comes from a page of this site: its Origin is the scheme, host and port
    the browser connected to (ws→http, wss→https, the Host header), for a host in ALLOWED_HOSTS, or an origin
    in CSRF_TRUSTED_ORIGINS.

    Channels' AllowedHostsOriginValidator compares host names only, so any other port or scheme on an allowed
    host (another app on :8080, a plain-http page) could open sockets with the user's session cookie, which a
    browser sends to every port of the host. A handshake without Origin or Host is not a browser's, and not
    one page's: refused.
    """
    origin, host = _header(scope, b"origin"), _header(scope, b"host")
    if origin is None or host is None:
        return False
    domain, _ = split_domain_port(host)
    allowed_hosts = settings.ALLOWED_HOSTS
    if settings.DEBUG and not allowed_hosts:
        allowed_hosts = [".localhost", "127.0.0.1", "[::1]"]  # as Django's HttpRequest.get_host()
    if not domain or not validate_host(domain, allowed_hosts):
        return False
    scheme = "https" if scope.get("scheme") == "wss" else "http"
    own = origin_parts(f"{scheme}://{host}")
    return (own is not None and origin_parts(origin) == own) or _trusted(origin)


class SameOriginValidator:
    """ASGI middleware in front of the websocket routes: a handshake from another origin is closed unopened."""

    def __init__(self, application):
        self.application = application

    async def __call__(self, scope, receive, send):
        if socket_origin_allowed(scope):
            return await self.application(scope, receive, send)
        return await WebsocketDenier()(scope, receive, send)


class SameHostSocketsCSPMiddleware(CSPMiddleware):
    """django-csp's middleware, with this host's websockets in connect-src (config/asgi.py's validator takes
    only those). CSP Level 3 lets 'self' cover ws: and wss: of the page's own host, but browsers that predate
    it read 'self' as http(s) only; the host is only known per request, hence a middleware, not a setting."""

    def get_policy_parts(self, request, response, report_only=False) -> PolicyParts:
        parts = super().get_policy_parts(request, response, report_only)
        try:
            host = request.get_host()
        except DisallowedHost:  # answered 400 already; nothing to add
            return parts
        update = dict(parts.update or {})
        update["connect-src"] = [*update.get("connect-src", ()), f"ws://{host}", f"wss://{host}"]
        parts.update = update
        return parts
