"""Untrusted files are parsed in a child process under limits, never in the server's own.

A decoder's worst case (a decompression bomb, a PDF that loops, memory a C library keeps after a big decode)
is then the child's: it runs under an address-space limit and a CPU-time limit set before it reads a byte, and
everything it allocated goes back to the system when it exits. The limit is CPU time, not wall-clock time, so
a file gets the same answer on an idle server and on a loaded one; a wall-clock backstop (twice the CPU time,
plus ten seconds to start) only catches a child that stops using the CPU altogether.

At most ATTACHMENT_DECODE_CONCURRENCY children run at once in one server process, so the worst case of a
process is that many times one child's memory limit, whatever is uploaded at once; an upload that cannot get a
turn within ATTACHMENT_DECODE_WAIT seconds is refused with a sentence that says to try again.

The child is `python -I workers/entry.py TASK MEMORY CPU [ARGS...]` with the file on stdin (read from disk,
never held in this process), files it produces written into `output`, and one JSON object on stdout:
a task's result, {"error": "a sentence for the user"}, or {"os_error": errno} when the system failed it (a
full disk while it wrote its output). Its stderr goes to a temporary file, of which only the end is read, for
the log: a parser's warnings can run to megabytes for one file.
"""

import errno
import json
import logging
import os
import signal
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from typing import BinaryIO

from django.conf import settings
from django.core.exceptions import ValidationError

from chat.attachments import storage

log = logging.getLogger(__name__)

ENTRY = Path(__file__).with_name("workers") / "entry.py"
BACKSTOP_FACTOR = 2
BACKSTOP_START_SECONDS = 10
STDERR_TAIL_BYTES = 4096

BUSY = "The server is busy reading other files. Try this one again in a moment."
CRASHED = "This file could not be read (the reader crashed), so it can't be attached."

_turns: threading.BoundedSemaphore | None = None
_turns_lock = threading.Lock()


def _decode_turns() -> threading.BoundedSemaphore:
    global _turns
    with _turns_lock:
        if _turns is None:
            _turns = threading.BoundedSemaphore(settings.ATTACHMENT_DECODE_CONCURRENCY)
        return _turns


def isolated_run(task: str, source: Path, *args: str, output: Path | None = None) -> dict:
    """Run `task` on the file at `source` in a limited child: its result, or ValidationError saying why."""
    memory, cpu = settings.ATTACHMENT_DECODE_MEMORY_BYTES, settings.ATTACHMENT_DECODE_CPU_SECONDS
    command = [sys.executable, "-I", str(ENTRY), task, str(memory), str(cpu), *args]
    if output is not None:
        command.append(str(output))
    turns = _decode_turns()
    if not turns.acquire(timeout=settings.ATTACHMENT_DECODE_WAIT):
        raise ValidationError(BUSY)
    try:
        with source.open("rb") as stdin, tempfile.TemporaryFile() as stderr:
            completed = subprocess.run(
                command, stdin=stdin, stdout=subprocess.PIPE, stderr=stderr, check=False,
                timeout=BACKSTOP_FACTOR * cpu + BACKSTOP_START_SECONDS,
            )
            if completed.returncode in (-signal.SIGXCPU, -signal.SIGKILL):
                raise ValidationError(_too_slow(cpu))
            try:
                result = json.loads(completed.stdout)
            except ValueError:
                log.warning("%s worker exited %s: %s", task, completed.returncode, stderr_tail(stderr))
                raise ValidationError(CRASHED) from None
    except subprocess.TimeoutExpired:
        log.warning("%s worker stalled past the wall-clock backstop", task)
        raise ValidationError(_too_slow(cpu)) from None
    finally:
        turns.release()
    if "os_error" in result:
        raise ValidationError(_system_failure(task, result["os_error"]))
    if "error" in result:
        raise ValidationError(result["error"])
    return result


def stderr_tail(stderr: BinaryIO) -> str:
    """The last STDERR_TAIL_BYTES of what the child wrote to `stderr`, read from where it ends."""
    size = stderr.seek(0, os.SEEK_END)
    stderr.seek(max(0, size - STDERR_TAIL_BYTES))
    return stderr.read().decode("utf-8", "replace")


def _system_failure(task: str, number: int) -> str:
    if number in storage.DISK_FULL_ERRORS:
        return storage.DISK_FULL
    log.warning("%s worker failed: %s", task, errno.errorcode.get(number, number))
    return CRASHED


def _too_slow(cpu: float) -> str:
    return (
        f"Reading this file took more than {cpu:g} s of processing, so it was stopped; it can't be attached."
    )
