"""Request bytes per turn of a conversation that sent a 2 MB PDF and a photo in its first turn: attachments
inline (base64, every turn) against attachments by file_id (the Files API, filesapi/services.py).

    .venv/bin/python bench/bench_files_api.py [--turns 1,2,5,10,20]

No database and no network: the request of turn N is built by the product's own code (`content_block`,
`request_assemble`, with its cache breakpoints) from a history of N - 1 exchanges, and sent through the real
SDK to the offline model, which validates it and reads the files; a counting transport records the bytes of
each request body as it goes on the wire. The file_id row uploads both files once (the offline Files API) and
sends the same request with `request_files_reference`'s swap of each attachment's source.
"""

import argparse
import asyncio
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

REPLY = (
    "A short answer about the report, a few sentences long, as a reply of the offline model would be. " * 8
)


def pdf_of_two_megabytes() -> bytes:
    """Twenty pages of text and a 2 MB embedded file (as a scan or a chart would weigh): a PDF that is heavy in
    bytes and light in tokens, like most 2 MB PDFs."""
    import io

    from attachment_samples import pdf_bytes
    from pypdf import PdfReader, PdfWriter

    writer = PdfWriter(
        clone_from=PdfReader(io.BytesIO(pdf_bytes([f"Page {n}\nQuarterly figures" for n in range(20)])))
    )
    writer.add_attachment("scan.bin", os.urandom(2 * 1024 * 1024 - 30_000))
    buffer = io.BytesIO()
    writer.write(buffer)
    return buffer.getvalue()


def counting_transport():
    """The offline transport, recording the size of every /v1/messages request body in `sizes`."""
    import httpx2

    from chat.llm.offline import offline_transport

    class Counting(httpx2.AsyncBaseTransport):
        def __init__(self):
            self.inner, self.sizes = offline_transport(), []

        async def handle_async_request(self, request):
            if request.url.path == "/v1/messages":
                self.sizes.append(len(request.content))
            return await self.inner.handle_async_request(request)

    return Counting()


async def measure(turns: list[int]) -> list[tuple[int, int, int]]:
    import anthropic
    import django
    import httpx2

    django.setup()
    from django.conf import settings

    from chat.attachments.blocks import content_block
    from chat.llm.catalog import MODELS_BY_ID
    from chat.llm.request import Exchange, RequestParts, request_assemble
    from chat.models import Attachment
    from filesapi.services import request_files_swapped

    directory = Path(tempfile.mkdtemp(prefix="bench-files-"))
    settings.MEDIA_ROOT, settings.OFFLINE_MODEL_FILES_DIR = str(directory), str(directory / "offline-files")
    from attachment_samples import photo_bytes

    files = {"report.pdf": (pdf_of_two_megabytes(), "application/pdf", Attachment.Kind.PDF)}
    files["photo.jpg"] = (photo_bytes((1568, 1176)), "image/jpeg", Attachment.Kind.IMAGE)
    attachments = []
    for pk, (name, (data, media_type, kind)) in enumerate(files.items(), start=1):
        (directory / name).write_bytes(data)
        attachments.append(
            Attachment(
                pk=pk, owner_id=1, kind=kind, name=name, media_type=media_type, file=name, size=len(data)
            )
        )

    counter = counting_transport()
    client = anthropic.AsyncAnthropic(
        api_key="offline",
        base_url="http://offline-model.invalid",
        http_client=httpx2.AsyncClient(transport=counter),
        max_retries=0,
    )
    file_ids = {}
    for attachment, (data, media_type, _) in zip(attachments, files.values()):
        uploaded = await client.files.upload(file=(attachment.name, data, media_type))
        file_ids[attachment.name] = uploaded.id
    model = MODELS_BY_ID[settings.CHAT_DEFAULT_MODEL]
    rows = []
    for turn in turns:
        first = [content_block(attachment) for attachment in attachments]
        exchanges = [
            Exchange(
                turns=[
                    {
                        "role": "user",
                        "content": [*(first if index == 0 else []), {"type": "text", "text": f"Q{index}"}],
                    },
                    {"role": "assistant", "content": [{"type": "text", "text": REPLY}]},
                ],
                message_count=2,
                tokens=0,
            )
            for index in range(turn - 1)
        ]
        last = [*(first if turn == 1 else []), {"type": "text", "text": f"Q{turn - 1}"}]
        exchanges.append(Exchange(turns=[{"role": "user", "content": last}], message_count=1, tokens=0))
        request = request_assemble(
            RequestParts(system="", thinking="off", tools=[], exchanges=exchanges), model=model
        )
        await client.messages.create(**request)
        by_name = {
            id(block): file_ids[attachment.name]
            for block, attachment in zip(request["messages"][0]["content"], attachments)
        }
        referenced = request_files_swapped(request, by_name)
        await client.messages.create(**referenced)
        rows.append((turn, counter.sizes[-2], counter.sizes[-1]))
    upload_bytes = sum(len(data) for data, _, _ in files.values())
    return rows, upload_bytes


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--turns", default="1,2,5,10,20")
    turns = [int(turn) for turn in parser.parse_args().turns.split(",")]
    rows, upload_bytes = asyncio.run(measure(turns))
    print(f"Uploaded once (file_id only): {upload_bytes:,} bytes of files, multipart")
    print("| turn | inline (before) | file_id (after) | saved |")
    print("| --- | --- | --- | --- |")
    for turn, inline, referenced in rows:
        print(
            f"| {turn} | {inline:,} B | {referenced:,} B | {inline - referenced:,} B ({1 - referenced / inline:.1%}) |"
        )
    total_inline = sum(inline for _, inline, _ in rows)
    total_referenced = sum(referenced for _, _, referenced in rows) + upload_bytes
    print(
        f"Sum over the turns listed, the uploads included: {total_inline:,} B inline, {total_referenced:,} B by file_id"
    )


if __name__ == "__main__":
    main()
