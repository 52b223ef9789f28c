"""POST a run's facts as JSON to a URL; run by the daemon as a child process.

A child process, so that a slow or dead endpoint can never hold up the daemon's
loop: the runner's timeout bounds it like any job.  The payload arrives in
$CRONPLUS_PAYLOAD; retries back off 1 s, 2 s, 4 s...
"""

from __future__ import annotations

import os
import sys
import time
import urllib.error
import urllib.request


def post(url: str, payload: bytes, timeout: float, attempts: int) -> int:
    for attempt in range(1, attempts + 1):
        request = urllib.request.Request(
            url,
            data=payload,
            method="POST",
            headers={"Content-Type": "application/json", "User-Agent": "cronplus"},
        )
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                print(f"POST {url}: {response.status}")
                return 0
        except urllib.error.HTTPError as exc:
            print(f"POST {url}: attempt {attempt}: HTTP {exc.code}", file=sys.stderr)
        except (urllib.error.URLError, OSError) as exc:
            print(f"POST {url}: attempt {attempt}: {exc}", file=sys.stderr)
        if attempt < attempts:
            time.sleep(2 ** (attempt - 1))
    return 1


def main() -> int:
    url = sys.argv[1]
    timeout = float(os.environ.get("CRONPLUS_WEBHOOK_TIMEOUT", "10"))
    attempts = 1 + int(os.environ.get("CRONPLUS_WEBHOOK_RETRIES", "2"))
    return post(url, os.environ.get("CRONPLUS_PAYLOAD", "{}").encode(), timeout, attempts)


if __name__ == "__main__":
    sys.exit(main())
