"""One untrusted file read under limits: `python -I entry.py TASK MEMORY_BYTES CPU_SECONDS [ARGS...] < file`.

Started by chat/attachments/isolation.py. The limits are set before anything reads the file: the address-space
limit turns a memory blow-up into a MemoryError, and the CPU-time limit makes the kernel stop the process with
SIGXCPU (the parent reports it). Run with -I, this imports nothing from the project or the environment but the
task modules beside it, which import only their parsing library; they answer with one JSON-ready dict.

An OSError that carries an error number is the system's, not the file's (a parser's own OSErrors carry none):
the tasks let it through, and this answers {"os_error": number}, which the parent words (a full disk while
writing the output is storage.DISK_FULL there, not "damaged").
"""

import json
import resource
import sys
from pathlib import Path

TASKS = {"pdf": "pdf_text", "image": "image_pixels", "docx": "docx_text"}
OUT_OF_MEMORY = "This file needs more memory to read than the server allows, so it can't be attached."


def main() -> None:
    task, memory, cpu, *args = sys.argv[1:]
    memory_bytes, cpu_seconds = int(memory), max(1, round(float(cpu)))
    resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
    resource.setrlimit(resource.RLIMIT_CPU, (cpu_seconds, cpu_seconds + 1))
    sys.path.insert(0, str(Path(__file__).parent))
    module = __import__(TASKS[task])
    try:
        result = module.run(sys.stdin.buffer, *args)
    except MemoryError:
        result = {"error": OUT_OF_MEMORY}
    except OSError as error:
        if error.errno is None:
            raise
        result = {"os_error": error.errno}
    sys.stdout.write(json.dumps(result))


if __name__ == "__main__":
    main()
