# The pivotwatch image: the worker, the connectors and the exporters, one command each
# (see docker-compose.yml). Build with `docker build -t pivotwatch .`.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /src
COPY pyproject.toml README.md ./
COPY pivotwatch ./pivotwatch
RUN pip install . \
    && useradd --system --uid 10001 --home-dir /var/lib/pivotwatch --create-home pivotwatch

USER pivotwatch
WORKDIR /var/lib/pivotwatch
ENV PIVOTWATCH_WORKER__DATA_DIR=/var/lib/pivotwatch/data

# 9400: the worker's /metrics endpoint in docker-compose.yml; 2802: the Falco HTTP receiver.
EXPOSE 9400 2802
CMD ["pivotwatch", "worker"]
