"""Attachment processing: a 12 MP JPEG to an image content block, a 100-page text PDF to validated text.

    .venv/bin/python bench/bench_attachments.py [--repeat 5]

Each case runs in a fresh spawned process, so the peak memory it reports (ru_maxrss above the process's own
baseline after imports and reading the input) belongs to that case alone.

- `jpeg, draft`: the product path, `image_process` + base64: the decoder scales by 1/2 while decoding.
- `jpeg, naive`: the same code with `Image.draft` disabled: full 12 MP decode, then resize.
- `pdf, worker`: the product path, `pdf_read`: a killable child process (`python -I pdf_worker.py`) with a
  memory limit; its peak is the worker's own (RUSAGE_CHILDREN), Python and pypdf included.
- `pdf, in-process`: pypdf called directly, without isolation: what the worker costs on top.
"""

import argparse
import base64
import io
import multiprocessing
import os
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

CASES = ["jpeg, draft", "jpeg, naive", "pdf, worker", "pdf, in-process"]


def inputs(directory: Path) -> dict[str, Path]:
    from attachment_samples import pdf_bytes, photo_bytes

    line = "The quick brown fox jumps over the lazy dog while the benchmark counts pages"
    pages = ["\n".join(f"Page {page} line {n}: {line}" for n in range(40)) for page in range(1, 101)]
    files = {"jpeg": directory / "photo.jpg", "pdf": directory / "document.pdf"}
    files["jpeg"].write_bytes(photo_bytes((4000, 3000)))
    files["pdf"].write_bytes(pdf_bytes(pages))
    return files


def run_case(case: str, path: str, repeat: int, results) -> None:
    """In the child: time `repeat` runs, and measure the peak memory above the baseline."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()
    from PIL import JpegImagePlugin
    from pypdf import PdfReader

    from chat.attachments.images import image_process
    from chat.attachments.pdfs import pdf_read

    data = Path(path).read_bytes()
    if case == "jpeg, naive":
        JpegImagePlugin.JpegImageFile.draft = lambda image, mode, size: None

    def work():
        if case.startswith("jpeg"):
            image = image_process(data)
            return f"{image.width} x {image.height} {image.media_type}, block {len(base64.b64encode(image.data)):,} B"
        if case == "pdf, worker":
            pages = pdf_read(data)
        else:
            pages = [page.extract_text() for page in PdfReader(io.BytesIO(data)).pages]
        return f"{len(pages)} pages, {sum(map(len, pages)):,} characters"

    baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    timings = []
    for _ in range(repeat):
        started = time.perf_counter()
        outcome = work()
        timings.append(time.perf_counter() - started)
    own_peak = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - baseline) / 1024
    worker_peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    results.put((case, len(data), statistics.median(timings), min(timings), own_peak, worker_peak, outcome))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    repeat = parser.parse_args().repeat
    context = multiprocessing.get_context("spawn")
    rows = []
    with tempfile.TemporaryDirectory() as directory:
        files = inputs(Path(directory))
        for case in CASES:
            results = context.Queue()
            child = context.Process(target=run_case, args=(case, str(files[case.split(",")[0]]), repeat, results))
            child.start()
            rows.append(results.get())
            child.join()
    print(f"Python {sys.version.split()[0]}, {os.cpu_count()} CPUs, median and best of {repeat} runs\n")
    print("| case | input | median | best | peak memory (process) | peak memory (worker) | result |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for case, size, median, best, own_peak, worker_peak, outcome in rows:
        worker = f"{worker_peak:.0f} MB" if case == "pdf, worker" else "-"
        print(
            f"| {case} | {size / 1024 / 1024:.1f} MB | {median * 1000:.0f} ms | {best * 1000:.0f} ms "
            f"| +{own_peak:.0f} MB | {worker} | {outcome} |"
        )


if __name__ == "__main__":
    main()
