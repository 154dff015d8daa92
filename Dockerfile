# One image for every lastmile role and the dashboard; the command picks the role.
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    LASTMILE_DATA_DIR=/var/lib/lastmile

WORKDIR /app
COPY pyproject.toml README.md ./
COPY streams ./streams
COPY schemas ./schemas
COPY monitors ./monitors
COPY dashboard ./dashboard
RUN pip install --no-cache-dir . \
    && useradd --system --create-home lastmile \
    && mkdir -p /var/lib/lastmile && chown lastmile /var/lib/lastmile

USER lastmile
ENTRYPOINT ["lastmile"]
CMD ["--help"]
