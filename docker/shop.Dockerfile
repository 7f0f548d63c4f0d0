# The example shop (examples/stripe_shop): its webhook app, its Celery worker, its traffic.
#   docker build -f docker/shop.Dockerfile -t fulfillwatch-example-shop .
FROM python:3.11.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /app
COPY instrumentation/ instrumentation/
COPY examples/ examples/
RUN pip install -r examples/stripe_shop/requirements.txt \
    && useradd --uid 10001 --create-home --shell /usr/sbin/nologin shop \
    && mkdir -p /var/lib/shop && chown shop /var/lib/shop

USER 10001
ENV SHOP_DATA_DIR=/var/lib/shop
EXPOSE 8100
CMD ["uvicorn", "examples.stripe_shop.webhook:app", "--host", "0.0.0.0", "--port", "8100"]
