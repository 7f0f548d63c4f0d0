"""A small, realistic Stripe shop: a FastAPI webhook endpoint, Celery tasks, a SQLite database.

Used by the Celery failure-catalog tests, the demo and the documentation (see README.md).
"""
