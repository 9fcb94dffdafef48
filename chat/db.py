"""Database calls from async code (consumers, generations, uploads).

Channels' `database_sync_to_async` is thread-sensitive by default: every call in the process runs on one
shared thread, so under load every stream's turn start, request build and checkpoint queue behind each
other. The calls made through here are self-contained ORM work with no thread-bound state, so they run on
a thread pool instead, each thread with its own connection (closed before and after each call, as a
request's is): the event loop's default pool, or `executor` for work that holds its threads long enough to
starve everyone else's (uploads).
"""

from concurrent.futures import ThreadPoolExecutor

from channels.db import database_sync_to_async


def db_async(function, *, executor: ThreadPoolExecutor | None = None):
    return database_sync_to_async(function, thread_sensitive=False, executor=executor)
