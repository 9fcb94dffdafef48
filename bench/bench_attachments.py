"""Attachment processing, on the product path: what one upload costs the server process and its decode child.

    .venv/bin/python bench/bench_attachments.py [--repeat 3] [--only NAME ...]

Inputs are generated once with Pillow, pillow-heif and pypdf (the builders of tests/attachment_samples.py): a 12 MP
JPEG, a 49 MP PNG scan, a 48 MP phone photo with a gain map (MPO), a 108 MP JPEG, a 16-bit grayscale PNG, a 12 MP
HEIC photo and a 300-page text PDF.

How memory is measured (and why the earlier table was wrong): each case runs in a fresh spawned process. Right
before the work, the process resets its own peak (`echo 5 > /proc/self/clear_refs` resets VmHWM) and reads its
VmRSS; after it, "server peak" is VmHWM minus that VmRSS: what the web process itself needed on top of what it
held. The earlier table took `ru_maxrss` above a baseline read after imports and reading the input; `ru_maxrss`
is a lifetime peak that the imports and the read had already pushed up by a varying amount, so it hid most of the
work's own peak ("+6 MB" that three fresh runs read as +35 to +40 MB).

"child peak" is the decode child's own peak RSS. Not `RUSAGE_CHILDREN` of this process: a child's
`ru_maxrss` includes the memory it shared with its parent between fork and exec (the kernel folds the old
address space's high-water mark in at exec), so from a Django process every child read ~112 MB, even one that
decoded a 1 x 1 PNG. Each decode command is therefore started through a bare launcher (`python -I -c`, ~9 MB)
that waits for it and records its `RUSAGE_CHILDREN` peak; the `idle` row (a 1 x 1 PNG) is the floor: Python,
Pillow and pillow-heif loaded. "CPU" is the child's user + system time (launcher included, ~0.02 s), the budget
ATTACHMENT_DECODE_CPU_SECONDS limits.
"""

import argparse
import os
import resource
import statistics
import sys
import tempfile
import time
from multiprocessing import get_context
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]


def inputs(directory: Path) -> dict[str, Path]:
    import io

    import pillow_heif
    from attachment_samples import pdf_bytes, photo_bytes
    from PIL import Image

    pillow_heif.register_heif_opener()

    def photo(size):
        return Image.open(io.BytesIO(photo_bytes(size)))

    files = {}

    def made(name, write):
        files[name.split(".")[0]] = path = directory / name
        write(path)

    made("idle.png", lambda path: Image.new("RGB", (1, 1)).save(path))
    made("jpeg-12mp.jpg", lambda path: path.write_bytes(photo_bytes((4000, 3000))))

    def scan(path):
        size = (7000, 7000)
        gradient = Image.linear_gradient("L").resize(size)
        noise = Image.effect_noise((875, 875), 30).resize(size, Image.Resampling.BILINEAR)
        Image.merge("RGB", (gradient, noise, gradient.transpose(Image.Transpose.FLIP_LEFT_RIGHT))).save(path)

    made("png-49mp.png", scan)
    made("gainmap-48mp.jpg", lambda path: photo((8000, 6000)).save(
        path, "MPO", save_all=True, append_images=[photo((2000, 1500)).convert("L").convert("RGB")], quality=90
    ))
    made("jpeg-108mp.jpg", lambda path: photo((12000, 9000)).save(path, "JPEG", quality=90))
    made("png-16bit.png", lambda path: (
        Image.linear_gradient("L").resize((4000, 3000)).convert("I").point(lambda v: v * 257).convert("I;16")
    ).save(path))
    made("heic-12mp.heic", lambda path: photo((4032, 3024)).save(path, quality=80))
    line = "The quick brown fox jumps over the lazy dog while the benchmark counts pages"
    pages = ["\n".join(f"Page {page} line {n}: {line}" for n in range(40)) for page in range(1, 301)]
    made("pdf-300p.pdf", lambda path: path.write_bytes(pdf_bytes(pages)))
    return files


# Runs the decode command given after the peaks file, records its peak RSS there, and exits as it did.
LAUNCHER = """
import os, resource, subprocess, sys
code = subprocess.run(sys.argv[2:]).returncode
with open(sys.argv[1], "a") as peaks:
    peaks.write(f"{resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}\\n")
if code < 0:
    os.kill(os.getpid(), -code)
sys.exit(code)
"""


def launched(run, peaks: Path):
    """subprocess.run for chat/attachments/isolation.py, with each command started through LAUNCHER."""

    def run_through_launcher(command, **options):
        return run([sys.executable, "-I", "-c", LAUNCHER, str(peaks), *command], **options)

    return run_through_launcher


def status(key: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key):
            return int(line.split()[1]) / 1024
    raise KeyError(key)


def run_case(path: str, repeat: int, results) -> None:
    """In the child: the product's reading of one file, `repeat` times; its peaks and times."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()
    from django.core.exceptions import ValidationError

    from chat.attachments import isolation
    from chat.attachments.images import image_read
    from chat.attachments.pdfs import pdf_read

    source = Path(path)
    peaks = Path(tempfile.mkdtemp()) / "peaks"
    isolation.subprocess.run = launched(isolation.subprocess.run, peaks)
    walls, cpus, outcome = [], [], ""
    Path("/proc/self/clear_refs").write_text("5")
    start_rss = status("VmRSS")
    for _ in range(repeat):
        child_before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.perf_counter()
        with tempfile.TemporaryDirectory() as output:
            try:
                if source.suffix == ".pdf":
                    read = pdf_read(source, Path(output))
                    sent = "its text, as a text document" if read.as_text else "as a PDF"
                    outcome = f"{len(read.pages)} pages, {sum(map(len, read.pages)):,} characters, sent {sent}"
                else:
                    read = image_read(source, Path(output))
                    image = read.images[0]
                    outcome = f"{image.width} x {image.height} {image.media_type}, {image.path.stat().st_size:,} B"
            except ValidationError as error:
                outcome = "refused: " + error.messages[0]
        walls.append(time.perf_counter() - started)
        child = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpus.append(child.ru_utime + child.ru_stime - child_before.ru_utime - child_before.ru_stime)
    server_peak = status("VmHWM") - start_rss
    child_peak = max(int(line) for line in peaks.read_text().split()) / 1024
    results.put((source.stat().st_size, statistics.median(walls), statistics.median(cpus), server_peak, child_peak,
                 outcome))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--only", nargs="*")
    options = parser.parse_args()
    context = get_context("spawn")
    rows = []
    with tempfile.TemporaryDirectory() as directory:
        files = inputs(Path(directory))
        for name, path in files.items():
            if options.only and name not in options.only:
                continue
            results = context.Queue()
            child = context.Process(target=run_case, args=(str(path), options.repeat, results))
            child.start()
            rows.append((name, *results.get()))
            child.join()
    print(f"Python {sys.version.split()[0]}, {os.cpu_count()} CPUs, median of {options.repeat} runs\n")
    print("| case | input | wall | CPU (child) | server peak | child peak | result |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for name, size, wall, cpu, server_peak, child_peak, outcome in rows:
        print(f"| {name} | {size / 1024 / 1024:.1f} MB | {wall:.2f} s | {cpu:.2f} s | +{server_peak:.0f} MB "
              f"| {child_peak:.0f} MB | {outcome} |")


if __name__ == "__main__":
    main()
