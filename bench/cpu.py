#!/usr/bin/env python3
"""Runs a command and prints the CPU seconds (user + system) it and its children used, and the
wall seconds, as `cpu=<s> wall=<s>` on stderr's last line. Its own output passes through."""
import resource
import subprocess
import sys
import time

start = time.monotonic()
status = subprocess.call(sys.argv[1:])
wall = time.monotonic() - start
usage = resource.getrusage(resource.RUSAGE_CHILDREN)
print(f"cpu={usage.ru_utime + usage.ru_stime:.3f} wall={wall:.3f}", file=sys.stderr)
sys.exit(status)
