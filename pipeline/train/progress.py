"""One line per epoch on the driver's console, from the rank-0 Ray Train worker.

Workers' output goes to Ray's log files (``pipeline.console``: ``log_to_driver`` is off unless
``--verbose``), and with it on, Ray printed every worker line with a prefix and Train's own
logs around it. So the epoch line travels through a Ray queue (an actor that holds no CPU) and
a thread of the driver prints it while ``trainer.fit()`` blocks. The queue's handle pickles
into the workers' loop config, so a restarted worker (a node lost) keeps reporting.
"""

from __future__ import annotations

import threading
from typing import Any

from ray.util.queue import Empty, Queue

POLL_S = 0.5


class EpochLineRelay:
    """``with EpochLineRelay(say) as queue:`` pass ``queue`` to the workers; each line a worker
    sends with :func:`send` is given to ``say`` on the driver, in order, once."""

    def __init__(self, say=print):
        self.say = say
        self.queue = Queue(actor_options={"num_cpus": 0})
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._pump, name="epoch-lines", daemon=True)

    def __enter__(self):
        self._thread.start()
        return self.queue

    def __exit__(self, *exc_info) -> None:
        self._stop.set()
        self._thread.join()
        self._drain()
        self.queue.shutdown(force=True)

    def _pump(self) -> None:
        while not self._stop.is_set():
            try:
                self.say(self.queue.get(timeout=POLL_S))
            except Empty:
                continue
            except Exception:  # noqa: BLE001 - the queue actor gone: nothing more to print
                return

    def _drain(self) -> None:
        """Lines sent after the last poll (the final epoch's, just before fit returned)."""
        try:
            while not self.queue.empty():
                self.say(self.queue.get_nowait())
        except Exception:  # noqa: BLE001 - the queue actor gone
            pass


def send(queue: Any, line: str) -> None:
    """From a worker: the line to the driver's console, or to this worker's own log file
    when there is no relay (a sweep trial) or it is gone."""
    if queue is not None:
        try:
            queue.put(line, timeout=10)
            return
        except Exception:  # noqa: BLE001 - a driver that went away must not stop training
            pass
    print(line, flush=True)
