"""Running benchmark steps in fresh processes (a chDB path belongs to one process)."""

from __future__ import annotations

import queue
from typing import Any


def in_process(context: Any, target: Any, *args: Any, timeout: float = 7200) -> Any:
    """Run ``target(*args, results_queue)`` in a new process and return what it put on the
    queue; fail loudly if the process dies first."""
    results = context.Queue()
    process = context.Process(target=target, args=(*args, results))
    process.start()
    waited = 0.0
    while True:
        try:
            value = results.get(timeout=1)
            break
        except queue.Empty:
            waited += 1
            if not process.is_alive():
                raise RuntimeError(f"{target.__name__} exited with {process.exitcode} before reporting") from None
            if waited > timeout:
                process.kill()
                raise TimeoutError(f"{target.__name__} took more than {timeout} s") from None
    process.join()
    return value
