"""WebSocket protocol conformance: the Autobahn|Testsuite cases 1-10 (run by kosoku,
which drives Autobahn's own case files) against `sockpit serve`'s echo endpoint.

Every case must end as `expected.json` says, and every outcome there is OK, NON-STRICT
or INFORMATIONAL with a clean close. `--update` rewrites the file from this run
(after a deliberate change; review the diff).

    python run.py SOCKPIT_BINARY [--update]
"""

import asyncio
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

from kosoku import FailureError, run_fuzzingclient

HERE = Path(__file__).parent
EXPECTED = HERE / "expected.json"
# Autobahn's sections 1-10 (8 does not exist); 12-13 are permessage-deflate, which
# Sockpit does not offer.
CASES = ["1.*", "2.*", "3.*", "4.*", "5.*", "6.*", "7.*", "9.*", "10.*"]
GOOD = {"OK", "NON-STRICT", "INFORMATIONAL"}
GOOD_CLOSE = {"OK", "INFORMATIONAL"}
# Section 9 sends messages up to 16 MiB: the echo endpoint must take them.
CONFIG = """
[server]
max_message_bytes = 20971520
send_queue = 1024

[[endpoint]]
path = "/ws/echo/"
auth = "none"
on_message = "echo"
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def run_cases(binary: str) -> dict:
    with tempfile.TemporaryDirectory() as data:
        config = Path(data) / "sockpit.toml"
        config.write_text(CONFIG)
        port = free_port()
        env = dict(os.environ, SOCKPIT_DATA_DIR=data, SOCKPIT_LOG="warn")
        for k in ("SOCKPIT_PORT", "SOCKPIT_BIND"):
            env.pop(k, None)
        server = subprocess.Popen(
            [binary, "--config", str(config), "serve", "--port", str(port)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        try:
            first = server.stdout.readline()
            if "listening" not in first:
                raise SystemExit(f"sockpit serve did not start: {first!r}")
            url = f"ws://127.0.0.1:{port}/ws/echo/"
            try:
                results = await run_fuzzingclient(url, CASES, concurrency=4)
            except FailureError as failure:
                results = failure.results
        finally:
            server.terminate()
            server.wait(timeout=20)
    return {r.case_id: [r.behavior.value, r.behavior_close.value] for r in results}


def case_key(case_id: str):
    return [int(p) for p in re.findall(r"\d+", case_id)]


def main() -> int:
    binary = sys.argv[1]
    got = asyncio.run(run_cases(binary))
    if "--update" in sys.argv:
        lines = [f"  {json.dumps(k)}: {json.dumps(got[k])}" for k in sorted(got, key=case_key)]
        EXPECTED.write_text("{\n" + ",\n".join(lines) + "\n}\n")
    want = json.loads(EXPECTED.read_text())
    failed = []
    for case in sorted(set(want) | set(got), key=case_key):
        behavior, close = got.get(case, ["MISSING", "MISSING"])
        if [behavior, close] != want.get(case):
            failed.append(f"{case}: {behavior}/{close}, expected {want.get(case)}")
        elif behavior not in GOOD or close not in GOOD_CLOSE:
            failed.append(f"{case}: {behavior}/{close} is not acceptable")
    for line in failed:
        print("  FAIL", line)
    print(f"conformance: {len(got) - len(failed)} passed, {len(failed)} failed")
    return 1 if failed or not got else 0


if __name__ == "__main__":
    sys.exit(main())
