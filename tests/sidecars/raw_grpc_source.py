"""A source sidecar on a stock gRPC server, without Weir's SDK.

It is written straight from ``proto/weir/connector/v2/connector.proto``
(the generated message and service modules only) and serves it with
``grpc.server`` at its default options: stock servers refuse HTTP/2 pings
more often than every 5 minutes, so a runner that pinged every second would
lose this sidecar as soon as it went idle. It serves no ``grpc.health.v1``
either.

``com.example.RawFileSource`` reads the lines of ``file`` into ``topic``,
one record per line, resuming after the committed byte position, and waits
for more lines (idle) at the end of the file.

Run by a runner through a plugin.path manifest, with PYTHONPATH holding
``connectors/python/weir_connect/_proto``; it listens on the Unix socket in
``$WEIR_SIDECAR_SOCKET``.
"""

import json
import os
import queue
import signal
import threading
from concurrent import futures

import grpc
from weir.connector.v2 import connector_pb2 as pb
from weir.connector.v2 import connector_pb2_grpc as rpc

CLASS = "com.example.RawFileSource"


class Connector(rpc.ConnectorServicer):
    def Handshake(self, request, context):
        if 2 not in request.versions:
            context.abort(grpc.StatusCode.FAILED_PRECONDITION, "protocol v2 only")
        plugin = pb.Plugin(
            **{"class": CLASS},  # a Python keyword, so passed by name
            kind=pb.PLUGIN_KIND_SOURCE,
            version="1.0",
            config=[
                pb.ConfigKey(name="file", type="STRING", importance="HIGH", required=True,
                             documentation="The file to read."),
                pb.ConfigKey(name="topic", type="STRING", importance="HIGH", required=True,
                             documentation="The topic to write."),
            ],
        )
        return pb.HandshakeResponse(version=2, plugins=[plugin], sdk="raw-grpcio")

    def Validate(self, request, context):
        errors = [pb.KeyErrors(name=key, errors=[f"Missing required configuration \"{key}\" which has no default value."])
                  for key in ("file", "topic") if not request.config.get(key)]
        return pb.ValidateResponse(errors=errors)

    def TaskConfigs(self, request, context):
        return pb.TaskConfigsResponse(tasks=[pb.TaskConfig(config=dict(request.config))])

    def Watch(self, request, context):
        # No connector-level events: hold the stream open until the runner ends it.
        done = threading.Event()
        context.add_callback(done.set)
        done.wait()
        return iter(())


class Source(rpc.SourceServicer):
    def Run(self, request_iterator, context):
        commands = queue.Queue()

        def read():
            try:
                for command in request_iterator:
                    commands.put(command)
            except grpc.RpcError:
                pass
            commands.put(None)

        threading.Thread(target=read, daemon=True).start()
        credit = 0
        path = topic = None
        position = 0
        while True:
            try:
                command = commands.get(timeout=0.2)
            except queue.Empty:
                command = ""
            if command is None:
                return
            which = command.WhichOneof("command") if command else None
            if path is None and which not in (None, "open"):
                context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                              f"the first command of a task stream must be open, not {which}")
            if which == "open":
                path = command.open.config["file"]
                topic = command.open.config["topic"]
                for stored in command.open.positions:
                    if json.loads(stored.partition_json).get("file") == path:
                        position = json.loads(stored.offset_json)["position"]
                yield pb.SourceEvent(opened=pb.Opened())
            elif which == "credit":
                credit += command.credit.records
            elif which == "stop":
                yield pb.SourceEvent(stopped=pb.Stopped())
                return
            if path is None or credit == 0:
                continue
            records = []
            try:
                with open(path, "rb") as file:
                    file.seek(position)
                    while credit > len(records):
                        line = file.readline()
                        if not line.endswith(b"\n"):
                            break
                        position += len(line)
                        records.append(pb.SourceRecord(
                            partition_json=json.dumps({"file": path}),
                            offset_json=json.dumps({"position": position}),
                            topic=topic,
                            value=pb.Data(raw=line.rstrip(b"\n")),
                        ))
            except FileNotFoundError:
                pass
            if records:
                credit -= len(records)
                yield pb.SourceEvent(batch=pb.SourceBatch(records=records))


def main():
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=16))
    rpc.add_ConnectorServicer_to_server(Connector(), server)
    rpc.add_SourceServicer_to_server(Source(), server)
    server.add_insecure_port("unix:" + os.environ["WEIR_SIDECAR_SOCKET"])
    server.start()
    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    stopping.wait()
    server.stop(grace=2).wait()


if __name__ == "__main__":
    main()
