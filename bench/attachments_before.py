"""The "before" row of bench_attachments.py: the same inputs through an older checkout's in-process code.

    git worktree add /tmp/before 5c382be
    .venv/bin/python bench/attachments_before.py /tmp/before

For the code of 5c382be and earlier (`image_process(bytes)` and `pdf_read(bytes)`, decoding in the server
process). Each case runs in a fresh process with Django set up from that tree; "server peak" is VmHWM after the
work minus VmRSS before it, with VmHWM reset (/proc/self/clear_refs) right before; "kept" is VmRSS after minus
before.
"""

import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

CHILD = r'''
import os, sys, time
from pathlib import Path
tree, path = sys.argv[1], sys.argv[2]
sys.path.insert(0, tree); os.chdir(tree)
os.environ["DJANGO_SETTINGS_MODULE"] = "config.settings"
import django; django.setup()
from django.core.exceptions import ValidationError
from chat.attachments.images import image_process
from chat.attachments.pdfs import is_pdf, pdf_read
def status(key):
    return next(int(line.split()[1]) / 1024 for line in Path("/proc/self/status").read_text().splitlines()
                if line.startswith(key))
data = Path(path).read_bytes()
Path("/proc/self/clear_refs").write_text("5")
before = status("VmRSS")
cpu, wall = time.process_time(), time.perf_counter()
try:
    if is_pdf(data):
        outcome = f"{len(pdf_read(data))} pages"
    else:
        image = image_process(data)
        outcome = f"{image.width} x {image.height} {image.media_type}"
except ValidationError as error:
    outcome = "refused: " + error.messages[0]
print(f"| {time.perf_counter() - wall:.2f} s | {time.process_time() - cpu:.2f} s | "
      f"+{status('VmHWM') - before:.0f} MB | +{status('VmRSS') - before:.0f} MB | {outcome} |")
'''


def main() -> None:
    from bench_attachments import inputs

    tree = sys.argv[1]
    print("| case | wall | CPU (server) | server peak | kept | result |")
    print("| --- | --- | --- | --- | --- | --- |")
    with tempfile.TemporaryDirectory() as directory:
        for name, path in inputs(Path(directory)).items():
            command = [sys.executable, "-c", CHILD, tree, str(path)]
            done = subprocess.run(command, capture_output=True, text=True, check=False)
            print(f"| {name} " + (done.stdout.strip().splitlines() or [f"| failed: {done.stderr[-200:]} |"])[-1])


if __name__ == "__main__":
    main()
