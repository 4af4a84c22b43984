"""The helper process behind ``JournalStore.merge_in_helper_process``.

A model server answers hundreds of requests a second and journals each one; merging those
lines into the log in a thread of the server costs it CPU time and, worse, the GIL its event
loop needs. This process does the merging instead, on whatever core is free:

    python -m mlops_nb.log.merger LOCATION WRITER_ID SECONDS

Every SECONDS it merges what WRITER_ID's journals gained (nothing to do: no connection is
opened). Its standard input is a pipe from the writer; end of input (the writer closed the
log, or died however it died) means one last merge and exit. Merges are idempotent under the
log's merge lock, so a recovery by another process at the same time adds nothing twice.
"""

from __future__ import annotations

import select
import signal
import sys
import time

from mlops_nb.log.store import open_store


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print("usage: python -m mlops_nb.log.merger LOCATION WRITER_ID SECONDS", file=sys.stderr)
        return 2
    location, writer, seconds = argv[0], argv[1], float(argv[2])
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the writer; it ends our input
    store = open_store(location, create=False)
    warned = False
    while True:
        readable, _, _ = select.select([sys.stdin], [], [], seconds)
        last = bool(readable) and not sys.stdin.buffer.read1(65536)
        try:
            store.merge_writer_journals(writer)
        except Exception as error:  # noqa: BLE001 - the journal keeps it; the writer's close merges
            if last:
                raise
            if not warned:
                print(f"mlops-nb: merging {writer}'s records failed, retrying: {error}",
                      file=sys.stderr)  # fmt: skip
                warned = True
            time.sleep(seconds)
        if last:
            return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
