"""Text documents: a file of text (formats.py says which files are) read whole, within what the model reads.

The model gets the text as a text document block titled with the file's name; it is stored as UTF-8, whatever
it was uploaded in. A text must fit in the context window beside the conversation, so its length is limited
by its token estimate, measured as the context budget measures text (chat/llm/context.py: its JSON, where each
character outside ASCII counts six), so that a text in a script of about one token a character is not let in
at a quarter of its real cost. The file is decoded a chunk at a time and reading stops at the limit: a file of
any size costs memory for MAX_TEXT_TOKENS only.
"""

import codecs
import json
from pathlib import Path

from django.core.exceptions import ValidationError

from chat.attachments.formats import HEAD_BYTES, NOT_KNOWN, text_encoding, text_is_clean
from chat.llm.tokens import TOKEN_CHARS, estimate_tokens

# About half of a 200,000-token context window: the rest is for the conversation and the reply.
MAX_TEXT_TOKENS = 100_000
MAX_TEXT_CHARACTERS = MAX_TEXT_TOKENS * TOKEN_CHARS  # what that is in English text, where it is the most
READ_CHUNK = 1024 * 1024

TOO_LONG = (
    f"This text is longer than the model can read beside a conversation: a text document can be at most "
    f"{MAX_TEXT_TOKENS:,} tokens, about {MAX_TEXT_CHARACTERS:,} characters of English. Attach a part of it."
)


def text_tokens(text: str) -> int:
    return estimate_tokens(json.dumps(text)[1:-1])


def text_read(path: Path, *, empty: str) -> str:
    """The whole text of the file, or ValidationError: not text after all, too long, or `empty` (a sentence)
    when it holds nothing but whitespace."""
    with path.open("rb") as handle:
        encoding = text_encoding(handle.read(HEAD_BYTES))
        if encoding is None:
            raise ValidationError(NOT_KNOWN)
        handle.seek(0)
        decoder = codecs.getincrementaldecoder(encoding)()
        parts, measured = [], 0
        try:
            while True:
                chunk = handle.read(READ_CHUNK)
                part = decoder.decode(chunk, final=not chunk)
                if not text_is_clean(part, encoding):
                    raise ValidationError(NOT_KNOWN)
                measured += text_tokens(part)
                if measured > MAX_TEXT_TOKENS:
                    raise ValidationError(TOO_LONG)
                parts.append(part)
                if not chunk:
                    break
        except UnicodeDecodeError:
            raise ValidationError(NOT_KNOWN) from None
    text = "".join(parts)
    if not text.strip():
        raise ValidationError(empty)
    return text
