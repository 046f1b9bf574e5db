# syntax=docker/dockerfile:1
# circleci-events: `web` by default, `worker` by argument (docker run IMAGE worker).
#
#   docker build -t circleci-events .
#
# The Python minor version is requirements.lock's (pip-compile resolved it for that Python;
# tests/deploy/test_dockerfile.py checks they agree). The two install commands below are the ones
# tests/e2e/test_wheel.py runs in a fresh venv, so what the image gets is what the test ran.
ARG PYTHON_IMAGE=python:3.11-slim-trixie

# -- build: the wheel, and a venv holding the locked dependencies and the wheel ------------------
FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PATH=/opt/circleci-events/bin:$PATH
WORKDIR /build
# Python 3.11's venv brings an old setuptools of its own: nothing at run time needs it, the lock
# does not pin it, and the wheel below is built in pip's isolated build environment.
RUN python -m venv /opt/circleci-events \
    && python -m pip uninstall --quiet --yes setuptools
# Dependencies first: this layer is rebuilt only when the lock changes. Wheels only: no
# compiler is ever needed, and a platform without a wheel fails here instead of compiling.
COPY requirements.lock ./
RUN python -m pip install --no-cache-dir --only-binary=:all: --require-hashes -r requirements.lock
COPY pyproject.toml README.md ./
COPY config config
COPY service service
COPY workers workers
RUN python -m pip wheel --no-cache-dir --no-deps --wheel-dir dist . \
    && python -m pip install --no-cache-dir --no-deps dist/*.whl

# -- runtime: the venv on a clean base, a user without a home, nothing written outside /tmp -------
FROM ${PYTHON_IMAGE} AS runtime
# PYTHONDONTWRITEBYTECODE: pip compiled every module at install time; at run time Python must not
# try to write __pycache__ into a read-only root filesystem.
ENV PATH=/opt/circleci-events/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOST=0.0.0.0 \
    PORT=8000 \
    WORKER_HTTP_PORT=8001 \
    LOG_FORMAT=json
RUN groupadd --system --gid 10001 circleci-events \
    && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
       --shell /usr/sbin/nologin circleci-events
COPY --from=build /opt/circleci-events /opt/circleci-events
COPY deploy/docker/healthcheck.py /opt/circleci-events/healthcheck.py
WORKDIR /opt/circleci-events
USER 10001:10001
EXPOSE 8000 8001
# web answers GET /healthz on $PORT, a worker on $WORKER_HTTP_PORT: whichever this container runs.
HEALTHCHECK --interval=15s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "/opt/circleci-events/healthcheck.py"]
ENTRYPOINT ["circleci-events"]
CMD ["web"]
