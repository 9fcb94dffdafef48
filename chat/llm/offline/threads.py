"""The message-threads beta, as the SDK's tool runner uses it: `thread: {"type": "create"}` asks the server to
hold the conversation under the reply's id; `{"type": "continue", "previous_message_id": ...}` sends only the
new turn, and the server supplies the history and the thread's create-only fields (`system`, `tools`).

Like the API, the field is refused without the beta header (as an unknown field), a thread continued twice is
refused with `thread_already_continued`, and a thread the server no longer holds with `thread_not_found`: the
SDK answers both by replaying the whole history under a new thread, so its loop completes either way. The
offline model keeps the latest THREADS_KEPT replies in memory; an older one is "not found".
"""

import threading
from collections import OrderedDict

from chat.llm.offline.validation import ApiRefusal, InvalidRequest

THREADS_BETA = "message-threads-2026-08-12"
THREADS_KEPT = 256
CREATE_ONLY_FIELDS = ("system", "tools")


class OfflineThreads:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._held: OrderedDict[str, dict] = OrderedDict()  # reply id -> the request it answered, with it
        self._continued: set[str] = set()

    def clear(self) -> None:
        with self._lock:
            self._held.clear()
            self._continued.clear()

    def expand(self, body: object, headers) -> tuple[object, bool]:
        """The whole request a threaded one stands for, without its `thread` field (any other body as it is),
        and whether the reply is to be held for a later `continue`."""
        if not isinstance(body, dict) or "thread" not in body:
            return body, False
        thread = body["thread"]
        if THREADS_BETA not in headers.get("anthropic-beta", ""):
            raise InvalidRequest("thread: Extra inputs are not permitted")
        plain = {key: value for key, value in body.items() if key != "thread"}
        if thread is None:
            return plain, False
        if not isinstance(thread, dict) or thread.get("type") not in ("create", "continue"):
            raise InvalidRequest("thread.type: Input should be 'create' or 'continue'")
        if thread["type"] == "create":
            return plain, True
        previous = thread.get("previous_message_id")
        if not isinstance(previous, str) or not previous:
            raise InvalidRequest("thread.continue.previous_message_id: Field required")
        if present := [field for field in CREATE_ONLY_FIELDS if field in plain]:
            raise InvalidRequest(f"{present[0]}: cannot be set when continuing a thread; it keeps its own")
        with self._lock:
            held = self._held.get(previous)
            if held is None:
                raise ApiRefusal(
                    404, "not_found_error", f"thread: no thread holds message {previous}",
                    {"error_code": "thread_not_found"},
                )
            if previous in self._continued:
                raise ApiRefusal(
                    400, "invalid_request_error", f"thread: message {previous} was already continued",
                    {"error_code": "thread_already_continued"},
                )
            self._continued.add(previous)
        messages = plain.get("messages") if isinstance(plain.get("messages"), list) else []
        history = {field: held[field] for field in CREATE_ONLY_FIELDS if field in held}
        return {**plain, **history, "messages": [*held["messages"], *messages]}, True

    def record(self, body: dict, message: dict) -> None:
        """Holds a threaded request's conversation, with `message` as its last turn, under the message's id."""
        held = {field: body[field] for field in CREATE_ONLY_FIELDS if field in body}
        reply = {"role": "assistant", "content": message["content"]}
        held["messages"] = [*body.get("messages", []), reply]
        with self._lock:
            self._held[message["id"]] = held
            while len(self._held) > THREADS_KEPT:
                self._held.popitem(last=False)
