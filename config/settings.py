"""Settings read from the environment, with defaults that run on one machine with nothing else installed.

Unset, everything is local: SQLite, the in-memory channel layer, a local media folder and the offline model.
`DATABASE_URL`, `REDIS_URL` and `ANTHROPIC_API_KEY` switch to PostgreSQL, Redis and the real API.
"""

import os
import tempfile
from decimal import Decimal, InvalidOperation
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()


def env_secret(name: str, default: str = "") -> str:
    """A secret from the variable `name`, or from the file that `name`_FILE names (systemd credentials, Docker
    and Kubernetes secrets), without the file's surrounding whitespace. A file keeps the secret out of the
    process environment, which child processes inherit and crash reporters collect. A _FILE that cannot be
    read, or is empty, stops start-up: falling back to the default would run on the development key, the
    offline model or a database without its password, and say nothing."""
    path = env.str(f"{name}_FILE", default="")
    if not path:
        return env.str(name, default=default)
    if name in os.environ:
        raise ImproperlyConfigured(f"Set {name} or {name}_FILE, not both.")
    try:
        value = Path(path).read_text().strip()
    except OSError as error:
        raise ImproperlyConfigured(f"{name}_FILE names {path}, which cannot be read ({error.strerror}).") from None
    if not value:
        raise ImproperlyConfigured(f"{name}_FILE names {path}, which is empty.")
    return value


INSECURE_SECRET_KEY = "insecure-development-key-do-not-use-in-production"

DEBUG = env.bool("DJANGO_DEBUG", default=True)
SECRET_KEY = env_secret("DJANGO_SECRET_KEY", default=INSECURE_SECRET_KEY)
if not DEBUG and (SECRET_KEY == INSECURE_SECRET_KEY or len(SECRET_KEY) < 50):
    raise ImproperlyConfigured(
        "DJANGO_DEBUG=0 needs a real DJANGO_SECRET_KEY (50+ random characters), not the development default."
    )

ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "[::1]"])
# Debug pages show settings, source and local variables to whoever reaches them: DEBUG serves this machine only.
LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1", "[::1]"}
if DEBUG and (reachable := [host for host in ALLOWED_HOSTS if host not in LOOPBACK_HOSTS]):
    raise ImproperlyConfigured(
        f"DJANGO_DEBUG is on, and DJANGO_ALLOWED_HOSTS lets other machines reach this server as "
        f"{', '.join(reachable)}: debug pages would show them its settings and source. Set DJANGO_DEBUG=0 "
        "(with a DJANGO_SECRET_KEY), or serve localhost only."
    )
CSRF_TRUSTED_ORIGINS = env.list("DJANGO_CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "channels",
    "axes",
    "mozilla_django_oidc",
    "accounts",
    "teams",
    "audit",
    "chat",
    "billing",
    "projects",
    "shares",
    "search",
    "apikeys",
    "batches",
    "lifecycle",
    "filesapi",
    "memory",
    "connectors",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "config.origins.SameHostSocketsCSPMiddleware",  # django-csp's, with this host's websockets
    # Last, as django-axes asks: it turns a lockout raised by the backend into the lockout page.
    "axes.middleware.AxesMiddleware",
]

# django-axes first, so a locked-out account or address is refused before its password is checked. The OIDC
# backend is appended in the single sign-on section below when OIDC is configured.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]

ROOT_URLCONF = "config.urls"
ASGI_APPLICATION = "config.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "chat.context_processors.model_backend",
                "billing.context_processors.budget",
            ],
        },
    },
]

DATABASES = {"default": env.db_url_config(env_secret("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}"))}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # WAL lets readers run beside the one writer; IMMEDIATE takes the write lock at BEGIN, so concurrent
    # streams queue for it (up to the timeout) instead of failing with "database is locked" on upgrade.
    DATABASES["default"]["OPTIONS"] = {
        "transaction_mode": "IMMEDIATE",
        "timeout": 20,
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
    # Database work runs on a pool of threads (chat/db.py); reopening a connection per call was a fifth of
    # their time under load. A local file has nothing to go stale, so each thread keeps its connection.
    DATABASES["default"]["CONN_MAX_AGE"] = env.int("DATABASE_CONN_MAX_AGE", default=600)
    # Tests use a file too: an in-memory database is shared between threads in shared-cache mode, where
    # concurrent writers fail at once instead of waiting. One file per test process.
    DATABASES["default"]["TEST"] = {"NAME": str(Path(tempfile.gettempdir()) / f"claudechat-test-{os.getpid()}.sqlite3")}
else:
    # One pool per process bounds its connections, so N processes hold at most N x DATABASE_POOL_MAX_SIZE of
    # PostgreSQL's max_connections (docs/deploy.md). A connection kept per thread was bounded by nothing:
    # Django runs each concurrent page load on a thread of its own. Database calls from async code
    # (chat/db.py) run on the event loop's default executor: ASGI_THREADS threads when set (config/asgi.py's
    # lifespan gives the server's loop that many), else Python's min(32, cores + 4); the default gives each of
    # those a connection, and four more for page loads and websocket session lookups, which run on threads
    # outside it.
    database_threads = env.int("ASGI_THREADS", default=min(32, (os.cpu_count() or 1) + 4))
    pool_max_size = env.int("DATABASE_POOL_MAX_SIZE", default=database_threads + 4)
    if pool_max_size < 1:
        raise ImproperlyConfigured(f"DATABASE_POOL_MAX_SIZE must be at least 1, not {pool_max_size}.")
    DATABASES["default"]["OPTIONS"] = {
        **DATABASES["default"].get("OPTIONS", {}),  # what the URL's query string set, such as sslmode
        "pool": {
            # One warm connection at rest; the pool grows under load and shrinks back after 10 idle minutes.
            "min_size": 1,
            "max_size": pool_max_size,
            # A thread that waits this long for a free connection raises OperationalError ("couldn't get a
            # connection after ... sec") instead of hanging: the pool is too small for the load.
            "timeout": env.float("DATABASE_POOL_TIMEOUT", default=10.0),
        },
    }
    # Django refuses a pool with persistent connections: closing a connection returns it to the pool.
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    # The pool checks a connection before lending it, replacing one the server dropped.
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True

REDIS_URL = env_secret("REDIS_URL")
# Every key this app writes to Redis (channel layer and cache) starts with this, so two deployments (or two
# test runs) sharing one Redis never deliver to each other or share rate-limit counters.
REDIS_PREFIX = env.str("REDIS_PREFIX", default="claudechat")
if REDIS_URL:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            # A socket's receive blocks in Redis for up to 5 s; a read timeout just past that, under load, killed
            # healthy sockets. Outages are caught by each socket's probe (CHAT_LAYER_PROBE_INTERVAL) instead.
            # redis-py's pool refuses (not queues) past 100 connections: 200 sockets joining at once hit it.
            "CONFIG": {
                "hosts": [
                    {"address": REDIS_URL, "socket_timeout": 30, "socket_connect_timeout": 5, "max_connections": 1000}
                ],
                "capacity": 1000,
                "expiry": 30,
                "prefix": REDIS_PREFIX,
            },
        }
    }
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": REDIS_PREFIX,
        }
    }
else:
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer", "CONFIG": {"capacity": 1000}}}
    # The cache holds the rate-limit windows: up to four counters per active user (requests and tokens, this
    # minute and the last). Django's default of 300 entries evicted them past ~75 users, lifting their limits.
    # Expired windows are only dropped when the cache is full, oldest first; at ~300 bytes an entry this is at
    # most ~30 MB, for 25,000 users active in the same two minutes.
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
            "OPTIONS": {"MAX_ENTRIES": 100_000},
        }
    }

AUTH_USER_MODEL = "accounts.User"
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

# --- Sign-in (accounts/) ----------------------------------------------------------------------------------
# Who may create an account (docs/deploy.md, "Who may sign in"): closed, invite, domains or open. These only
# seed the site's registration policy on first use; from then on superusers change it in the admin.
# Production starts closed; `make run` (DEBUG) starts open, for the demo.
REGISTRATION_MODE = env.str("REGISTRATION_MODE", default="open" if DEBUG else "closed")
if REGISTRATION_MODE not in ("closed", "invite", "domains", "open"):
    raise ImproperlyConfigured(
        f"REGISTRATION_MODE must be closed, invite, domains or open, not {REGISTRATION_MODE!r}."
    )
REGISTRATION_DOMAINS = env.list("REGISTRATION_DOMAINS", default=[])
# A sign-up's confirmation link (mailed to the address given) stops working after this many hours.
SIGN_UP_LINK_HOURS = env.int("SIGN_UP_LINK_HOURS", default=48)
# Sign-up and password-reset emails (accounts/mail.py), together: at most this many an hour to one address
# and from one client address (an IPv6 client's /64). Beyond them the pages answer the same, nothing is sent,
# and the server logs it.
ACCOUNT_EMAILS_PER_ADDRESS_PER_HOUR = env.int("ACCOUNT_EMAILS_PER_ADDRESS_PER_HOUR", default=3)
ACCOUNT_EMAILS_PER_CLIENT_PER_HOUR = env.int("ACCOUNT_EMAILS_PER_CLIENT_PER_HOUR", default=20)
if min(ACCOUNT_EMAILS_PER_ADDRESS_PER_HOUR, ACCOUNT_EMAILS_PER_CLIENT_PER_HOUR) < 1:
    raise ImproperlyConfigured(
        "ACCOUNT_EMAILS_PER_ADDRESS_PER_HOUR and ACCOUNT_EMAILS_PER_CLIENT_PER_HOUR must be at least 1."
    )
# django-axes: after LOGIN_FAILURE_LIMIT failed sign-ins from one client address (at any accounts), that address
# is refused, and after as many failed sign-ins at one account (from any addresses), that account is, each for
# LOGIN_COOLOFF_MINUTES, counted again from each refused try: a guesser with many addresses still gets only
# LOGIN_FAILURE_LIMIT tries at an account. Someone who keeps an account locked on purpose cannot keep its owner
# out: a completed password reset forgets the account's failures (accounts/services.py) and lifts the lock,
# which the lockout page says.
AXES_FAILURE_LIMIT = env.int("LOGIN_FAILURE_LIMIT", default=5)
AXES_COOLOFF_TIME = env.int("LOGIN_COOLOFF_MINUTES", default=15) / 60  # a float: hours, to axes
if AXES_FAILURE_LIMIT < 1 or AXES_COOLOFF_TIME <= 0:
    raise ImproperlyConfigured("LOGIN_FAILURE_LIMIT and LOGIN_COOLOFF_MINUTES must be at least 1.")
AXES_LOCKOUT_PARAMETERS = ["ip_address", "username"]
# The address is REMOTE_ADDR, never a header the client writes: uvicorn sets REMOTE_ADDR from X-Forwarded-For
# only for the proxies TRUSTED_PROXY_IPS names (Hardening, below).
AXES_CLIENT_IP_CALLABLE = "accounts.lockout.client_address"
AXES_LOCKOUT_CALLABLE = "accounts.lockout.lockout_response"
# A successful sign-in forgives that account's failures from that address only (accounts/lockout.py): axes's
# own reset would also clear the address, letting one valid account reset the count of a password spray.
AXES_RESET_ON_SUCCESS = False

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = env.path("DJANGO_STATIC_ROOT", default=BASE_DIR / "staticfiles")
# Uploaded files are private: MEDIA_ROOT is never served by URL, only through owner-checked views.
MEDIA_ROOT = env.path("DJANGO_MEDIA_ROOT", default=BASE_DIR / "media")

# --- Attachments (chat/attachments/) ----------------------------------------------------------------------
# One uploaded file, before processing; and one upload request (its files together). The model's own limits
# (32 MB a request, 100 images, 100 PDF pages) are fixed in chat/attachments/limits.py.
ATTACHMENT_MAX_FILE_BYTES = env.int("ATTACHMENT_MAX_FILE_BYTES", default=32 * 1024 * 1024)
ATTACHMENT_MAX_UPLOAD_BYTES = env.int("ATTACHMENT_MAX_UPLOAD_BYTES", default=64 * 1024 * 1024)
ATTACHMENT_MAX_FILES_PER_UPLOAD = env.int("ATTACHMENT_MAX_FILES_PER_UPLOAD", default=10)
# Django stops parsing a multipart body with more files than this; the upload view says why.
DATA_UPLOAD_MAX_NUMBER_FILES = ATTACHMENT_MAX_FILES_PER_UPLOAD
# Every uploaded file is streamed to a temporary file on disk, never held in memory: processing reads it from
# there (a child process gets it on stdin), so an upload's size costs the server disk, not RAM.
FILE_UPLOAD_HANDLERS = ["django.core.files.uploadhandler.TemporaryFileUploadHandler"]
# A request body over this many bytes is refused with 413 before it is read (config/body_limit.py); the upload
# endpoint allows ATTACHMENT_MAX_UPLOAD_BYTES. Every other form here is a few kilobytes.
REQUEST_MAX_BODY_BYTES = env.int("REQUEST_MAX_BODY_BYTES", default=2_621_440)
# A call of the Anthropic-compatible API (apikeys/, docs/api.md) that presents a valid key may carry this much,
# the Messages API's own limit: its images and PDFs travel inline.
API_MAX_BODY_BYTES = env.int("API_MAX_BODY_BYTES", default=32 * 1024 * 1024)
# Images, PDFs and Word documents are read in a child process (chat/attachments/isolation.py) with this much
# address space and CPU time; at most this many at once per server process, an upload waiting this long for a turn.
ATTACHMENT_DECODE_MEMORY_BYTES = env.int("ATTACHMENT_DECODE_MEMORY_BYTES", default=1024 * 1024 * 1024)
ATTACHMENT_DECODE_CPU_SECONDS = env.float("ATTACHMENT_DECODE_CPU_SECONDS", default=30.0)
ATTACHMENT_DECODE_CONCURRENCY = env.int("ATTACHMENT_DECODE_CONCURRENCY", default=2)
ATTACHMENT_DECODE_WAIT = env.float("ATTACHMENT_DECODE_WAIT", default=60.0)
# Uploads that no message claimed are removed by `manage.py attachments_cleanup` after this many hours.
ATTACHMENT_UNCLAIMED_HOURS = env.float("ATTACHMENT_UNCLAIMED_HOURS", default=24.0)

# --- Import (chat/imports/, docs/import.md) ----------------------------------------------------------------
# The uploaded file (config/body_limit.py lets the import URL's body carry it); the JSON read from it in all (a
# zip's conversations.json unpacked); the JSON of one conversation, which is all an import holds in memory at
# once; and what one import takes: conversations, messages in one of them, characters in one message (cut, with
# a note saying so). An import runs in its request, one at a time per user: the JSON read in all bounds how long
# (about a minute and a half for 200 MB on two cores with SQLite).
IMPORT_MAX_BYTES = env.int("IMPORT_MAX_BYTES", default=100 * 1024 * 1024)
IMPORT_MAX_UNCOMPRESSED_BYTES = env.int("IMPORT_MAX_UNCOMPRESSED_BYTES", default=200 * 1024 * 1024)
IMPORT_MAX_CONVERSATION_BYTES = env.int("IMPORT_MAX_CONVERSATION_BYTES", default=32 * 1024 * 1024)
IMPORT_MAX_CONVERSATIONS = env.int("IMPORT_MAX_CONVERSATIONS", default=1000)
IMPORT_MAX_MESSAGES = env.int("IMPORT_MAX_MESSAGES", default=10_000)
IMPORT_MAX_MESSAGE_CHARS = env.int("IMPORT_MAX_MESSAGE_CHARS", default=200_000)

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

if not DEBUG:
    SECURE_SSL_REDIRECT = env.bool("DJANGO_SECURE_SSL_REDIRECT", default=True)
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = env.int("DJANGO_HSTS_SECONDS", default=31536000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "loggers": {
        "chat": {"handlers": ["console"], "level": env.str("CHAT_LOG_LEVEL", default="INFO")},
        "accounts": {"handlers": ["console"], "level": env.str("CHAT_LOG_LEVEL", default="INFO")},
    },
}

# --- The model backend ---------------------------------------------------------------------------------
# With a key, the real API (or any Anthropic-compatible endpoint at ANTHROPIC_BASE_URL); without, the
# offline model, plugged into the same SDK client as its transport.
ANTHROPIC_API_KEY = env_secret("ANTHROPIC_API_KEY")
ANTHROPIC_BASE_URL = env.str("ANTHROPIC_BASE_URL", default="")
ANTHROPIC_MAX_RETRIES = env.int("ANTHROPIC_MAX_RETRIES", default=2)
CHAT_DEFAULT_MODEL = env.str("CHAT_DEFAULT_MODEL", default="claude-sonnet-5-5")
CHAT_MAX_OUTPUT_TOKENS = env.int("CHAT_MAX_OUTPUT_TOKENS", default=4096)
# The most input tokens one request may carry, below the model's own window (0: the model's window). Older
# exchanges are left out to stay under it, which also caps what a long conversation costs per turn.
CHAT_MAX_CONTEXT_TOKENS = env.int("CHAT_MAX_CONTEXT_TOKENS", default=0)
# Rounds of tool calls one reply may make (each round: the model asks, the tools run, the model reads).
CHAT_TOOL_MAX_ROUNDS = env.int("CHAT_TOOL_MAX_ROUNDS", default=5)
# The memory tool's storage per user (memory/, chat/llm/memory_tool.py): at most this many files of this many bytes.
MEMORY_MAX_FILES = env.int("MEMORY_MAX_FILES", default=200)
MEMORY_MAX_FILE_BYTES = env.int("MEMORY_MAX_FILE_BYTES", default=100_000)
# A PDF or text document (a message's or a project's) of at least this many tokens gets a 1-hour cache
# breakpoint even in a conversation set to 5 minutes: one pause over 5 minutes pays for it (chat/llm/cache_plan.py).
CACHE_1H_MIN_TOKENS = env.int("CACHE_1H_MIN_TOKENS", default=20_000)
# After a conversation's first complete reply, the cheapest model writes its title (chat/titles.py): one small
# request, budgeted and billed like any other. Off: conversations keep their first message as the title.
CHAT_MODEL_TITLES = env.bool("CHAT_MODEL_TITLES", default=True)
# Admins are emailed this many days before a model retires (lifecycle_notify), and again 7 days and 1 day before.
LIFECYCLE_NOTICE_DAYS = env.int("LIFECYCLE_NOTICE_DAYS", default=30)

# Tokens per second the offline model streams at; 0 streams instantly (tests). `make run` sets 60.
OFFLINE_MODEL_TOKENS_PER_SECOND = env.float("OFFLINE_MODEL_TOKENS_PER_SECOND", default=0)
# The offline model answers an id outside the catalogue with the API's 404; true serves any id (for gateways that
# rename models, and for tests that invent ids).
OFFLINE_MODEL_ACCEPT_ANY_MODEL = env.bool("OFFLINE_MODEL_ACCEPT_ANY_MODEL", default=False)
# The offline model's Message Batches: a batch ends this many seconds after its creation (tests use 0), and each is
# kept as files in this directory, shared by every process on the machine (chat/llm/offline/batches.py).
OFFLINE_MODEL_BATCH_SECONDS = env.float("OFFLINE_MODEL_BATCH_SECONDS", default=20)
OFFLINE_MODEL_BATCH_DIR = env.path("OFFLINE_MODEL_BATCH_DIR", default=BASE_DIR / "var" / "offline-batches")
# The offline model's Files API keeps each file in this directory, shared like the batches (chat/llm/offline/files.py).
OFFLINE_MODEL_FILES_DIR = env.path("OFFLINE_MODEL_FILES_DIR", default=BASE_DIR / "var" / "offline-files")
# Attachments go to the Files API once and are sent by file_id (filesapi/): "auto" does so while the API serves,
# inline otherwise; "off" always sends them inline. An upload that takes longer than the timeout goes inline.
CHAT_FILES_API = env.str("CHAT_FILES_API", default="auto")
if CHAT_FILES_API not in ("auto", "off"):
    raise ImproperlyConfigured(f"CHAT_FILES_API must be auto or off, not {CHAT_FILES_API!r}.")
CHAT_FILES_UPLOAD_TIMEOUT = env.float("CHAT_FILES_UPLOAD_TIMEOUT", default=10)

# Streaming: the upstream is abandoned after this many seconds without a byte (pings count as bytes).
CHAT_UPSTREAM_SILENCE_TIMEOUT = env.float("CHAT_UPSTREAM_SILENCE_TIMEOUT", default=60)
# Frames to the browser are coalesced to at most one per this many seconds per stream (~20/s).
CHAT_FRAME_INTERVAL = env.float("CHAT_FRAME_INTERVAL", default=0.05)
# The partial reply is written to the database at most this often, and at least this often as a heartbeat.
CHAT_CHECKPOINT_INTERVAL = env.float("CHAT_CHECKPOINT_INTERVAL", default=1.0)
CHAT_HEARTBEAT_INTERVAL = env.float("CHAT_HEARTBEAT_INTERVAL", default=5.0)
# Each socket checks the channel layer this often, to tell its client promptly when Redis is down.
CHAT_LAYER_PROBE_INTERVAL = env.float("CHAT_LAYER_PROBE_INTERVAL", default=5.0)
# On SIGTERM, running replies get this long to finish before they are saved as interrupted.
CHAT_DRAIN_TIMEOUT = env.float("CHAT_DRAIN_TIMEOUT", default=20.0)
# A message still `streaming` whose heartbeat is older than this was left by a dead process; each server
# process sweeps such replies (and what they reserved) this often.
CHAT_STREAM_STALE_AFTER = env.float("CHAT_STREAM_STALE_AFTER", default=30.0)
CHAT_STALE_SWEEP_INTERVAL = env.float("CHAT_STALE_SWEEP_INTERVAL", default=10.0)
# Saving a finished reply is retried with backoff for this long (a database restart must not lose it).
CHAT_SETTLE_TIMEOUT = env.float("CHAT_SETTLE_TIMEOUT", default=120.0)
# "Not urgent: half price" (batches/, docs/batches.md): the worker (`manage.py batches_work`) looks at the
# Message Batches this often; a submission that fails is tried this many times; a bulk question takes at most
# this many files; a page showing a queued reply asks for it again this often (it needs no shared layer).
BATCH_POLL_SECONDS = env.float("BATCH_POLL_SECONDS", default=15.0)
BATCH_SUBMIT_TRIES = env.int("BATCH_SUBMIT_TRIES", default=5)
BATCH_BULK_MAX_FILES = env.int("BATCH_BULK_MAX_FILES", default=20)
BATCH_PAGE_CHECK_SECONDS = env.float("BATCH_PAGE_CHECK_SECONDS", default=10.0)


# --- Budgets, rate limits and the admins' alerts ---------------------------------------------------------
def env_dollars(name: str, default: str) -> Decimal | None:
    """An amount of dollars, or None for "no budget" when the variable is set empty. A value that is not a
    non-negative number stops start-up rather than silently lifting a spending cap."""
    raw = env.str(name, default=default).strip()
    if not raw:
        return None
    try:
        value = Decimal(raw)
    except InvalidOperation:
        raise ImproperlyConfigured(f"{name} must be an amount of dollars such as 20 or 12.50, not {raw!r}.") from None
    if not value.is_finite() or value < 0:
        raise ImproperlyConfigured(f"{name} must be a non-negative amount of dollars, not {raw!r}.")
    return value


def env_limit(name: str, default: int) -> int:
    """A per-minute limit; 0 means none. A negative one would refuse everything, so it stops start-up."""
    value = env.int(name, default=default)
    if value < 0:
        raise ImproperlyConfigured(f"{name} must be 0 (no limit) or a positive number, not {value}.")
    return value


# Each user's monthly budget unless their account sets one; empty: no budget.
CHAT_DEFAULT_MONTHLY_BUDGET = env_dollars("CHAT_DEFAULT_MONTHLY_BUDGET", default="20")
# Per-user limits unless their account sets its own; 0: no limit. Held in the cache (Redis with REDIS_URL),
# so they hold across server processes.
CHAT_RATE_LIMIT_REQUESTS_PER_MINUTE = env_limit("CHAT_RATE_LIMIT_REQUESTS_PER_MINUTE", default=20)
CHAT_RATE_LIMIT_TOKENS_PER_MINUTE = env_limit("CHAT_RATE_LIMIT_TOKENS_PER_MINUTE", default=400_000)
# Searches (GET /search/) per user and minute; 0: no limit. The sidebar asks once a pause in typing.
SEARCH_RATE_LIMIT_PER_MINUTE = env_limit("SEARCH_RATE_LIMIT_PER_MINUTE", default=60)

# Budget alerts go to ADMINS by email: a comma-separated list of addresses. Without EMAIL_URL (for example
# smtp+tls://user:password@mail.example.com:587) mail is printed to the console.
ADMINS = [(address, address) for address in env.list("DJANGO_ADMINS", default=[])]
# Read into a lowercase name: it holds a password, and uppercase names show on DEBUG error pages.
email_url = env_secret("EMAIL_URL")
if email_url:
    vars().update(env.email_url_config(email_url))
else:
    EMAIL_BACKEND = "django.core.mail.backends.console.EmailBackend"
EMAIL_TIMEOUT = 10
DEFAULT_FROM_EMAIL = env.str("DJANGO_DEFAULT_FROM_EMAIL", default="claude-chat@localhost")
SERVER_EMAIL = DEFAULT_FROM_EMAIL
EMAIL_SUBJECT_PREFIX = "[Claude chat] "


# --- Groups (teams/) --------------------------------------------------------------------------------------
# Whether group managers may set their own group's monthly budget on its page. Off: only site admins set group
# budgets (on the same page or in the admin), so a manager cannot raise what the company pays for their group.
TEAMS_MANAGERS_SET_BUDGET = env.bool("TEAMS_MANAGERS_SET_BUDGET", default=False)


# --- Hardening --------------------------------------------------------------------------------------------
# The addresses of the reverse proxies in front (comma-separated), and only them: uvicorn then takes the client's
# address and scheme from their X-Forwarded-For and X-Forwarded-Proto (`--proxy-headers --forwarded-allow-ips`,
# Makefile and docs/deploy.md), and Django the scheme. Unset, those headers are ignored (`--no-proxy-headers`):
# anyone could otherwise write any address into the audit log and the sign-in throttle's counts.
TRUSTED_PROXY_IPS = env.list("TRUSTED_PROXY_IPS", default=[])
if TRUSTED_PROXY_IPS:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

# The address uvicorn listens on (`make run HOST=...` passes it on). DEBUG on an address other machines reach
# serves them debug pages whatever DJANGO_ALLOWED_HOSTS says: they need only send "Host: localhost".
BIND_HOST = env.str("DJANGO_BIND_HOST", default="127.0.0.1")
if DEBUG and BIND_HOST not in LOOPBACK_HOSTS:
    raise ImproperlyConfigured(
        f"DJANGO_DEBUG is on, and the server listens on {BIND_HOST} (DJANGO_BIND_HOST, make run's HOST), which "
        "other machines reach: debug pages would show them its settings and source. Set DJANGO_DEBUG=0 (with a "
        "DJANGO_SECRET_KEY), or listen on 127.0.0.1 only."
    )

# Every page (django-csp): scripts and styles only from this site's static files, no inline script or style,
# never framed. Websockets to this host are added per request (config/origins.py). Responses that set their
# own policy keep it: the sandbox of served attachments (chat/attachments/views.py).
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        # blob: for the previews of files being uploaded (static/chat/uploads.js); nothing here needs data: images.
        "img-src": ["'self'", "blob:"],
        "connect-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'none'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    },
}


# --- Sockets ----------------------------------------------------------------------------------------------
# An open socket whose session ended (logout, password change, deactivation, expiry) is closed within this
# many seconds; each process checks all its sockets at once, in two queries.
CHAT_SESSION_CHECK_INTERVAL = env.float("CHAT_SESSION_CHECK_INTERVAL", default=2.0)
# Open sockets one user may hold in one server process (behind N processes, up to N times this).
CHAT_SOCKETS_PER_USER = env.int("CHAT_SOCKETS_PER_USER", default=20)
# Frames one socket may send: a burst of CHAT_SOCKET_FRAME_BURST, then this many a second; the rest are
# dropped unread, with at most one `slow_down` error a second.
CHAT_SOCKET_FRAMES_PER_SECOND = env.float("CHAT_SOCKET_FRAMES_PER_SECOND", default=10.0)
CHAT_SOCKET_FRAME_BURST = env.int("CHAT_SOCKET_FRAME_BURST", default=30)


# --- Single sign-on (accounts/oidc.py) --------------------------------------------------------------------
# OpenID Connect through mozilla-django-oidc, on only when OIDC_ISSUER is set (docs/deploy.md, "Single
# sign-on"). The login page then shows "Sign in with OIDC_PROVIDER_NAME"; /oidc/callback/ is the redirect URI.
OIDC_ISSUER = env.str("OIDC_ISSUER", default="")
OIDC_PROVIDER_NAME = env.str("OIDC_PROVIDER_NAME", default="single sign-on")
# The userinfo claim that lists the user's groups; a group here joins the user to each Team whose
# sso_claim_value it equals.
OIDC_GROUPS_CLAIM = env.str("OIDC_GROUPS_CLAIM", default="groups")
OIDC_ENDPOINT_SETTINGS = {
    # This app's setting (and environment variable): the discovery document's field.
    "OIDC_OP_AUTHORIZATION_ENDPOINT": "authorization_endpoint",
    "OIDC_OP_TOKEN_ENDPOINT": "token_endpoint",
    "OIDC_OP_USER_ENDPOINT": "userinfo_endpoint",
    "OIDC_OP_JWKS_ENDPOINT": "jwks_uri",
}


def oidc_discovery(issuer: str) -> dict:
    """The provider's discovery document, read once at start-up. A provider that cannot be reached, or that
    names another issuer (OpenID Connect Discovery 4.3), stops start-up: every sign-in would fail anyway, and
    the ID tokens' `iss` is checked against OIDC_ISSUER."""
    import requests

    url = f"{issuer.rstrip('/')}/.well-known/openid-configuration"
    try:
        response = requests.get(url, timeout=10)
        response.raise_for_status()
        document = response.json()
    except (requests.RequestException, ValueError) as error:
        raise ImproperlyConfigured(
            f"Single sign-on: could not read {url} ({error}). Check OIDC_ISSUER, or set "
            f"{', '.join(OIDC_ENDPOINT_SETTINGS)} so start-up does not need the provider."
        ) from None
    if document.get("issuer") != issuer:
        raise ImproperlyConfigured(
            f"Single sign-on: the provider at {url} calls itself {document.get('issuer')!r}; "
            f"set OIDC_ISSUER to exactly that, not {issuer!r}."
        )
    return document


if OIDC_ISSUER:
    endpoints = {name: env.str(name, default="") for name in OIDC_ENDPOINT_SETTINGS}
    if not all(endpoints.values()):
        document = oidc_discovery(OIDC_ISSUER)
        endpoints = {
            name: value or document.get(OIDC_ENDPOINT_SETTINGS[name], "") for name, value in endpoints.items()
        }
    if missing := [name for name, value in endpoints.items() if not value]:
        raise ImproperlyConfigured(f"Single sign-on: the discovery document lacks {', '.join(missing)}.")
    vars().update(endpoints)
    OIDC_RP_CLIENT_ID = env.str("OIDC_CLIENT_ID")
    OIDC_RP_CLIENT_SECRET = env_secret("OIDC_CLIENT_SECRET")
    if not OIDC_RP_CLIENT_SECRET:
        raise ImproperlyConfigured("Single sign-on needs OIDC_CLIENT_SECRET (or OIDC_CLIENT_SECRET_FILE).")
    # ID tokens are signed by the provider's key, fetched from its JWKS endpoint; the client secret never is.
    OIDC_RP_SIGN_ALGO = "RS256"
    OIDC_RP_SCOPES = env.str("OIDC_SCOPES", default="openid email profile")
    OIDC_USE_PKCE = True
    # client_secret_basic: the token endpoint authentication OpenID Connect assumes when a client names none.
    OIDC_TOKEN_USE_BASIC_AUTH = True
    # Seconds to wait for the provider's token, userinfo and JWKS endpoints; the library's default: forever.
    OIDC_TIMEOUT = 10
    OIDC_CALLBACK_CLASS = "accounts.oidc.OidcCallbackView"
    AUTHENTICATION_BACKENDS.append("accounts.oidc.OidcBackend")
    TEMPLATES[0]["OPTIONS"]["context_processors"].append("accounts.oidc.sso_provider")
