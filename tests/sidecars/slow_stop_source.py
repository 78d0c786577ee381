"""A Python sidecar source for the control-plane tests: it emits
``{"task":N,"seqno":S}`` values at ``throughput`` records per second, as
VerifiableSource does (resuming after the last committed seqno), and its
task's ``stop()`` takes ``stop.seconds`` (8 by default): longer than the
default session timeout (6 s).

Run by a Weir runner through a plugin.path manifest::

    {"name": "slow-stop", "command": "<repo>/.venv/bin/python",
     "args": ["<repo>/tests/sidecars/slow_stop_source.py"],
     "env": {"PYTHONPATH": "<repo>/connectors/python"}}
"""

import json
import time

from weir_connect import ConfigKey, SourceConnector, SourceRecord, SourceTask, serve


class SlowStopSourceTask(SourceTask):
    def open(self, config, positions):
        self.task = int(config.get("task.id", "0"))
        self.topic = config["topic"]
        self.interval = 1.0 / max(int(config.get("throughput", "20")), 1)
        self.stop_seconds = float(config.get("stop.seconds", "8"))
        self.seqno = 0
        for partition, offset in positions:
            if partition.get("task") == self.task:
                self.seqno = max(self.seqno, int(offset.get("seqno", -1)) + 1)
        self.next_at = time.monotonic()
        print(f"slow-stop-source task {self.task} opened at seqno {self.seqno}", flush=True)

    def poll(self, max_records):
        now = time.monotonic()
        if self.next_at > now:
            time.sleep(self.next_at - now)
            now = time.monotonic()
        due = int((now - self.next_at) / self.interval) + 1
        count = max(1, min(due, max_records))
        records = []
        for _ in range(count):
            records.append(SourceRecord(
                partition={"task": self.task},
                offset={"seqno": self.seqno},
                topic=self.topic,
                value=json.dumps({"task": self.task, "seqno": self.seqno}, separators=(",", ":")),
            ))
            self.seqno += 1
        self.next_at += self.interval * count
        return records

    def stop(self):
        print(f"slow-stop-source task {self.task} stop() sleeping {self.stop_seconds} s", flush=True)
        time.sleep(self.stop_seconds)
        print(f"slow-stop-source task {self.task} stop() returning", flush=True)


class SlowStopSource(SourceConnector):
    class_name = "org.weir.tests.SlowStopSourceConnector"
    config_def = [
        ConfigKey("topic", required=True, importance="HIGH", documentation="The topic to write to"),
        ConfigKey("throughput", type="LONG", default="20", importance="HIGH",
                  documentation="Records per second each task emits"),
        ConfigKey("stop.seconds", type="DOUBLE", default="8", importance="LOW",
                  documentation="How long the task's stop() takes"),
    ]

    def task_configs(self, config, max_tasks):
        return [dict(config, **{"task.id": str(task)}) for task in range(max(max_tasks, 1))]

    def task(self):
        return SlowStopSourceTask()


if __name__ == "__main__":
    serve([SlowStopSource()])
