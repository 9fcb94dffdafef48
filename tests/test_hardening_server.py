"""Against real uvicorn processes started as `make run` starts them: a malformed static path is a 404, never a
500; a forged X-Forwarded-For does not change the client address the audit log records unless the deployment
trusts the proxy that sent it; a websocket from another port of the same host is refused."""

import asyncio
import re
import socket
import sqlite3

import pytest
import websockets
from cluster import AppServer, Visitor, migrate, server_env

FORGED = "203.0.113.9"
MALFORMED_STATIC_PATHS = [
    "/static/%00",
    "/static/chat/%00chat.css",
    "/static/..%2f..%2fetc/passwd",
    "/static/../../etc/passwd",
    "/static/%2e%2e/%2e%2e/etc/passwd",
    "/static/chat/..%2f..%2f..%2fconfig/settings.py",
    "/static/" + "a" * 300,  # one name longer than the file system allows
    "/static/" + "a/" * 3000,  # a path longer than the file system allows
    "/static/%ff%fe.css",
    "/static/%C0%AE%C0%AE/etc/passwd",
]


def start(workdir, name: str, **overrides) -> AppServer:
    env = server_env(
        DATABASE_URL=f"sqlite:///{workdir / f'{name}.sqlite3'}", DJANGO_MEDIA_ROOT=str(workdir / f"{name}-media"),
        REDIS_URL="", **overrides,
    )
    migrate(env)
    return AppServer(env, workdir, name).start()


@pytest.fixture(scope="module")
def servers(tmp_path_factory):
    """`make run` as a developer has it (DEBUG, static files served by the app), the same trusting a proxy
    on 127.0.0.1, and production (DEBUG off; a proxy serves the static files)."""
    workdir = tmp_path_factory.mktemp("hardening-servers")
    started = {}
    try:
        started["debug"] = start(workdir, "debug", DJANGO_DEBUG="1")
        started["behind_proxy"] = start(workdir, "behind_proxy", DJANGO_DEBUG="1", TRUSTED_PROXY_IPS="127.0.0.1")
        started["production"] = start(
            workdir, "production", DJANGO_DEBUG="0", DJANGO_SECURE_SSL_REDIRECT="0",
            DJANGO_SECRET_KEY="p" * 60, DJANGO_STATIC_ROOT=str(workdir / "static"),
        )
        yield started
    finally:
        for server in started.values():
            server.stop()


def status_of(server: AppServer, path: str) -> int:
    """The status of GET `path`, sent byte for byte: an HTTP client library would normalise the dots away."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as connection:
        connection.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode())
        head = connection.recv(4096).decode("latin1")
    return int(head.split()[1])


@pytest.mark.parametrize("mode", ["debug", "production"])
def test_a_malformed_static_path_is_not_found(servers, mode):
    server = servers[mode]

    statuses = {path[:40]: status_of(server, path) for path in MALFORMED_STATIC_PATHS}

    assert set(statuses.values()) == {404}, statuses
    assert "Traceback" not in server.log_path.read_text()


def test_the_development_server_still_serves_real_static_files(servers):
    assert status_of(servers["debug"], "/static/chat/chat.css") == 200


def failed_sign_in_address(server: AppServer, db_name: str, username: str) -> str:
    """Fail to sign in as `username`, claiming to be FORGED, and return the address the audit log recorded."""
    visitor = Visitor(server, username)
    visitor.http.post("/accounts/logout/", headers={"X-CSRFToken": visitor.http.cookies["csrftoken"]})
    page = visitor.http.get("/accounts/login/")
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)
    response = visitor.http.post(
        "/accounts/login/", data={"csrfmiddlewaretoken": token, "username": username, "password": "wrong-password"},
        headers={"X-Forwarded-For": FORGED},
    )
    assert response.status_code == 200  # the form again, with its error
    with sqlite3.connect(server.env["DATABASE_URL"].removeprefix("sqlite:///")) as database:
        [(address,)] = database.execute(
            "SELECT address FROM audit_auditevent WHERE action = 'account.sign_in_failed' AND subject = ?",
            (username,),
        ).fetchall()
    return address


def test_a_forged_forwarded_for_is_ignored_without_a_trusted_proxy(servers):
    assert failed_sign_in_address(servers["debug"], "debug", "mallory") == "127.0.0.1"


def test_the_forwarded_for_of_a_trusted_proxy_is_the_client_address(servers):
    assert failed_sign_in_address(servers["behind_proxy"], "behind_proxy", "carol") == FORGED


def test_a_websocket_from_another_port_of_the_same_host_is_refused(servers):
    server = servers["debug"]
    visitor = Visitor(server, "sockets")
    conversation_id = visitor.new_conversation()

    async def handshakes():
        async with visitor.connect(server, conversation_id) as connection:  # from the page's own origin
            await asyncio.wait_for(await connection.ping(), 30)  # open, and answering
        with pytest.raises(websockets.InvalidStatus) as refused:
            async with websockets.connect(
                server.ws_url(conversation_id), origin="http://127.0.0.1:1",
                additional_headers={"Cookie": visitor.cookie_header}, open_timeout=30,
            ):
                pass
        return refused.value.response.status_code

    assert asyncio.run(handshakes()) == 403
