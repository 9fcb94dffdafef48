"""Attachments: uploads turned, once, into what the model reads.

An upload (views.py) is identified by its content (formats.py), processed by the reader for its format
(readers.py: images.py, pdfs.py and texts.py, the untrusted parsing in limited child processes, isolation.py)
and stored under a generated name (storage.py) as an `Attachment` owned by the user (services.py). The message
that sends it claims it (services.py); each request to the model then turns the references in the message
into image and document blocks (blocks.py), within the API's limits (limits.py).
"""
