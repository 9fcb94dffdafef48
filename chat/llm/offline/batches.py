"""The Message Batches API on the offline model: create, retrieve, list, cancel, results and delete.

Batches are files in OFFLINE_MODEL_BATCH_DIR, so that every process on the machine sees the same ones and a
worker that restarts finds its own: `<id>.json` is the batch's state (small, rewritten whole),
`<id>.requests.jsonl` the requests as sent, one a line, and `<id>.results.jsonl`, once the batch has ended,
what `results` streams. Each file is written under a temporary name and moved into place, so a reader sees
the old file or the new one, never half of one. A batch changes state only under an exclusive `flock` on the
directory, so two processes never process it twice. Nothing is kept in memory between requests, and requests
and results are read a line at a time.

A batch is processed all at once, by the first request about it (retrieve, list, cancel, results, delete)
that comes OFFLINE_MODEL_BATCH_SECONDS or more after its creation on the wall clock (`clock`), which every
process shares; creating one always answers `in_progress`, as the API does. Each request then gets what
/v1/messages answers without streaming: the same Message (words, usage, and the prompt cache of the process
that processes it), or, for params /v1/messages refuses, an `errored` result with the same message. As on the
API, params are checked then, not when the batch is created. A batch canceled before its time ends at its
next read with every request `canceled`; one whose 24 hours pass first ends with every request `expired`.
"""

import contextlib
import fcntl
import json
import os
import re
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

import httpx2
from django.conf import settings

from chat.llm.offline.paging import ids_page, list_page
from chat.llm.offline.prompt import InvalidRequest, read_prompt
from chat.llm.offline.validation import ApiRefusal

if TYPE_CHECKING:
    from chat.llm.offline.model import OfflineModel

BATCHES_PATH = "/v1/messages/batches"
MAX_REQUESTS = 100_000
MAX_BODY_BYTES = 256 * 1024 * 1024  # the API's limit on a create request's body
EXPIRES_AFTER = 24 * 3600.0
CUSTOM_ID = re.compile(r"[a-zA-Z0-9_-]{1,64}")
# The microsecond of creation, in hex, comes first: ids sort as batches were created; `list` pages by them.
BATCH_ID = re.compile(r"msgbatch_offline_[0-9a-f]{24}")
STATE_FILE = re.compile(rf"({BATCH_ID.pattern})\.json")
RESULT_TYPES = ("succeeded", "errored", "canceled", "expired")
RESULTS_CHUNK_BYTES = 64 * 1024


class BatchRefused(Exception):
    """A batches request the API refuses with a status other than 400: 404 for an unknown batch, 413 for a
    body over the limit. The message says why."""

    def __init__(self, status: int, error_type: str, message: str) -> None:
        super().__init__(message)
        self.status, self.error_type = status, error_type


class OfflineBatches:
    """The /v1/messages/batches endpoints. `clock` returns wall-clock seconds; tests replace it to expire a
    batch without waiting a day."""

    def __init__(self, model: "OfflineModel") -> None:
        self.clock: Callable[[], float] = time.time
        self._model = model

    def handle(self, request: httpx2.Request) -> dict | httpx2.AsyncByteStream:
        """The answer to one request under /v1/messages/batches: a JSON object, or a results file to stream.

        It blocks (files, and processing a batch whose time has come): the caller runs it in a thread.
        """
        method, path = request.method, request.url.path
        directory = Path(settings.OFFLINE_MODEL_BATCH_DIR)
        directory.mkdir(parents=True, exist_ok=True)
        base_url = f"{request.url.scheme}://{request.headers.get('host') or request.url.netloc.decode()}"
        if path == BATCHES_PATH and method == "POST":
            return _batch_object(self._create(directory, _create_requests(request)), base_url)
        if path == BATCHES_PATH and method == "GET":
            return self._list(directory, request.url.params, base_url)
        batch_id, _, action = path.removeprefix(f"{BATCHES_PATH}/").partition("/")
        route = (method, action)
        if route == ("GET", ""):
            return _batch_object(self._current(directory, batch_id), base_url)
        if route == ("POST", "cancel"):
            return _batch_object(self._cancel(directory, batch_id), base_url)
        if route == ("GET", "results"):
            return self._results(directory, batch_id)
        if route == ("DELETE", ""):
            return self._delete(directory, batch_id)
        raise BatchRefused(404, "not_found_error", f"Not found: {method} {path}")

    def _create(self, directory: Path, requests: list[dict]) -> dict:
        now = self.clock()
        batch_id = f"msgbatch_offline_{int(now * 1_000_000):014x}{uuid.uuid4().hex[:10]}"
        with _replacing(directory / f"{batch_id}.requests.jsonl") as file:
            for item in requests:
                file.write(json.dumps(item) + "\n")  # ASCII: a lone surrogate in a string stays writable
        state = {
            "id": batch_id,
            "processing_status": "in_progress",
            "request_counts": {"processing": len(requests), **dict.fromkeys(RESULT_TYPES, 0)},
            "created_at": now,
            "process_at": now + float(settings.OFFLINE_MODEL_BATCH_SECONDS),
            "expires_at": now + EXPIRES_AFTER,
            "cancel_initiated_at": None,
            "ended_at": None,
        }
        _write_state(directory, state)  # last: the batch exists once its requests are all in place
        return state

    def _current(self, directory: Path, batch_id: str) -> dict:
        """The batch's state, after ending it if its time has come."""
        state = _read_state(directory, batch_id)
        if self._ending(state) is None:
            return state
        with _locked(directory):  # then read again: another process may have ended it meanwhile
            return self._ended_if_due(directory, _read_state(directory, batch_id))

    def _ending(self, state: dict) -> str | None:
        """How the batch ends if it ends now: "processed" (each request on its own), "canceled" or "expired"
        (every request so); None while it is not its time yet."""
        if state["processing_status"] != "in_progress":
            return "canceled" if state["processing_status"] == "canceling" else None
        if self.clock() < min(state["process_at"], state["expires_at"]):
            return None
        return "processed" if state["process_at"] < state["expires_at"] else "expired"

    def _ended_if_due(self, directory: Path, state: dict) -> dict:
        """Ends the batch if its time has come, writing its results. The caller holds the directory's lock."""
        ending = self._ending(state)
        if ending is None:
            return state
        counts = dict.fromkeys(RESULT_TYPES, 0)
        requests_path = directory / f"{state['id']}.requests.jsonl"
        results_path = directory / f"{state['id']}.results.jsonl"
        with open(requests_path, encoding="utf-8") as requests, _replacing(results_path) as results:
            for line in requests:
                item = json.loads(line)
                result = self._result(item["params"]) if ending == "processed" else {"type": ending}
                counts[result["type"]] += 1
                results.write(json.dumps({"custom_id": item["custom_id"], "result": result}) + "\n")
        # It ended when it was due (canceled: now), however long after that it was read.
        due = {"processed": state["process_at"], "expired": state["expires_at"]}
        state = {
            **state,
            "processing_status": "ended",
            "request_counts": {"processing": 0, **counts},
            "ended_at": due.get(ending, self.clock()),
        }
        _write_state(directory, state)
        return state

    def _result(self, params: dict) -> dict:
        """What /v1/messages answers to `params`, without a stream, as a batch result."""
        try:
            prompt = read_prompt(params)
        except InvalidRequest as exc:
            error = {"type": "invalid_request_error", "message": str(exc)}
            return {"type": "errored", "error": {"type": "error", "error": error}}
        except ApiRefusal as exc:  # an unknown model: the 404 of /v1/messages, as the request's error
            error = {"type": exc.error_type, "message": str(exc)}
            return {"type": "errored", "error": {"type": "error", "error": error}}
        message, _, _ = self._model.reply(prompt)
        return {"type": "succeeded", "message": message}

    def _cancel(self, directory: Path, batch_id: str) -> dict:
        """Starts canceling a batch in progress; one already canceling or ended is left as it is."""
        with _locked(directory):
            state = self._ended_if_due(directory, _read_state(directory, batch_id))
            if state["processing_status"] == "in_progress":
                state = {**state, "processing_status": "canceling", "cancel_initiated_at": self.clock()}
                _write_state(directory, state)
        return state

    def _results(self, directory: Path, batch_id: str) -> httpx2.AsyncByteStream:
        state = self._current(directory, batch_id)
        if state["processing_status"] != "ended":
            raise InvalidRequest(f"Message Batch {batch_id} has not ended yet; its results come once it has.")
        try:
            return _ResultsFile(directory / f"{batch_id}.results.jsonl")
        except FileNotFoundError:  # deleted since
            raise _not_found(batch_id) from None

    def _delete(self, directory: Path, batch_id: str) -> dict:
        with _locked(directory):
            state = self._ended_if_due(directory, _read_state(directory, batch_id))
            if state["processing_status"] != "ended":
                raise InvalidRequest(
                    f"Message Batch {batch_id} is still in progress; cancel it first, delete it once ended."
                )
            for suffix in (".json", ".results.jsonl", ".requests.jsonl"):  # the state first: then it is gone
                (directory / f"{batch_id}{suffix}").unlink(missing_ok=True)
        return {"id": batch_id, "type": "message_batch_deleted"}

    def _list(self, directory: Path, params: httpx2.QueryParams, base_url: str) -> dict:
        """A page of batches, newest first, paged by after_id (older) or before_id (newer) as the API pages.

        The cursor need not still exist: ids compare as their creation times do.
        """
        for name in ("after_id", "before_id"):
            if name in params and not BATCH_ID.fullmatch(params[name]):
                raise InvalidRequest(f"{name}: {params[name]!r} is not a Message Batch id")
        page, has_more = ids_page(directory, STATE_FILE, params)
        batches = []
        for batch_id in page:
            with contextlib.suppress(BatchRefused):  # deleted since the directory was read
                batches.append(_batch_object(self._current(directory, batch_id), base_url))
        return list_page(batches, page, has_more)


class _ResultsFile(httpx2.AsyncByteStream):
    """A results file, streamed in chunks. The file is closed when read to its end or when the response is
    closed unread (httpx calls `aclose`, which a plain generator body ignores); one deleted meanwhile still
    reads to its end."""

    def __init__(self, path: Path) -> None:
        self._file = open(path, "rb")  # noqa: SIM115 - closed by aclose, whoever ends the response

    async def __aiter__(self) -> AsyncIterator[bytes]:
        try:
            while chunk := self._file.read(RESULTS_CHUNK_BYTES):
                yield chunk
        finally:
            await self.aclose()

    async def aclose(self) -> None:
        self._file.close()


def _create_requests(request: httpx2.Request) -> list[dict]:
    """The `requests` of a create body, checked as the API checks them before it accepts a batch (their params
    are checked when the batch is processed)."""
    if len(request.content) > MAX_BODY_BYTES:
        message = f"Request exceeds the maximum size of {MAX_BODY_BYTES} bytes."
        raise BatchRefused(413, "request_too_large", message)
    try:
        body = json.loads(request.content)
    except ValueError as exc:
        raise InvalidRequest("The request body is not valid JSON.") from exc
    requests = body.get("requests") if isinstance(body, dict) else None
    if not isinstance(requests, list):
        raise InvalidRequest("requests: Field required (a list of requests)")
    if not 1 <= len(requests) <= MAX_REQUESTS:
        raise InvalidRequest(f"requests: a batch holds 1 to {MAX_REQUESTS} requests, not {len(requests)}")
    seen: set[str] = set()
    for index, item in enumerate(requests):
        where = f"requests.{index}"
        if not isinstance(item, dict):
            raise InvalidRequest(f"{where}: Input should be an object with custom_id and params")
        if extra := sorted(set(item) - {"custom_id", "params"}):
            raise InvalidRequest(f"{where}.{extra[0]}: Extra inputs are not permitted")
        custom_id = item.get("custom_id")
        if not isinstance(custom_id, str) or not CUSTOM_ID.fullmatch(custom_id):
            raise InvalidRequest(f"{where}.custom_id: String should match pattern '^[a-zA-Z0-9_-]{{1,64}}$'")
        if custom_id in seen:
            raise InvalidRequest(f"{where}.custom_id: {custom_id!r} is used twice; each needs its own")
        seen.add(custom_id)
        params = item.get("params")
        if not isinstance(params, dict):
            raise InvalidRequest(f"{where}.params: Field required (the Messages API parameters)")
        if "stream" in params and params["stream"] is not False:
            raise InvalidRequest(f"{where}.params.stream: a batch request cannot stream")
    return requests


def _batch_object(state: dict, base_url: str) -> dict:
    """The MessageBatch object the API returns for a batch in this state."""
    ended = state["processing_status"] == "ended"
    return {
        "id": state["id"],
        "type": "message_batch",
        "processing_status": state["processing_status"],
        "request_counts": state["request_counts"],
        "created_at": _rfc3339(state["created_at"]),
        "expires_at": _rfc3339(state["expires_at"]),
        "cancel_initiated_at": _rfc3339(state["cancel_initiated_at"]),
        "ended_at": _rfc3339(state["ended_at"]),
        "archived_at": None,  # results stay until the batch is deleted
        "results_url": f"{base_url}{BATCHES_PATH}/{state['id']}/results" if ended else None,
    }


def _rfc3339(timestamp: float | None) -> str | None:
    if timestamp is None:
        return None
    return datetime.fromtimestamp(timestamp, UTC).isoformat().replace("+00:00", "Z")


def _not_found(batch_id: str) -> BatchRefused:
    return BatchRefused(404, "not_found_error", f"No Message Batch with id {batch_id[:100]!r}.")


def _read_state(directory: Path, batch_id: str) -> dict:
    if BATCH_ID.fullmatch(batch_id):  # before the id names a file: nothing else is looked up
        with contextlib.suppress(FileNotFoundError):
            return json.loads((directory / f"{batch_id}.json").read_text(encoding="utf-8"))
    raise _not_found(batch_id)


def _write_state(directory: Path, state: dict) -> None:
    with _replacing(directory / f"{state['id']}.json") as file:
        json.dump(state, file)


@contextlib.contextmanager
def _replacing(path: Path) -> Iterator[TextIO]:
    """A text file written under a temporary name beside `path`, moved over it once complete and on disk."""
    file = tempfile.NamedTemporaryFile(  # noqa: SIM115 - renamed or removed below
        "w", encoding="utf-8", dir=path.parent, prefix=".", suffix=".tmp", delete=False
    )
    try:
        with file:
            yield file
            file.flush()
            os.fsync(file.fileno())
        os.replace(file.name, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(file.name)
        raise


@contextlib.contextmanager
def _locked(directory: Path) -> Iterator[None]:
    """The directory's exclusive lock, across processes and threads (each holder opens the file itself)."""
    with open(directory / ".lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield
