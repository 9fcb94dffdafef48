"""The offline model: an emulator of the Anthropic Messages API for demos, development and CI.

It plugs into the real `AsyncAnthropic` client as its HTTP transport (`offline_transport()`), or serves the
same endpoints over loopback HTTP (`offline_asgi_app`, run by `manage.py serve_offline_model`). Either way
the SDK parses real SSE bytes, so nothing above the client knows which backend it talks to.

- `offline_model`: the process-wide state (prompt cache, fault queue, request counter, open streams), with
  `inject_fault(kind, times=, after_tokens=, retry_after=)`, `reset()` and a settable `clock`.
- `offline_model.batches`: the Message Batches API (batches.py), whose state is files in
  OFFLINE_MODEL_BATCH_DIR shared by every process on the machine; a batch ends OFFLINE_MODEL_BATCH_SECONDS
  after its creation on the settable wall clock `offline_model.batches.clock`.
- `estimate_tokens(text)`: the production estimate (chat/llm/tokens.py), which the emulator bills by.
"""

from chat.llm.offline.asgi import offline_asgi_app
from chat.llm.offline.model import FAULT_KINDS, OfflineModel, offline_model, offline_transport
from chat.llm.tokens import estimate_tokens

__all__ = [
    "FAULT_KINDS",
    "OfflineModel",
    "estimate_tokens",
    "offline_asgi_app",
    "offline_model",
    "offline_transport",
]
