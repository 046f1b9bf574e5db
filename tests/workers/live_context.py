"""A worker context installed over real parts: the session's Redis, a routes file and the CircleCI simulator.

context, redis = live_context(stack, redis_url, tmp_path, routes, api_url, SINK=sink_url)
"""

from __future__ import annotations

from contextlib import ExitStack
from pathlib import Path

from redis import Redis

from config.settings import Settings
from workers.context import WorkerContext, installed


def live_context(
    stack: ExitStack, redis_url: str, tmp_path: Path, routes: str, api_url: str, **environ: str
) -> tuple[WorkerContext, Redis]:
    """Build, install (until `stack` closes) and return the context and its Redis; `environ`
    fills the routes file's ${VAR}."""
    routes_file = tmp_path / "routes.yaml"
    routes_file.write_text(routes)
    env = {"REDIS_URL": redis_url, "ROUTES_FILE": str(routes_file), "CIRCLE_TOKEN": "sim-token",
           "CIRCLECI_API_URL": f"{api_url}/api/v2", **environ}  # fmt: skip
    redis = Redis.from_url(redis_url)
    stack.callback(redis.close)
    context = WorkerContext.build(Settings.from_environ(env), redis=redis)
    stack.callback(context.close)
    stack.enter_context(installed(context))
    return context, redis
