"""Weir's Python SDK: write a Kafka Connect-style connector in Python and
serve it to a Weir runner as a sidecar over connector protocol v2.

A connector is a class with a name, a kind and a way to make tasks::

    class Lines(SourceConnector):
        class_name = "com.example.LinesSource"
        config_def = [ConfigKey("file", "STRING", required=True)]

        def task(self):
            return LinesTask()

    serve([Lines()])   # listens on $WEIR_SIDECAR_SOCKET

Lifecycle guarantees (the runner keeps them; see README.md):

* A task's ``open`` comes first, ``stop`` last, and nothing runs after
  ``stop``. ``stop`` is called even when the runner goes away.
* A source task's ``poll(max_records)`` is called only while the runner
  has granted credit, and never returns more than ``max_records``.
  Return ``[]`` when nothing is ready (after waiting briefly).
* ``commit(positions)`` means those positions are durably stored: only
  then prune upstream. After a crash, ``open`` gets the last committed
  positions and records after them are asked for again (at least once).
* A sink task's ``put`` runs before the ``flush`` that covers it; Kafka
  offsets are committed only after ``flush`` returned.
* Raise ``RetriableError`` for a failure the runner should retry; any other
  exception fails the task with its message as the trace. A sink's ``put``
  may raise ``RecordErrors({index: exception})`` for records that failed on
  their own: retriable ones are put again, the others go through
  ``errors.tolerance`` and the dead letter queue.
* ``validate``, ``task_configs`` and ``monitor`` run on the runner the
  connector is placed on; ``task_configs`` runs again after each
  ``context.request_task_reconfiguration()`` from ``monitor``.
"""

from weir_connect.api import (
    ConfigKey,
    ConnectorContext,
    RecordErrors,
    RetriableError,
    SinkConnector,
    SinkRecord,
    SinkTask,
    SourceConnector,
    SourceRecord,
    SourceTask,
)
from weir_connect.sidecar import serve

__all__ = [
    "ConfigKey",
    "ConnectorContext",
    "RecordErrors",
    "RetriableError",
    "SinkConnector",
    "SinkRecord",
    "SinkTask",
    "SourceConnector",
    "SourceRecord",
    "SourceTask",
    "serve",
]
