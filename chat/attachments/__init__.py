"""Attachments: uploads turned, once, into what the model reads.

An upload (views.py) is identified by its content, processed (images.py re-encodes images; pdfs.py validates
PDFs in a killable child process) and stored under a generated name (storage.py) as an `Attachment` owned by
the user. The message that sends it claims it (services.py); each request to the model then turns the
references in the message into image and document blocks (blocks.py), within the API's limits (limits.py).
"""
