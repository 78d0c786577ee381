"""Serves connectors over connector protocol v2 (gRPC), with
grpc.health.v1, on the Unix socket in ``$WEIR_SIDECAR_SOCKET`` (set by the
runner that launches the sidecar) or a given address."""

import json
import os
import queue
import signal
import sys
import threading
from concurrent import futures

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "_proto"))
from weir.connector.v2 import connector_pb2 as pb  # noqa: E402
from weir.connector.v2 import connector_pb2_grpc as rpc  # noqa: E402

from weir_connect.api import ConnectorContext, RecordErrors, RetriableError, SinkRecord  # noqa: E402

PROTOCOL_VERSION = 2
SDK = "weir-python 0.1.0"
MAX_BATCH = 10_000


# ---- values on the wire ----

def value_to_wire(value):
    if value is None:
        return pb.Value(null=True)
    if isinstance(value, bool):
        return pb.Value(boolean=value)
    if isinstance(value, int):
        return pb.Value(int=value)
    if isinstance(value, float):
        return pb.Value(float=value)
    if isinstance(value, str):
        return pb.Value(string=value)
    if isinstance(value, (bytes, bytearray)):
        return pb.Value(bytes=bytes(value))
    if isinstance(value, (list, tuple)):
        return pb.Value(array=pb.ValueList(values=[value_to_wire(v) for v in value]))
    if isinstance(value, dict):
        return pb.Value(map=pb.MapEntries(entries=[
            pb.MapEntry(key=value_to_wire(k), value=value_to_wire(v)) for k, v in value.items()
        ]))
    raise TypeError(f"cannot send a {type(value).__name__} as a Connect value")


PRIMITIVE_SCHEMAS = {bool: "BOOLEAN", int: "INT64", float: "FLOAT64", str: "STRING", bytes: "BYTES"}


def data_to_wire(value):
    """Primitives travel with their Connect schema; other values schemaless."""
    schema_type = PRIMITIVE_SCHEMAS.get(type(value))
    structured = pb.Structured(value=value_to_wire(value))
    if schema_type is not None:
        structured.schema.CopyFrom(pb.Schema(type=schema_type, optional=True))
    return pb.Data(structured=structured)


def value_from_wire(value):
    kind = value.WhichOneof("kind")
    if kind is None or kind == "null":
        return None
    if kind == "array":
        return [value_from_wire(v) for v in value.array.values]
    if kind == "map":
        return {value_from_wire(e.key): value_from_wire(e.value) for e in value.map.entries}
    if kind == "struct":
        return {f.name: value_from_wire(f.value) for f in value.struct.fields}
    return getattr(value, kind)


def data_from_wire(data):
    kind = data.WhichOneof("kind")
    if kind == "raw":
        return data.raw
    if kind == "structured":
        return value_from_wire(data.structured.value)
    return None


def error_to_wire(error):
    kind = pb.TaskError.RETRIABLE if isinstance(error, RetriableError) else pb.TaskError.FATAL
    message = str(error) or type(error).__name__
    return pb.TaskError(kind=kind, message=f"{type(error).__name__}: {message}")


def positions_from_wire(positions):
    return [(json.loads(p.partition_json), json.loads(p.offset_json)) for p in positions]


# ---- the services ----

def _validator(key):
    """A ConfigKey's validator on the wire, if it has one."""
    if key.at_least is not None:
        return pb.Validator(at_least=key.at_least)
    if key.valid_values is not None:
        return pb.Validator(one_of=pb.ValidValues(values=list(key.valid_values)))
    return None


class ConnectorService(rpc.ConnectorServicer):
    def __init__(self, connectors):
        self.connectors = connectors

    def find(self, name, context):
        for connector in self.connectors:
            simple = connector.class_name.rsplit(".", 1)[-1]
            if name in (connector.class_name, simple, simple.removesuffix("Connector")):
                return connector
        context.abort(grpc.StatusCode.NOT_FOUND, f"this sidecar serves no plugin {name}")

    def Handshake(self, request, context):
        if PROTOCOL_VERSION not in request.versions:
            context.abort(
                grpc.StatusCode.FAILED_PRECONDITION,
                f"no common protocol version: the runner speaks {list(request.versions)}, "
                f"this sidecar {[PROTOCOL_VERSION]}",
            )
        plugins = []
        for c in self.connectors:
            simple = c.class_name.rsplit(".", 1)[-1]
            aliases = [simple] + ([simple.removesuffix("Connector")] if simple.endswith("Connector") else [])
            keys = [
                pb.ConfigKey(
                    name=k.name, type=k.type, required=k.required, importance=k.importance,
                    documentation=k.documentation, group=k.group, order=k.order, width=k.width,
                    display_name=k.display_name or k.name,
                    **({"default_value": k.default} if k.default is not None else {}),
                    **({"validator": _validator(k)} if _validator(k) is not None else {}),
                )
                for k in c.config_def
            ]
            kind = pb.PLUGIN_KIND_SOURCE if c.kind == "source" else pb.PLUGIN_KIND_SINK
            # `class` is a Python keyword, so the field goes in by name.
            plugins.append(pb.Plugin(**{"class": c.class_name}, aliases=aliases, kind=kind,
                                     version=c.version, config=keys))
        return pb.HandshakeResponse(version=PROTOCOL_VERSION, plugins=plugins, sdk=SDK)

    def Validate(self, request, context):
        connector = self.find(getattr(request, "class"), context)
        errors = connector.validate(dict(request.config))
        return pb.ValidateResponse(errors=[pb.KeyErrors(name=k, errors=v) for k, v in errors.items()])

    def TaskConfigs(self, request, context):
        connector = self.find(getattr(request, "class"), context)
        try:
            configs = connector.task_configs(dict(request.config), max(request.max_tasks, 1))
        except Exception as error:  # noqa: BLE001 - any connector failure is reported
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(error))
        return pb.TaskConfigsResponse(tasks=[pb.TaskConfig(config=c) for c in configs])

    def Watch(self, request, context):
        """Runs the connector's ``monitor`` in a thread; each reconfiguration
        it asks for becomes a ReconfigureTasks event. The stream stays open
        until the runner cancels it (the connector stopped)."""
        connector = self.find(getattr(request, "class"), context)
        events = queue.Queue()
        stopped = threading.Event()

        def cancelled():
            stopped.set()
            events.put(None)

        context.add_callback(cancelled)
        watch = ConnectorContext(
            lambda: events.put(pb.ConnectorEvent(reconfigure_tasks=pb.ReconfigureTasks())),
            stopped,
        )

        def monitor():
            try:
                connector.monitor(dict(request.config), watch)
            except Exception as error:  # noqa: BLE001 - any failure fails the connector
                events.put(pb.ConnectorEvent(error=pb.TaskError(kind=pb.TaskError.FATAL, message=str(error))))

        threading.Thread(target=monitor, name="weir-monitor", daemon=True).start()
        while True:
            event = events.get()
            if event is None:
                return
            yield event
            if event.HasField("error"):
                return


def _reader(request_iterator, commands):
    """Moves the runner's commands onto a queue; None marks its end."""
    try:
        for command in request_iterator:
            commands.put(command)
    except grpc.RpcError:
        pass
    commands.put(None)


class SourceService(rpc.SourceServicer):
    def __init__(self, connectors):
        self.connectors = ConnectorService(connectors)

    def Run(self, request_iterator, context):
        first = next(request_iterator, None)
        if first is None or first.WhichOneof("command") != "open":
            context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                          "malformed connector protocol message: a source task stream must start with Open")
        open_ = first.open
        connector = self.connectors.find(getattr(open_, "class"), context)
        task = connector.task()
        try:
            task.open(dict(open_.config), positions_from_wire(open_.positions))
        except Exception as error:  # noqa: BLE001
            yield pb.SourceEvent(error=error_to_wire(error))
            _stop(task)
            return
        commands = queue.Queue()
        credit = 0
        leftover = []
        # How long to wait for a command before polling again: grows while
        # poll has nothing or fails retriably, so an idle task does not spin.
        idle = 0.0
        try:
            yield pb.SourceEvent(opened=pb.Opened())
            threading.Thread(target=_reader, args=(request_iterator, commands), daemon=True).start()
            while True:
                wait = credit == 0
                try:
                    command = commands.get(block=wait or idle > 0, timeout=None if wait else idle or None)
                except queue.Empty:
                    command = ()
                if command is None:
                    return
                if command != ():
                    which = command.WhichOneof("command")
                    if which == "credit":
                        credit += command.credit.records
                    elif which == "committed":
                        task.commit(positions_from_wire(command.committed.positions))
                    elif which == "stop":
                        _stop(task)
                        task = None
                        yield pb.SourceEvent(stopped=pb.Stopped())
                        return
                    continue
                if leftover:
                    records, leftover = leftover, []
                else:
                    try:
                        records = task.poll(min(credit, MAX_BATCH))
                    except RetriableError as error:
                        yield pb.SourceEvent(error=error_to_wire(error))
                        idle = 0.3
                        continue
                    except Exception as error:  # noqa: BLE001
                        yield pb.SourceEvent(error=error_to_wire(error))
                        return
                if not records:
                    idle = min(max(idle * 2, 0.01), 0.2)
                    continue
                idle = 0.0
                # A task that returns more than it was asked for keeps the
                # rest for the next credit: nothing it read is dropped.
                records, leftover = records[:credit], records[credit:]
                credit -= len(records)
                yield pb.SourceEvent(batch=pb.SourceBatch(records=[_source_record(r) for r in records]))
        finally:
            if task is not None:
                _stop(task)


def _source_record(record):
    wire = pb.SourceRecord(
        partition_json=json.dumps(record.partition, separators=(",", ":")),
        offset_json=json.dumps(record.offset, separators=(",", ":")),
        topic=record.topic,
        key=data_to_wire(record.key),
        value=data_to_wire(record.value),
        headers=[pb.Header(key=k, value=data_to_wire(v)) for k, v in record.headers.items()],
    )
    if record.kafka_partition is not None:
        wire.kafka_partition = record.kafka_partition
    if record.timestamp_ms is not None:
        wire.timestamp_ms = record.timestamp_ms
    return wire


def _stop(task):
    try:
        task.stop()
    except Exception:  # noqa: BLE001 - a failing stop must not hide the task's own outcome
        pass


class SinkService(rpc.SinkServicer):
    def __init__(self, connectors):
        self.connectors = ConnectorService(connectors)

    def Run(self, request_iterator, context):
        first = next(request_iterator, None)
        if first is None or first.WhichOneof("command") != "open":
            context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                          "malformed connector protocol message: a sink task stream must start with Open")
        connector = self.connectors.find(getattr(first.open, "class"), context)
        task = connector.task()
        try:
            task.open(dict(first.open.config))
        except Exception as error:  # noqa: BLE001
            yield pb.SinkEvent(error=error_to_wire(error))
            _stop(task)
            return
        try:
            yield pb.SinkEvent(opened=pb.Opened())
            for command in request_iterator:
                which = command.WhichOneof("command")
                if which in ("assign", "revoke"):
                    partitions = [(p.topic, p.partition) for p in getattr(command, which).partitions]
                    hook = task.open_partitions if which == "assign" else task.close_partitions
                    try:
                        hook(partitions)
                    except Exception as error:  # noqa: BLE001 - reported on the stream
                        yield pb.SinkEvent(error=error_to_wire(error))
                    continue
                if which == "put":
                    records = [
                        SinkRecord(topic=r.topic, partition=r.partition, offset=r.offset,
                                   value=data_from_wire(r.value), key=data_from_wire(r.key),
                                   timestamp_ms=r.timestamp_ms if r.HasField("timestamp_ms") else None,
                                   headers={h.key: data_from_wire(h.value) for h in r.headers})
                        for r in command.put.records
                    ]
                    yield pb.SinkEvent(put=_outcome(pb.PutResult, command.put.id, task.put, records))
                elif which in ("flush", "pre_commit"):
                    request = getattr(command, which)
                    offsets = [(o.topic, o.partition, o.offset) for o in request.offsets]
                    if which == "flush":
                        yield pb.SinkEvent(flush=_outcome(pb.FlushResult, request.id, task.flush, offsets))
                    else:
                        try:
                            safe = task.pre_commit(offsets)
                            result = pb.PreCommitResult(id=request.id, offsets=[
                                pb.TopicPartitionOffset(topic=t, partition=p, offset=o) for t, p, o in safe])
                        except Exception as error:  # noqa: BLE001 - reported to the runner
                            result = pb.PreCommitResult(id=request.id, error=error_to_wire(error))
                        yield pb.SinkEvent(pre_commit=result)
                elif which == "stop":
                    _stop(task)
                    task = None
                    yield pb.SinkEvent(stopped=pb.Stopped())
                    return
        except grpc.RpcError:
            pass
        finally:
            if task is not None:
                _stop(task)


def _outcome(message, id_, call, argument):
    try:
        call(argument)
        return message(id=id_)
    except RecordErrors as failed:
        records = [pb.RecordError(index=i, error=error_to_wire(e)) for i, e in sorted(failed.errors.items())]
        return message(id=id_, records=records)
    except Exception as error:  # noqa: BLE001
        return message(id=id_, error=error_to_wire(error))


def serve(connectors, address=None):
    """Serves ``connectors`` until SIGTERM or SIGINT. ``address`` defaults
    to ``unix:$WEIR_SIDECAR_SOCKET``; ``"127.0.0.1:7070"`` serves TCP."""
    if address is None:
        socket = os.environ.get("WEIR_SIDECAR_SOCKET")
        if not socket:
            raise SystemExit("set WEIR_SIDECAR_SOCKET or pass an address")
        address = f"unix:{socket}"
    # Every task stream holds a thread for its life; calls beyond the pool
    # would queue. WEIR_SIDECAR_THREADS raises the bound.
    threads = int(os.environ.get("WEIR_SIDECAR_THREADS", "256"))
    # The runner checks the sidecar is alive with a grpc.health.v1 call
    # every second (served below, on a pool thread: keep threads free) and
    # pings only every 330 s, which grpc-core's default policy permits.
    # These options also tolerate a client that pings more often.
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=threads),
        options=[
            ("grpc.http2.min_ping_interval_without_data_ms", 500),
            ("grpc.http2.max_ping_strikes", 0),
            ("grpc.keepalive_permit_without_calls", 1),
        ],
    )
    rpc.add_ConnectorServicer_to_server(ConnectorService(connectors), server)
    rpc.add_SourceServicer_to_server(SourceService(connectors), server)
    rpc.add_SinkServicer_to_server(SinkService(connectors), server)
    health_servicer = health.HealthServicer()
    health_servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    server.add_insecure_port(address)
    server.start()
    print(f"{SDK} serving {', '.join(c.class_name for c in connectors)} on {address}", flush=True)
    stopped = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stopped.set())
    orphaned = threading.Event()
    runner = os.environ.get("WEIR_RUNNER_PID")
    if runner:
        # A killed runner cannot send SIGTERM: exit once it is no longer our parent.
        def watch_parent():
            while not stopped.wait(0.5):
                if str(os.getppid()) != runner:
                    # No message: stdout was a pipe to the runner, now closed.
                    orphaned.set()
                    stopped.set()

        threading.Thread(target=watch_parent, name="weir-parent", daemon=True).start()
    stopped.wait()
    server.stop(grace=5).wait()
    if orphaned.is_set():
        # Task threads whose runner vanished may still wait on their streams;
        # nobody is left to answer, so do not wait for them.
        os._exit(0)
