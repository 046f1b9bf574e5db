"""The ceiling the receiver is measured against: a Starlette POST that reads the body and answers 202."""

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from service.cli.web_server import tune_gc


async def noop(request: Request) -> JSONResponse:
    await request.body()
    return JSONResponse({"status": "queued"}, status_code=202)


app = Starlette(routes=[Route("/webhooks/circleci", noop, methods=["POST"])])
tune_gc()  # the same process settings as `circleci-events web`
