# The Fulfillwatch dashboard image (talks only to the HTTP API).
#   docker build -f docker/dashboard.Dockerfile -t fulfillwatch-dashboard .
FROM python:3.11.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /app
COPY dashboard/ dashboard/
RUN pip install ./dashboard \
    && useradd --uid 10001 --create-home --shell /usr/sbin/nologin fulfillwatch

USER 10001
ENV FULFILLWATCH_DASHBOARD_HOST=0.0.0.0
EXPOSE 8501
ENTRYPOINT ["fulfillwatch-dashboard"]
