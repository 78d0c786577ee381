"""The connector API: what a Python connector implements."""

from dataclasses import dataclass, field
from typing import Any, Optional


class RetriableError(Exception):
    """A failure the runner retries (Kafka Connect's RetriableException)."""


class RecordErrors(Exception):
    """Raised by a sink's ``put``: the batch was taken except these records.
    ``errors`` maps a record's index in the batch to its exception; a
    ``RetriableError`` is put again, any other goes through the connector's
    ``errors.tolerance`` (and dead letter queue, if configured)."""

    def __init__(self, errors: dict):
        super().__init__(f"{len(errors)} record(s) failed")
        self.errors = errors


@dataclass
class ConfigKey:
    """One key of a connector's ConfigDef, as validate shows it."""

    name: str
    type: str = "STRING"  # BOOLEAN, STRING, INT, SHORT, LONG, DOUBLE, LIST, CLASS, PASSWORD
    required: bool = False
    default: Optional[str] = None
    importance: str = "MEDIUM"
    documentation: str = ""
    group: str = ""
    order: int = -1
    width: str = "NONE"
    display_name: str = ""
    # Validators (at most one), checked by coordinators too:
    at_least: Optional[int] = None  # a number at least this
    valid_values: Optional[list] = None  # one of these strings, ignoring case


@dataclass
class SourceRecord:
    """A record a source task produces. ``partition`` and ``offset`` are
    JSON objects (dicts); ``value`` and ``key`` are Python values: None,
    bool, int, float, str, bytes, list or dict."""

    partition: dict
    offset: dict
    topic: str
    value: Any = None
    key: Any = None
    kafka_partition: Optional[int] = None
    timestamp_ms: Optional[int] = None
    headers: dict = field(default_factory=dict)


@dataclass
class SinkRecord:
    """A record a sink task receives."""

    topic: str
    partition: int
    offset: int
    value: Any = None
    key: Any = None
    timestamp_ms: Optional[int] = None
    headers: dict = field(default_factory=dict)


class SourceTask:
    def open(self, config: dict, positions: list) -> None:
        """Start with ``config``; ``positions`` are ``(partition, offset)``
        pairs of dicts, the last committed for this connector."""

    def poll(self, max_records: int) -> list:
        """Return up to ``max_records`` SourceRecords; [] if none are ready."""
        raise NotImplementedError

    def commit(self, positions: list) -> None:
        """These ``(partition, offset)`` pairs are durably stored."""

    def stop(self) -> None:
        """Release everything; nothing is called after this."""


class SinkTask:
    def open(self, config: dict) -> None:
        pass

    def put(self, records: list) -> None:
        raise NotImplementedError

    def flush(self, offsets: list) -> None:
        """Make everything put so far durable. ``offsets`` are
        ``(topic, partition, next_offset)`` triples."""

    def pre_commit(self, offsets: list) -> list:
        """Kafka Connect's preCommit: return the ``(topic, partition,
        next_offset)`` triples that are safe to commit now. By default,
        flush and return them all; a sink that writes asynchronously returns
        only what has landed."""
        self.flush(offsets)
        return offsets

    def open_partitions(self, partitions: list) -> None:
        """The task now reads these ``(topic, partition)`` pairs."""

    def close_partitions(self, partitions: list) -> None:
        """The task no longer reads these; what was not committed is read
        again by their next owner."""

    def stop(self) -> None:
        pass


class Connector:
    class_name: str = ""
    version: str = "0.1.0"
    config_def: list = []
    kind: str = ""

    def validate(self, config: dict) -> dict:
        """Extra errors by key (``{"topic": ["..."]}``); none by default."""
        return {}

    def task_configs(self, config: dict, max_tasks: int) -> list:
        """Split the work; by default one task with the connector's config."""
        return [dict(config)]

    def monitor(self, config: dict, context: "ConnectorContext") -> None:
        """Runs in its own thread for as long as the connector runs, to watch
        the external system. Call ``context.request_task_reconfiguration()``
        when the work changes (a new table, a new file): the runner calls
        ``task_configs`` again and restarts the tasks whose config changed.
        Return when ``context.stopped`` is set. Returning early ends the watch,
        not the connector; raising fails the connector. Watches nothing by
        default."""

    def task(self):
        raise NotImplementedError


class ConnectorContext:
    """What a running connector may ask of the runner (Kafka Connect's
    ``ConnectorContext``)."""

    def __init__(self, request, stopped):
        self._request = request
        #: A ``threading.Event`` set when the runner stops the connector.
        self.stopped = stopped

    def request_task_reconfiguration(self) -> None:
        self._request()


class SourceConnector(Connector):
    kind = "source"


class SinkConnector(Connector):
    kind = "sink"
