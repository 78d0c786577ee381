"""Example Python connectors: a source that reads the lines of a file and a
sink that writes records' values as lines, served as one sidecar.

Run by a Weir runner through a plugin.path manifest::

    {"name": "python-files", "command": "python3",
     "args": ["examples/file_connectors.py"],
     "env": {"PYTHONPATH": "<repo>/connectors/python"}}
"""

import os
import time

from weir_connect import (
    ConfigKey,
    SinkConnector,
    SinkTask,
    SourceConnector,
    SourceRecord,
    SourceTask,
    serve,
)


class LinesSourceTask(SourceTask):
    def open(self, config, positions):
        self.path = config["file"]
        self.topic = config["topic"]
        self.position = 0
        for partition, offset in positions:
            if partition.get("filename") == self.path:
                self.position = offset.get("position", 0)
        self.pending = b""

    def poll(self, max_records):
        try:
            with open(self.path, "rb") as source:
                source.seek(self.position + len(self.pending))
                chunk = source.read(1 << 20)
        except FileNotFoundError:
            chunk = b""
        if not chunk:
            time.sleep(0.1)
            return []
        data = self.pending + chunk
        records = []
        start = 0
        while len(records) < max_records:
            end = data.find(b"\n", start)
            if end < 0:
                break
            line = data[start:end].decode("utf-8")
            start = end + 1
            records.append(SourceRecord(
                partition={"filename": self.path},
                offset={"position": self.position + start},
                topic=self.topic,
                value=line,
            ))
        self.position += start
        self.pending = b""
        return records


class LinesSource(SourceConnector):
    class_name = "com.example.weir.PythonFileSourceConnector"
    config_def = [
        ConfigKey("file", required=True, importance="HIGH", documentation="The file to read"),
        ConfigKey("topic", required=True, importance="HIGH", documentation="The topic to write to"),
    ]

    def validate(self, config):
        if "," in config.get("topic", ""):
            return {"topic": ["PythonFileSource writes to a single topic"]}
        return {}

    def task(self):
        return LinesSourceTask()


class LinesSinkTask(SinkTask):
    def open(self, config):
        self.out = open(config["file"], "a", encoding="utf-8")

    def put(self, records):
        for record in records:
            value = record.value
            if isinstance(value, bytes):
                value = value.decode("utf-8")
            self.out.write(f"{value}\n")

    def flush(self, offsets):
        self.out.flush()
        os.fsync(self.out.fileno())

    def stop(self):
        self.out.close()


class LinesSink(SinkConnector):
    class_name = "com.example.weir.PythonFileSinkConnector"
    config_def = [ConfigKey("file", required=True, importance="HIGH", documentation="The file to append to")]

    def task(self):
        return LinesSinkTask()


if __name__ == "__main__":
    serve([LinesSource(), LinesSink()])
