# Two images from one file. The default (last) stage, `production`, serves the API (default
# command) and the worker (`python worker.py`); docker-compose.yml picks the process with
# `command`. It holds no development code: no sandbox, bench or tests. The `sandbox` stage is
# the amoCRM sandbox alone, for trying the stack without an account (compose profile).
FROM python:3.11-slim AS base

# Unbuffered output so logs reach `docker compose logs` at once. API_HOST: the settings
# default (127.0.0.1) is unreachable from outside a container.
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore \
    API_HOST=0.0.0.0

RUN groupadd --system --gid 10001 leadrelay \
    && useradd --system --uid 10001 --gid leadrelay --home-dir /app --shell /usr/sbin/nologin leadrelay

WORKDIR /app

# Dependencies first, from pyproject.toml alone, so a code change does not reinstall them.
COPY pyproject.toml ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" > /tmp/requirements.txt \
    && pip install -r /tmp/requirements.txt \
    && rm /tmp/requirements.txt

# The amoCRM sandbox: its own package and the runtime dependencies above, nothing else.
FROM base AS sandbox
COPY sandbox ./sandbox
USER 10001:10001
EXPOSE 8081
CMD ["python", "-m", "sandbox", "--host", "0.0.0.0"]

# The source without development code, so that no layer of the production image has it.
FROM base AS source
COPY . /src
RUN rm -rf /src/sandbox /src/bench /src/tests

FROM base AS production
# The code stays owned by root, so the app cannot modify itself; only .data is writable
# (a volume in docker-compose.yml). worker.py must sit in the working directory for
# `python worker.py`. No dev extras: tests and linters have no place in production.
COPY --from=source /src ./
RUN pip install --no-deps . \
    && rm -rf build *.egg-info \
    && mkdir -p .data \
    && chown leadrelay:leadrelay .data

# Numeric, so that runtimes which check runAsNonRoot can verify it without /etc/passwd.
USER 10001:10001

EXPOSE 8000
CMD ["python", "-m", "api"]
