"""The floor of webhook -> chat on this machine: the same path with no product code on it.

    python -m bench.floor receiver --port P --redis URL
    python -m bench.floor consumer --redis URL --api URL --token T --sink URL

The issue's floor (issue 26, item 1): the same fake API at the same latency, the same sink, one
Redis hop and a no-op receiver, and nothing of the product between them. `receiver` is a
Starlette app under uvicorn (uvloop, httptools, as `circleci-events web` runs) that reads the
body, LPUSHes it to its Redis and answers 202: no signature, no validation, no dedupe.
`consumer` BRPOPs it and makes the enrichment's critical path, one call after another, with a
plain httpx client: the workflow's job page, the first failed job's v1.1 job, its failing
step's output, and then POSTs one small message to the sink at FLOOR_PATH. The simulator, the
sink and the CPU pinning are bench.e2e's; so what the product adds is the difference.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

import httpx
import orjson
import redis

QUEUE = "floor:events"
FLOOR_PATH = "/slack/floor"
V1_VCS = {"gh": "github", "github": "github", "bb": "bitbucket", "bitbucket": "bitbucket", "circleci": "circleci"}


def receiver_app(redis_url: str) -> Any:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    client = redis.Redis.from_url(redis_url)

    async def receive(request: Request) -> Response:
        client.lpush(QUEUE, await request.body())
        return Response(b'{"status":"queued"}', status_code=202, media_type="application/json")

    return Starlette(routes=[Route("/webhooks/circleci", receive, methods=["POST"])])


def serve(port: int, redis_url: str) -> None:
    import uvicorn

    from service.cli.web_server import tune_gc

    app = receiver_app(redis_url)
    tune_gc()
    uvicorn.run(app, host="127.0.0.1", port=port, loop="uvloop", http="httptools", access_log=False,
                log_level="warning")  # fmt: skip


def critical_path(http: httpx.Client, api: str, token: str, payload: dict[str, Any]) -> str:
    """The three API calls in sequence; the failing step's output (its last line)."""
    headers = {"Circle-Token": token}
    jobs = http.get(f"{api}/workflow/{payload['workflow']['id']}/job", headers=headers).json()["items"]
    failed = next(j for j in jobs if j["status"] == "failed")
    vcs, org, repo = payload["project"]["slug"].split("/")
    v1 = api.removesuffix("/v2") + "/v1.1"
    job = http.get(f"{v1}/project/{V1_VCS[vcs]}/{org}/{repo}/{failed['job_number']}", headers=headers).json()
    url = next(a["output_url"] for s in job["steps"] for a in s["actions"] if a.get("output_url"))
    output = http.get(url, headers={"Range": "bytes=-2000"}).text
    return output.strip().splitlines()[-1] if output.strip() else ""


def consume(redis_url: str, api: str, token: str, sink: str) -> None:
    client = redis.Redis.from_url(redis_url, socket_timeout=10)
    http = httpx.Client(timeout=10, trust_env=False)
    while True:
        taken = client.brpop([QUEUE], timeout=1)  # within the socket's timeout, however long the idle
        if taken is None:
            continue
        payload = orjson.loads(taken[1])  # type: ignore[index]
        tail = critical_path(http, api, token, payload)
        message = {"text": f"{payload['workflow']['name']} {payload['workflow']['status']}: {tail[:200]}"}
        http.post(f"{sink}{FLOOR_PATH}", json=message)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.floor", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="part", required=True)
    rec = sub.add_parser("receiver")
    rec.add_argument("--port", type=int, required=True)
    rec.add_argument("--redis", required=True)
    con = sub.add_parser("consumer")
    for name in ("--redis", "--api", "--token", "--sink"):
        con.add_argument(name, required=True)
    args = parser.parse_args(argv)
    if args.part == "receiver":
        serve(args.port, args.redis)
    else:
        consume(args.redis, args.api, args.token, args.sink)


if __name__ == "__main__":
    sys.exit(main())
