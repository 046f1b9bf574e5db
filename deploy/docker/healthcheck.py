"""The image's HEALTHCHECK: healthy while this container's process answers GET /healthz with 200.

A container runs one process: `web` listens on $PORT, a `worker` serves its health on
$WORKER_HTTP_PORT (the image sets 8000 and 8001). The first port that answers decides; none
answering is unhealthy. Standard library only: it runs with the image's Python and nothing else.
"""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request

TIMEOUT_SECONDS = 4.0


def check(ports: list[str]) -> tuple[bool, str]:
    for port in ports:
        url = f"http://127.0.0.1:{port}/healthz"
        try:
            with urllib.request.urlopen(url, timeout=TIMEOUT_SECONDS) as answer:
                return answer.status == 200, f"{url}: {answer.status}"
        except urllib.error.HTTPError as exc:
            return False, f"{url}: {exc.code} {exc.read(500).decode(errors='replace')}"
        except OSError:
            continue  # nothing listens there: the other role's port
    return False, f"nothing answers /healthz on 127.0.0.1 port {' or '.join(ports)}"


def main() -> int:
    ports = [p for p in (os.environ.get("PORT", "8000"), os.environ.get("WORKER_HTTP_PORT", "")) if p]
    healthy, said = check(ports)
    print(said)
    return 0 if healthy else 1


if __name__ == "__main__":
    sys.exit(main())
