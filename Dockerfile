# tokengate: the service, its policies and its migrations, run as an unprivileged user.
# Build: docker build -t tokengate .   Run: see deploy/compose.yaml (PostgreSQL) or README.md.
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

RUN groupadd --system --gid 10001 tokengate \
    && useradd --system --uid 10001 --gid tokengate --home-dir /srv/tokengate tokengate

WORKDIR /srv/tokengate
COPY pyproject.toml README.md ./
COPY service ./service
COPY policies ./policies
RUN pip install --no-compile . && mkdir -p /var/lib/tokengate && chown 10001:10001 /var/lib/tokengate

# Settings come from the environment (TOKENGATE_*); see README.md. The secret belongs in TOKENGATE_SECURITY__SECRET
# (or a mounted file named by TOKENGATE_SECURITY__SECRET_FILE), never in the image: the variable below is a path.
# hadolint ignore=DL3064
ENV TOKENGATE_CONFIG=/srv/tokengate/absent.toml \
    TOKENGATE_POLICY_DIR=/srv/tokengate/policies \
    TOKENGATE_DATABASE__URL=sqlite+aiosqlite:////var/lib/tokengate/tokengate.db \
    TOKENGATE_SECURITY__SECRET_FILE=/var/lib/tokengate/secret \
    TOKENGATE_SERVER__HOST=0.0.0.0 \
    TOKENGATE_SERVER__PORT=8000 \
    TOKENGATE_LOG__FORMAT=json

USER 10001:10001
EXPOSE 8000
VOLUME ["/var/lib/tokengate"]
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/ready', timeout=2).status != 200)"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["tokengate"]
CMD ["run"]
