# The Fulfillwatch server image: `fulfillwatch serve | collector | engine | api`.
#   docker build -f docker/fulfillwatch.Dockerfile -t fulfillwatch .
FROM python:3.11.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /app
COPY instrumentation/ instrumentation/
COPY collector_processor/ collector_processor/
COPY incident_engine/ incident_engine/
RUN pip install ./instrumentation ./collector_processor ./incident_engine \
    && useradd --uid 10001 --create-home --shell /usr/sbin/nologin fulfillwatch \
    && mkdir -p /var/lib/fulfillwatch && chown fulfillwatch /var/lib/fulfillwatch

USER 10001
# Listen on every interface inside the container; the embedded store (serve only) lives here.
ENV FULFILLWATCH_HOST=0.0.0.0 FULFILLWATCH_DATA_DIR=/var/lib/fulfillwatch
EXPOSE 4318 8000
ENTRYPOINT ["fulfillwatch"]
CMD ["serve"]
