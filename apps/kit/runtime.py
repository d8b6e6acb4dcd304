"""Process-level tuning shared by the services and the gateway."""

from __future__ import annotations

import gc


def settle_heap() -> None:
    """Once start-up is done, take what it allocated (modules, the app, models, compiled
    statements, connection pools) out of the cyclic garbage collector's sight: one full
    collection, then ``gc.freeze()``.

    Those objects live as long as the process; without this every full collection walks them
    all again while requests and messages wait. Objects frozen here are still freed by reference
    counting; only a reference cycle among them would outlive its use, and start-up makes
    none that matter. (The pattern Python's documentation gives for long-running servers.)
    """
    gc.collect()
    gc.freeze()
