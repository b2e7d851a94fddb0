"""Run a command, pass its output through, and measure its longest silence: the most seconds that
went by without a byte of output (a tqdm refresh counts). The paper smoke's progress audit:

    python .ci/silence.py --log .benchlab/silence.tsv -- pytest bench/test_sublora.py ...

Appends "<seconds>\t<command>\t<the output that ended the silence>" to --log and exits with the
command's own exit code.
"""

import argparse
import os
import subprocess
import sys
import time


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--log", required=True, help="TSV file the longest silence is appended to")
    ap.add_argument("command", nargs=argparse.REMAINDER)
    args = ap.parse_args()
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    last = start = time.monotonic()
    longest, ended_by = 0.0, ""
    while chunk := os.read(proc.stdout.fileno(), 65536):
        now = time.monotonic()
        if now - last > longest:
            longest = now - last
            ended_by = chunk.decode("utf-8", "replace").replace("\r", "\n").strip()[:120]
        last = now
        sys.stdout.buffer.write(chunk)
        sys.stdout.flush()
    rc = proc.wait()
    ended_by = " ".join(ended_by.split())
    with open(args.log, "a", encoding="utf-8") as f:
        f.write(f"{longest:.1f}\t{' '.join(command)[:200]}\t{ended_by}\n")
    print(f"silence: longest {longest:.1f} s of {time.monotonic() - start:.0f} s without output "
          f"(ended by: {ended_by!r})", file=sys.stderr)
    return rc


if __name__ == "__main__":
    sys.exit(main())
