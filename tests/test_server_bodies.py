"""Request bodies of any size, to any URL, against a real server process, its memory read from /proc.

The server is uvicorn as every test server is started (tests/cluster.py), on SQLite. A body over its limit is
refused with 413 before it is read (config/body_limit.py): the client streams it from a generator and sees the
generator stop long before its end. One within the limit streams to disk. Across all of it the server's peak
resident memory (VmHWM) rises by less than 50 MB: before uvicorn, one anonymous 150 MB POST took daphne from
256 MB to 2 GB.
"""

import json
import os

import httpx2
import pytest
from asgiref.testing import ApplicationCommunicator
from cluster import ORIGIN, AppServer, Visitor, migrate, server_env

from chat.attachments.storage import DISK_FULL
from config.body_limit import BodyLimit

MEGABYTE = 1024 * 1024
HUGE = 150 * MEGABYTE
MEMORY_BOUND = 50 * MEGABYTE
# What the client's and the server's socket buffers hold when the server stops reading: loopback's grow to a
# few megabytes.
IN_FLIGHT = 20 * MEGABYTE
UPLOAD_REFUSAL = "An upload can be at most 64 MB. Send fewer or smaller files."
REQUEST_REFUSAL = "A request can carry at most 2.5 MB."
# Without a session cookie, the upload URL gets every other URL's limit: a stranger's upload is never taken in.
REFUSALS = {"/attachments/": REQUEST_REFUSAL, "/": REQUEST_REFUSAL, "/accounts/login/": REQUEST_REFUSAL}
LIMITS = {"/attachments/": 2_621_440, "/": 2_621_440}  # REQUEST_MAX_BODY_BYTES


class CountedBody:
    """A body produced as it is sent, counting what the server took before it answered."""

    CHUNK = b"x" * 65536

    def __init__(self, size: int):
        self.size, self.sent = size, 0

    def __iter__(self):
        while self.sent < self.size:
            self.sent += len(self.CHUNK)
            yield self.CHUNK


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("bodies")
    env = server_env(
        DATABASE_URL=f"sqlite:///{workdir / 'db.sqlite3'}", DJANGO_MEDIA_ROOT=str(workdir / "media"),
        REDIS_URL="", TMPDIR=str(workdir),
    )
    migrate(env)
    server = AppServer(env, workdir, "server").start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def visitor(server):
    return Visitor(server, "uploader")


def upload(visitor: Visitor, path) -> httpx2.Response:
    with open(path, "rb") as file:
        return visitor.http.post(
            "/attachments/",
            files={"file": (path.name, file, "application/octet-stream")},
            headers={"X-CSRFToken": visitor.http.cookies["csrftoken"], "Referer": ORIGIN},
            timeout=120,
        )


def junk_file(path, size: int):
    with open(path, "wb") as file:
        file.writelines(os.urandom(MEGABYTE) for _ in range(size // MEGABYTE))
    return path


@pytest.fixture(scope="module")
def peak_before(server, visitor, tmp_path_factory):
    """The server's memory once it has served a page and a small upload (what it imports for them is paid),
    before any large body arrives; its peak is counted from here."""
    assert visitor.http.get("/").status_code == 200
    assert upload(visitor, junk_file(tmp_path_factory.mktemp("small") / "small.bin", MEGABYTE)).status_code == 200
    return server.memory_peak_reset()


def peak_rise(server, peak_before: int) -> int:
    return server.memory()["VmHWM"] - peak_before


@pytest.mark.parametrize("path", ["/", "/attachments/", "/accounts/login/"])
def test_an_anonymous_body_declared_over_the_limit_is_refused_before_it_is_read(server, peak_before, path):
    body = CountedBody(HUGE)

    response = httpx2.post(f"{server.url}{path}", content=iter(body), headers={"Content-Length": str(HUGE)})

    assert response.status_code == 413
    assert response.json() == {"error": REFUSALS[path]}
    assert body.sent < IN_FLIGHT
    assert peak_rise(server, peak_before) < MEMORY_BOUND


@pytest.mark.parametrize("path", ["/", "/attachments/"])
def test_an_anonymous_chunked_body_is_refused_once_it_passes_the_limit(server, peak_before, path):
    body = CountedBody(HUGE)

    response = httpx2.post(f"{server.url}{path}", content=iter(body))  # no length: sent chunked

    assert response.status_code == 413 and response.json() == {"error": REFUSALS[path]}
    assert body.sent < LIMITS[path] + IN_FLIGHT
    assert peak_rise(server, peak_before) < MEMORY_BOUND


def test_a_signed_in_upload_just_under_the_limit_is_answered_in_bounded_memory(
    server, visitor, peak_before, tmp_path
):
    response = upload(visitor, junk_file(tmp_path / "junk.bin", 60 * MEGABYTE))

    assert response.status_code == 200
    [result] = response.json()["files"]
    assert result["name"] == "junk.bin" and result["error"]  # junk is refused, file by file
    assert peak_rise(server, peak_before) < MEMORY_BOUND


def test_a_signed_in_upload_declared_over_the_limit_is_refused_before_it_is_read(server, visitor, peak_before):
    body = CountedBody(HUGE)

    response = visitor.http.post(
        "/attachments/", content=iter(body),
        headers={"Content-Length": str(HUGE), "Content-Type": "multipart/form-data; boundary=x"},
    )

    assert response.status_code == 413
    assert response.json() == {"error": UPLOAD_REFUSAL}
    assert body.sent < IN_FLIGHT


@pytest.mark.parametrize(
    "cookie",
    [
        pytest.param("sessionid=made-up-by-the-sender", id="a-made-up-session"),
        pytest.param("notsessionid=1", id="another-cookie-ending-in-the-name"),
        pytest.param("csrftoken=x; sessionid=", id="an-empty-session"),
    ],
)
@pytest.mark.parametrize("declared", [True, False], ids=["declared", "chunked"])
def test_an_upload_without_a_signed_in_session_gets_the_limit_of_every_other_request(
    server, peak_before, cookie, declared
):
    """Only a session that exists and has someone signed in lets a body past 2.5 MB: anything else would be
    taken in whole, only to be sent to the sign-in page."""
    body = CountedBody(HUGE)
    headers = {"Cookie": cookie, "Content-Type": "multipart/form-data; boundary=x"}
    if declared:
        headers["Content-Length"] = str(HUGE)

    response = httpx2.post(f"{server.url}/attachments/", content=iter(body), headers=headers)

    assert response.status_code == 413 and response.json() == {"error": REQUEST_REFUSAL}
    assert body.sent < LIMITS["/attachments/"] + IN_FLIGHT


def test_a_signed_out_session_gets_the_limit_of_every_other_request(server, peak_before, tmp_path):
    """Signing out deletes the session: its cookie, kept or stolen, is a made-up one from then on."""
    leaving = Visitor(server, "leaving")
    cookie = leaving.cookie_header
    assert upload(leaving, junk_file(tmp_path / "small.bin", 3 * MEGABYTE)).status_code == 200  # over 2.5 MB
    signed_out = leaving.http.post(
        "/accounts/logout/", headers={"X-CSRFToken": leaving.http.cookies["csrftoken"], "Referer": ORIGIN}
    )
    assert signed_out.status_code == 302

    response = httpx2.post(
        f"{server.url}/attachments/", content=iter(CountedBody(HUGE)),
        headers={"Cookie": cookie, "Content-Length": str(HUGE)},
    )

    assert response.status_code == 413 and response.json() == {"error": REQUEST_REFUSAL}


def test_after_every_refusal_the_server_still_serves_pages_and_uploads(server, visitor, peak_before, tmp_path):
    for path in ("/", "/attachments/"):
        httpx2.post(f"{server.url}{path}", content=iter(CountedBody(HUGE)), headers={"Content-Length": str(HUGE)})

    assert visitor.http.get("/").status_code == 200
    assert upload(visitor, junk_file(tmp_path / "small.bin", MEGABYTE)).status_code == 200
    assert peak_rise(server, peak_before) < MEMORY_BOUND


@pytest.mark.parametrize("length", [b"12abc", b"-1", b""])
async def test_a_content_length_that_is_not_a_number_is_refused_with_400_before_django(length):
    """uvicorn refuses these itself; the guard holds behind a server that passes them on."""
    from config.asgi import application

    scope = {
        "type": "http", "method": "POST", "path": "/", "query_string": b"", "headers": [(b"content-length", length)],
    }
    request = ApplicationCommunicator(application, scope)

    start = await request.receive_output(timeout=10)
    body = await request.receive_output(timeout=10)
    assert start["status"] == 400
    assert json.loads(body["body"]) == {"error": "The Content-Length header is not a number of bytes."}


async def test_a_disk_that_fills_while_the_body_is_spooled_is_a_507_not_a_500():
    """Django spools a body to a temporary file before any view runs; the kernel's ENOSPC there is answered."""

    async def app_spooling_to_a_full_disk(scope, receive, send):
        with open("/dev/full", "wb", buffering=0) as disk:  # noqa: ASYNC230 (as Django spools: blocking)
            disk.write((await receive())["body"])

    sent = []

    async def receive():
        return {"type": "http.request", "body": b"x" * 1024, "more_body": False}

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": "/attachments/", "headers": []}
    await BodyLimit(app_spooling_to_a_full_disk)(scope, receive, send)

    assert sent[0]["status"] == 507
    assert json.loads(sent[1]["body"]) == {"error": DISK_FULL}
