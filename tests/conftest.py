import asyncio

import pytest
from channels.testing import WebsocketCommunicator
from django.test import Client

from chat import services

ORIGIN = b"http://127.0.0.1"


@pytest.fixture(scope="session")
def django_db_setup(django_db_setup, django_db_blocker):
    """The test database without the lifecycle rows its migration seeds: their retirement dates are real days,
    and from those days every test on a 4.x model would be refused. tests/test_lifecycle.py seeds them itself,
    against a pinned day."""
    from lifecycle.models import ModelLifecycle

    with django_db_blocker.unblock():
        ModelLifecycle.objects.all().delete()


@pytest.fixture(autouse=True)
def fast_password_hashing(settings):
    """Tests create many users; the production hasher is slow on purpose."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def cache_cleared():
    """Rate-limit windows live in the cache: each test starts with nothing counted. Only the in-process cache
    is cleared; a Redis one may be shared, and clearing it would flush the whole database."""
    from django.core.cache import caches
    from django.core.cache.backends.locmem import LocMemCache

    from chat.llm import registry

    if isinstance(caches["default"], LocMemCache):
        caches["default"].clear()
    registry._process_copy = registry._ProcessCopy()  # the process's copy of the models list goes with it
    # The lifecycle table counts as read and empty, so tests without the database can list models; saving a row
    # (or lifecycles_forget(), as tests/test_lifecycle.py does) makes the next read ask the database.
    from lifecycle import selectors as lifecycle_selectors

    lifecycle_selectors._process_copy = lifecycle_selectors._ProcessCopy(until=float("inf"))


@pytest.fixture(autouse=True)
def model_titles_off(settings):
    """A test counts the requests, rows and reservations of the replies it makes; the title request after a
    first reply (chat/titles.py) would add its own while the test looks. tests/test_titles.py turns it on."""
    settings.CHAT_MODEL_TITLES = False


@pytest.fixture(autouse=True)
def files_api_off(settings):
    """Tests look at the attachment blocks each request carries inline; sending them by file_id (filesapi/)
    would add uploads and change those blocks. tests/test_files_api.py turns it on."""
    settings.CHAT_FILES_API = "off"


@pytest.fixture(autouse=True)
def offline_model_reset():
    from chat.llm.offline import offline_model

    offline_model.reset()
    yield offline_model
    offline_model.reset()


@pytest.fixture
def owner(django_user_model):
    return django_user_model.objects.create_user(username="owner", password="a-long-passphrase-1")


@pytest.fixture
def outsider(django_user_model):
    return django_user_model.objects.create_user(username="outsider", password="a-long-passphrase-2")


@pytest.fixture
def conversation(owner):
    return services.conversation_create(owner=owner)


def session_cookie(user) -> bytes:
    client = Client()
    client.force_login(user)
    return f"sessionid={client.cookies['sessionid'].value}".encode()


@pytest.fixture
async def socket_for():
    """Opens websockets through the real ASGI stack (origin check, session auth, routing); closes them after."""
    from config.asgi import application

    opened = []

    async def open_socket(user, conversation_id, *, origin=ORIGIN):
        headers = [(b"origin", origin), (b"host", b"127.0.0.1")]
        if user is not None:
            headers.append((b"cookie", await asyncio.to_thread(session_cookie, user)))
        communicator = WebsocketCommunicator(application, f"/ws/conversations/{conversation_id}/", headers=headers)
        opened.append(communicator)
        return communicator

    yield open_socket
    for communicator in opened:
        await communicator.disconnect()


@pytest.fixture
async def generations_drained():
    """Waits, after the test, for generations it started; they belong to the process, not to a socket."""
    yield
    from chat.replies.generation import running

    tasks = [generation.task for generation in running.values() if generation.task]
    if tasks:
        await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), timeout=10)
