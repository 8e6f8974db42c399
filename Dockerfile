# One image for the API (default), the worker (`python worker.py`) and the amoCRM sandbox
# (`python -m sandbox`); docker-compose.yml picks the process with `command`.
FROM python:3.11-slim

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

# The code stays owned by root, so the app cannot modify itself; only .data is writable
# (a volume in docker-compose.yml). worker.py must sit in the working directory for
# `python worker.py`. No dev extras: tests and linters have no place in production.
COPY . .
RUN pip install --no-deps . \
    && rm -rf build *.egg-info \
    && mkdir -p .data \
    && chown leadrelay:leadrelay .data

# Numeric, so that runtimes which check runAsNonRoot can verify it without /etc/passwd.
USER 10001:10001

EXPOSE 8000
CMD ["python", "-m", "api"]
