"""Secrets may come from files; a server others can reach, by its host names or the address it listens on,
never runs with DEBUG; the proxy's headers are believed only when the deployment names the proxy."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
REAL_KEY = "k" * 20 + "-production-secret-that-is-long-enough-" + "z" * 10
# Read by the settings these tests are about; the environment running the tests must not decide them.
VARIABLES = (
    "DJANGO_DEBUG", "DJANGO_SECRET_KEY", "DJANGO_ALLOWED_HOSTS", "DATABASE_URL", "ANTHROPIC_API_KEY", "EMAIL_URL",
    "OIDC_ISSUER", "TRUSTED_PROXY_IPS", "DJANGO_BIND_HOST", "REDIS_URL",
)


def settings_of(*names: str, **env) -> subprocess.CompletedProcess:
    """Start Django with `env` and print the settings `names` as JSON."""
    code = (
        "import django, json; django.setup(); from django.conf import settings; "
        f"print(json.dumps({{name: getattr(settings, name, None) for name in {names!r}}}, default=str))"
    )
    clean = {name: value for name, value in os.environ.items()
             if name not in VARIABLES and name.removesuffix("_FILE") not in VARIABLES}
    return subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env={**clean, "DJANGO_SETTINGS_MODULE": "config.settings", **env},
        capture_output=True, text=True, timeout=60, check=False,
    )


def values(*names: str, **env) -> dict:
    result = settings_of(*names, **env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def refusal(**env) -> str:
    """The sentence start-up stops with."""
    result = settings_of("DEBUG", **env)
    assert result.returncode != 0
    return re.findall(r"ImproperlyConfigured: (.*)", result.stderr)[-1]


# --- secrets from files --------------------------------------------------------------------------------------

def test_each_secret_is_read_from_its_file_without_the_trailing_newline(tmp_path):
    files = {
        "DJANGO_SECRET_KEY": REAL_KEY,
        "ANTHROPIC_API_KEY": "sk-ant-from-a-file",
        "EMAIL_URL": "smtp+tls://mailer:mail-password@mail.example.com:587",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'from-a-file.sqlite3'}",
        "REDIS_URL": "redis://:redis-password@redis.example.com:6379/0",
    }
    for name, secret in files.items():
        (tmp_path / name).write_text(secret + "\n")

    read = values(
        "SECRET_KEY", "ANTHROPIC_API_KEY", "EMAIL_HOST", "EMAIL_HOST_PASSWORD", "DATABASES", "REDIS_URL",
        DJANGO_DEBUG="0", DJANGO_SECURE_SSL_REDIRECT="0", **{f"{name}_FILE": str(tmp_path / name) for name in files},
    )

    assert read["SECRET_KEY"] == REAL_KEY
    assert read["ANTHROPIC_API_KEY"] == "sk-ant-from-a-file"
    assert (read["EMAIL_HOST"], read["EMAIL_HOST_PASSWORD"]) == ("mail.example.com", "mail-password")
    assert read["DATABASES"]["default"]["NAME"] == str(tmp_path / "from-a-file.sqlite3")
    assert read["REDIS_URL"] == "redis://:redis-password@redis.example.com:6379/0"


def test_a_secret_file_that_does_not_exist_stops_start_up(tmp_path):
    missing = tmp_path / "no-such-file"

    sentence = refusal(DJANGO_DEBUG="0", DJANGO_SECRET_KEY_FILE=str(missing))

    assert sentence == f"DJANGO_SECRET_KEY_FILE names {missing}, which cannot be read (No such file or directory)."


def test_an_empty_secret_file_stops_start_up(tmp_path):
    empty = tmp_path / "empty"
    empty.write_text("\n")

    assert refusal(ANTHROPIC_API_KEY_FILE=str(empty)) == f"ANTHROPIC_API_KEY_FILE names {empty}, which is empty."


def test_a_secret_set_both_ways_stops_start_up(tmp_path):
    (tmp_path / "key").write_text("sk-ant-file")

    sentence = refusal(ANTHROPIC_API_KEY="sk-ant-env", ANTHROPIC_API_KEY_FILE=str(tmp_path / "key"))

    assert sentence == "Set ANTHROPIC_API_KEY or ANTHROPIC_API_KEY_FILE, not both."


def test_without_files_the_variables_themselves_are_read():
    read = values("ANTHROPIC_API_KEY", "SECRET_KEY", ANTHROPIC_API_KEY="sk-ant-env")

    assert read["ANTHROPIC_API_KEY"] == "sk-ant-env"
    assert read["SECRET_KEY"] == "insecure-development-key-do-not-use-in-production"


# --- DEBUG only for this machine --------------------------------------------------------------------------------

def test_debug_for_a_host_other_machines_reach_stops_start_up():
    sentence = refusal(DJANGO_DEBUG="1", DJANGO_ALLOWED_HOSTS="localhost,chat.example.com")

    assert sentence == (
        "DJANGO_DEBUG is on, and DJANGO_ALLOWED_HOSTS lets other machines reach this server as chat.example.com: "
        "debug pages would show them its settings and source. Set DJANGO_DEBUG=0 (with a DJANGO_SECRET_KEY), or "
        "serve localhost only."
    )


def test_debug_for_any_host_stops_start_up():
    assert "as *:" in refusal(DJANGO_DEBUG="1", DJANGO_ALLOWED_HOSTS="*")


@pytest.mark.parametrize("hosts", ["", "127.0.0.1,localhost,[::1]", "::1"])
def test_debug_on_this_machine_only_starts(hosts):
    env = {"DJANGO_ALLOWED_HOSTS": hosts} if hosts else {}

    assert values("DEBUG", DJANGO_DEBUG="1", **env) == {"DEBUG": True}


@pytest.mark.parametrize("address", ["0.0.0.0", "::", "192.168.1.5", "chat.example.com"])
def test_debug_listening_on_an_address_other_machines_reach_stops_start_up(address):
    """ALLOWED_HOSTS alone does not keep them out: they may send "Host: localhost"."""
    sentence = refusal(DJANGO_DEBUG="1", DJANGO_BIND_HOST=address)

    assert sentence == (
        f"DJANGO_DEBUG is on, and the server listens on {address} (DJANGO_BIND_HOST, make run's HOST), which other "
        "machines reach: debug pages would show them its settings and source. Set DJANGO_DEBUG=0 (with a "
        "DJANGO_SECRET_KEY), or listen on 127.0.0.1 only."
    )


@pytest.mark.parametrize("address", ["127.0.0.1", "localhost", "::1"])
def test_debug_listening_on_this_machine_only_starts(address):
    assert values("DEBUG", DJANGO_DEBUG="1", DJANGO_BIND_HOST=address) == {"DEBUG": True}


def test_production_listens_anywhere():
    read = values("DEBUG", DJANGO_DEBUG="0", DJANGO_SECRET_KEY=REAL_KEY, DJANGO_BIND_HOST="0.0.0.0")

    assert read == {"DEBUG": False}


def test_make_run_tells_the_settings_which_address_uvicorn_listens_on():
    result = subprocess.run(
        ["make", "-n", "run", "HOST=0.0.0.0"], cwd=ROOT, capture_output=True, text=True, timeout=60, check=False,
    )
    [server_line] = [line for line in result.stdout.splitlines() if "uvicorn --host" in line]

    assert "DJANGO_BIND_HOST=0.0.0.0 " in server_line.split("uvicorn --host")[0]
    assert "uvicorn --host 0.0.0.0 " in server_line


def test_production_serves_any_host():
    read = values("DEBUG", "ALLOWED_HOSTS", DJANGO_DEBUG="0", DJANGO_SECRET_KEY=REAL_KEY,
                  DJANGO_ALLOWED_HOSTS="chat.example.com")

    assert read == {"DEBUG": False, "ALLOWED_HOSTS": ["chat.example.com"]}


# --- proxy headers ----------------------------------------------------------------------------------------------

def test_the_forwarded_scheme_is_believed_only_with_trusted_proxies():
    production = {"DJANGO_DEBUG": "0", "DJANGO_SECRET_KEY": REAL_KEY}

    assert values("SECURE_PROXY_SSL_HEADER", **production) == {"SECURE_PROXY_SSL_HEADER": None}
    assert values("SECURE_PROXY_SSL_HEADER", "TRUSTED_PROXY_IPS", TRUSTED_PROXY_IPS="10.0.0.2,10.0.0.3",
                  **production) == {
        "SECURE_PROXY_SSL_HEADER": ["HTTP_X_FORWARDED_PROTO", "https"], "TRUSTED_PROXY_IPS": ["10.0.0.2", "10.0.0.3"],
    }


def uvicorn_command(**env) -> str:
    result = subprocess.run(
        ["make", "-n", "run"], cwd=ROOT, env={**os.environ, **env}, capture_output=True, text=True, timeout=60, check=False,
    )
    assert result.returncode == 0, result.stderr
    return " ".join(result.stdout.split("\\\n")).split("uvicorn ")[-1]


def test_make_run_ignores_forwarded_headers_unless_told_which_proxies_set_them():
    assert "--no-proxy-headers" in uvicorn_command(TRUSTED_PROXY_IPS="")
    trusted = uvicorn_command(TRUSTED_PROXY_IPS="10.0.0.2,10.0.0.3")
    assert "--proxy-headers --forwarded-allow-ips 10.0.0.2,10.0.0.3" in trusted
    assert "--no-proxy-headers" not in trusted
