#!/usr/bin/env python3
"""The disk's own limit for durable file stores: a plain write+fsync+rename loop.

Usage: fsync_loop.py [--dirsync] DEST_DIR SRC_DIR [SRC_DIR ...]

One thread per SRC_DIR. Each thread takes the regular files of its SRC_DIR
(sorted by name) and, for each file:

  1. reads the whole file into memory (the script warms the page cache first,
     so this costs no disk I/O),
  2. creates DEST_DIR/<thread>-<n>.part (O_WRONLY|O_CREAT|O_EXCL) and writes
     the bytes to it with one write() loop,
  3. fsync()s that file,
  4. renames it to DEST_DIR/<thread>-<n>.dcm,
  5. closes it.

By default it does NOT fsync DEST_DIR after the rename, keeps no index and
parses nothing: it is the floor under what any durable store must do per
instance. With --dirsync each thread also opens DEST_DIR and fsync()s it
after every rename (6.), so that the final name itself is durable, as
rtnode's rule requires; no batching across threads.
All threads write into the same DEST_DIR (one filesystem).

Prints one line: "<files> files <bytes> bytes <seconds> s <files/s> files/s",
timed from the moment all threads are released to the moment the last one
has finished (thread start-up and directory listing are not timed).
"""

import os
import sys
import threading
import time


def worker(thread_no, files, dest, dirsync, barrier, errors):
    try:
        barrier.wait()
        for n, src in enumerate(files):
            with open(src, "rb") as f:
                data = f.read()
            tmp = os.path.join(dest, f"{thread_no}-{n}.part")
            final = os.path.join(dest, f"{thread_no}-{n}.dcm")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            try:
                view = memoryview(data)
                while view:
                    written = os.write(fd, view)
                    view = view[written:]
                os.fsync(fd)
                os.rename(tmp, final)
            finally:
                os.close(fd)
            if dirsync:
                dfd = os.open(dest, os.O_RDONLY | os.O_DIRECTORY)
                try:
                    os.fsync(dfd)
                finally:
                    os.close(dfd)
    except BaseException as e:  # report, never hang the barrier
        errors.append(f"thread {thread_no}: {e!r}")
        barrier.abort()


def main():
    args = sys.argv[1:]
    dirsync = bool(args) and args[0] == "--dirsync"
    if dirsync:
        args = args[1:]
    if len(args) < 2:
        sys.exit(__doc__)
    dest = args[0]
    os.makedirs(dest, exist_ok=True)
    lists = []
    for d in args[1:]:
        names = sorted(os.listdir(d))
        lists.append([os.path.join(d, n) for n in names
                      if os.path.isfile(os.path.join(d, n))])
    errors = []
    barrier = threading.Barrier(len(lists) + 1)
    threads = [threading.Thread(target=worker, args=(i, fl, dest, dirsync, barrier, errors))
               for i, fl in enumerate(lists)]
    for t in threads:
        t.start()
    barrier.wait()
    t0 = time.perf_counter()
    for t in threads:
        t.join()
    dt = time.perf_counter() - t0
    if errors:
        sys.exit("fsync_loop: " + "; ".join(errors))
    nfiles = sum(len(fl) for fl in lists)
    nbytes = sum(os.path.getsize(p) for fl in lists for p in fl)
    print(f"{nfiles} files {nbytes} bytes {dt:.3f} s {nfiles / dt:.1f} files/s")


if __name__ == "__main__":
    main()
