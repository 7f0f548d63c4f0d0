"""The app's repair endpoint for the end-to-end tests: FastAPI + the instrumentation's helper.

    python tests/apps/repair_app.py --port P --secret whsec_... --record requests.jsonl

It serves ``POST /fulfillwatch/repair`` with ``repair_router``; every request it receives
(headers and raw body) is appended to ``--record`` before the helper verifies it, so that the
test can check the signature independently. The repair itself succeeds (the "tenant row" now
exists); its result span goes to ``OTEL_EXPORTER_OTLP_ENDPOINT`` through ``init()``.
"""

from __future__ import annotations

import argparse
import base64
import json
from pathlib import Path

import uvicorn
from fastapi import FastAPI, Request

import fulfillwatch.instrumentation as fw
from fulfillwatch.instrumentation.repair import RepairRequest, repair_router


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--secret", action="append", required=True)
    parser.add_argument("--record", type=Path, required=True)
    args = parser.parse_args()
    fw.init(tracked_event_types="*")
    app = FastAPI()

    @app.middleware("http")
    async def record(request: Request, call_next):  # type: ignore[no-untyped-def]
        body = await request.body()
        with args.record.open("a") as out:
            out.write(json.dumps({"headers": dict(request.headers), "body": base64.b64encode(body).decode()}) + "\n")
        return await call_next(request)

    def repair(request: RepairRequest) -> None:
        pass  # the tenant row exists now: granting again succeeds

    app.include_router(repair_router(repair, secrets=args.secret))
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
