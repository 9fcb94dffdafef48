"""Database calls from async code (consumers, generations).

Channels' `database_sync_to_async` is thread-sensitive by default: every call in the process runs on one
shared thread, so under load every stream's turn start, request build and checkpoint queue behind each
other. The calls made through here are self-contained ORM work with no thread-bound state, so they run on
the thread pool instead, each thread with its own connection (closed after use as usual).
"""

from channels.db import database_sync_to_async


def db_async(function):
    return database_sync_to_async(function, thread_sensitive=False)
