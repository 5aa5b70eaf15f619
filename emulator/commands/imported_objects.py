"""The twin's imported modules set aside from the garbage collector, once per process.

Importing the twin (moto, botocore, the ASL engine, the handlers' libraries) leaves about 460k objects that live
as long as the process. CPython's collector scans every one of them at each full collection, and a run makes
several: measured on this machine, the twin's start took 2.6-2.8 s of CPU with them set aside (`gc.freeze`)
against 3.1-3.6 s without. Only the first call freezes: in a process that runs twin after twin (a test session),
what a later call would freeze includes what earlier twins left, which the collector must still free.
"""

from __future__ import annotations

import gc
import threading

_frozen = False
_lock = threading.Lock()


def set_aside_imported_objects() -> None:
    """`gc.freeze()` the objects alive now, the first time only (module doc); call it right after the imports."""
    global _frozen
    with _lock:
        if _frozen:
            return
        _frozen = True
    # No collection first: it would cost a full scan of those same objects, to free the few the imports left.
    gc.freeze()
