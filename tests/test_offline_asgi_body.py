"""The offline model's HTTP server reads a request body only up to the largest the API accepts (a batch's
create, 256 MB), and answers 413 in the API's error shape past it."""

import json

from asgiref.testing import ApplicationCommunicator

from chat.llm.offline import batches
from chat.llm.offline.asgi import offline_asgi_app

SCOPE = {
    "type": "http", "method": "POST", "path": "/v1/messages", "query_string": b"",
    "headers": [(b"content-type", b"application/json"), (b"x-api-key", b"offline")],
}


async def test_a_body_past_the_limit_is_refused_with_413_before_it_is_all_read(monkeypatch):
    monkeypatch.setattr(batches, "MAX_BODY_BYTES", 1000)
    server = ApplicationCommunicator(offline_asgi_app, SCOPE)
    for _ in range(2):
        await server.send_input({"type": "http.request", "body": b"x" * 600, "more_body": True})

    start = await server.receive_output(timeout=5)
    body = b""
    while (message := await server.receive_output(timeout=5)).get("more_body"):
        body += message["body"]
    await server.send_input({"type": "http.disconnect"})
    await server.wait(timeout=5)

    assert start["status"] == 413
    assert json.loads(body)["error"] == {
        "type": "request_too_large", "message": "Request exceeds the maximum size of 1000 bytes.",
    }
