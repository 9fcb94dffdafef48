"""A reply's lifecycle, from admission to settling: the orchestration around the SDK side in chat/llm/.

- `admission`: one service call and one transaction admit a turn (session, budget reservation, rate limits,
  the user message and the reply's `streaming` row with its ownership token).
- `generation`: the process-owned task that streams the reply, runs tools, checkpoints and settles it.
- `checkpoints`: every streaming reply of the process saved in one write per interval, the heartbeat kept.
- `fanout`: frames to the sockets of this process directly, and through the channel layer to the others.
- `supervision`: the stale sweep and the drain on shutdown.
"""
