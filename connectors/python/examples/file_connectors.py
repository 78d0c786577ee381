"""Example Python connectors, served as one sidecar: a source that reads the
lines of a file, a sink that writes records' values as lines, and a source
that reads every ``*.txt`` file of a directory with one task per file,
asking for new task configs when files appear (``monitor``).

Run by a Weir runner through a plugin.path manifest::

    {"name": "python-files", "command": "python3",
     "args": ["examples/file_connectors.py"],
     "env": {"PYTHONPATH": "<repo>/connectors/python"}}
"""

import os
import time

from weir_connect import (
    ConfigKey,
    RecordErrors,
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
        self.idle_seconds = int(config.get("poll.interval.ms", "100")) / 1000

    def poll(self, max_records):
        try:
            with open(self.path, "rb") as source:
                source.seek(self.position + len(self.pending))
                chunk = source.read(1 << 20)
        except FileNotFoundError:
            chunk = b""
        if not chunk:
            time.sleep(self.idle_seconds)
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
        ConfigKey("poll.interval.ms", type="LONG", default="100", importance="LOW", at_least=1,
                  documentation="How long to wait at the end of the file before looking again"),
    ]

    def validate(self, config):
        if "," in config.get("topic", ""):
            return {"topic": ["PythonFileSource writes to a single topic"]}
        return {}

    def task(self):
        return LinesSourceTask()


def text_files(directory):
    try:
        names = sorted(n for n in os.listdir(directory) if n.endswith(".txt"))
    except FileNotFoundError:
        return []
    return [os.path.join(directory, n) for n in names]


class DirectorySourceTask(SourceTask):
    """Reads the files in its ``files`` config (comma-separated) in turn."""

    def open(self, config, positions):
        self.readers = []
        for path in filter(None, config["files"].split(",")):
            reader = LinesSourceTask()
            reader.open({"file": path, "topic": config["topic"]}, positions)
            self.readers.append(reader)

    def poll(self, max_records):
        records = []
        for reader in self.readers:
            if len(records) < max_records:
                records.extend(reader.poll(max_records - len(records)))
        return records


class DirectorySource(SourceConnector):
    class_name = "com.example.weir.PythonDirectorySourceConnector"
    config_def = [
        ConfigKey("directory", required=True, importance="HIGH", documentation="The directory whose *.txt files to read"),
        ConfigKey("topic", required=True, importance="HIGH", documentation="The topic to write to"),
    ]

    def task_configs(self, config, max_tasks):
        files = text_files(config["directory"])
        groups = [files[i::max_tasks] for i in range(min(max_tasks, len(files)))]
        return [dict(config, files=",".join(group)) for group in groups]

    def monitor(self, config, context):
        known = text_files(config["directory"])
        while not context.stopped.wait(0.2):
            now = text_files(config["directory"])
            if now != known:
                known = now
                context.request_task_reconfiguration()

    def task(self):
        return DirectorySourceTask()


class LinesSinkTask(SinkTask):
    def open(self, config):
        self.out = open(config["file"], "a", encoding="utf-8")
        self.reject = config.get("reject.prefix") or None

    def put(self, records):
        rejected = {}
        for index, record in enumerate(records):
            value = record.value
            if isinstance(value, bytes):
                value = value.decode("utf-8")
            if self.reject and str(value).startswith(self.reject):
                rejected[index] = ValueError(f"line rejected: {value}")
                continue
            self.out.write(f"{value}\n")
        if rejected:
            # Every other record is written; these go to errors.tolerance.
            raise RecordErrors(rejected)

    def flush(self, offsets):
        self.out.flush()
        os.fsync(self.out.fileno())

    def stop(self):
        self.out.close()


class LinesSink(SinkConnector):
    class_name = "com.example.weir.PythonFileSinkConnector"
    config_def = [
        ConfigKey("file", required=True, importance="HIGH", documentation="The file to append to"),
        ConfigKey("reject.prefix", importance="LOW",
                  documentation="Lines starting with this are rejected, one by one, as a database sink rejects rows"),
    ]

    def task(self):
        return LinesSinkTask()


if __name__ == "__main__":
    serve([LinesSource(), LinesSink(), DirectorySource()])
