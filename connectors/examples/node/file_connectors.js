// File source and sink connectors for Weir, in Node.js.
//
// A sidecar in any language is a gRPC server for Weir's connector protocol
// v2 (proto/weir/connector/v2/connector.proto). This one uses only
// @grpc/grpc-js and @grpc/proto-loader: it loads the .proto at run time, so
// there is no generated code and no Weir SDK. The server runs at grpc-js's
// default options.
//
// - NodeFileSource (com.example.node.NodeFileSourceConnector): each line of
//   `file` becomes one record on `topic`; it resumes after the committed
//   byte position and waits at the end of the file for more lines.
// - NodeFileSink (com.example.node.NodeFileSinkConnector): appends each
//   record's value to `file`, one line each, and syncs the file on flush.
//
// It listens where the runner says: a Unix socket in $WEIR_SIDECAR_SOCKET
// (a runner that launches it sets this), or an address such as
// 127.0.0.1:50051 in $WEIR_SIDECAR_ADDRESS.
"use strict";

const fs = require("fs");
const path = require("path");
const grpc = require("@grpc/grpc-js");
const protoLoader = require("@grpc/proto-loader");

const PROTO =
  process.env.WEIR_PROTO ||
  path.join(__dirname, "..", "..", "..", "proto", "weir", "connector", "v2", "connector.proto");
const definition = protoLoader.loadSync(PROTO, {
  keepCase: true, // field names as in the .proto (partition_json, max_tasks)
  longs: Number,
  enums: String,
  defaults: true,
  oneofs: true, // `command`/`event` name the field of a oneof that is set
});
const v2 = grpc.loadPackageDefinition(definition).weir.connector.v2;

const SOURCE_CLASS = "com.example.node.NodeFileSourceConnector";
const SINK_CLASS = "com.example.node.NodeFileSinkConnector";

function key(name, documentation) {
  return { name, type: "STRING", importance: "HIGH", documentation, required: true };
}

const PLUGINS = [
  {
    class: SOURCE_CLASS,
    aliases: ["NodeFileSource"],
    kind: "PLUGIN_KIND_SOURCE",
    version: "1.0.0",
    config: [
      key("file", "The file to read, line by line."),
      key("topic", "The topic to write."),
      {
        name: "poll.interval.ms",
        type: "LONG",
        default_value: "200",
        importance: "LOW",
        documentation: "How long to wait at the end of the file before looking again.",
        // Checked by Weir itself, coordinators included: no Validate code needed.
        validator: { at_least: 1 },
      },
    ],
  },
  {
    class: SINK_CLASS,
    aliases: ["NodeFileSink"],
    kind: "PLUGIN_KIND_SINK",
    version: "1.0.0",
    config: [key("file", "The file to append records to.")],
  },
];

// Kafka Connect's message for a required key with no value.
function missing(config, names) {
  return names
    .filter((name) => !config[name])
    .map((name) => ({
      name,
      errors: [`Missing required configuration "${name}" which has no default value.`],
    }));
}

const connector = {
  Handshake(call, callback) {
    if (!call.request.versions.includes(2)) {
      callback({ code: grpc.status.FAILED_PRECONDITION, details: "this sidecar speaks protocol v2 only" });
      return;
    }
    callback(null, { version: 2, plugins: PLUGINS, sdk: `grpc-js ${require("@grpc/grpc-js/package.json").version}` });
  },

  // The connector's own checks, beyond what the ConfigDef in the handshake
  // already checks (types, required keys): Weir runs this before it stores
  // a connector, in standalone and in distributed mode.
  Validate(call, callback) {
    const { class: cls, config } = call.request;
    const required = cls === SINK_CLASS ? ["file"] : ["file", "topic"];
    const errors = missing(config, required);
    if (config.file && !path.isAbsolute(config.file)) {
      errors.push({
        name: "file",
        errors: [`Invalid value ${config.file} for configuration file: must be an absolute path`],
      });
    }
    callback(null, { errors });
  },

  TaskConfigs(call, callback) {
    // One task reads or writes one file.
    callback(null, { tasks: [{ config: call.request.config }] });
  },

  Watch(call) {
    // No connector-level events: the stream stays open until the runner ends it.
    call.on("cancelled", () => call.end());
  },
};

function taskError(message) {
  return { kind: "FATAL", message };
}

// The protocol's rule for both task streams: the first command is Open;
// a stream that starts otherwise is refused with INVALID_ARGUMENT.
function refuseUnopened(call, command) {
  call.emit("error", {
    code: grpc.status.INVALID_ARGUMENT,
    details: `the first command of a task stream must be open, not ${command.command}`,
  });
}

const source = {
  Run(call) {
    let file = null;
    let topic = null;
    // While the task has credit and no new line, it looks at the file this often.
    let idlePollMs = 200;
    let position = 0;
    let credit = 0;
    let timer = null;
    let stopped = false;

    // Sends what the credit allows of the lines written since `position`.
    function pump() {
      timer = null;
      if (stopped || file === null || credit === 0) return;
      let text;
      try {
        const fd = fs.openSync(file, "r");
        try {
          const size = fs.fstatSync(fd).size;
          const buffer = Buffer.alloc(Math.max(0, size - position));
          fs.readSync(fd, buffer, 0, buffer.length, position);
          text = buffer;
        } finally {
          fs.closeSync(fd);
        }
      } catch (error) {
        if (error.code !== "ENOENT") {
          call.write({ error: taskError(`cannot read ${file}: ${error.message}`) });
          return;
        }
        text = Buffer.alloc(0);
      }
      const records = [];
      let start = 0;
      while (records.length < credit) {
        const end = text.indexOf(10, start); // a complete line only
        if (end < 0) break;
        position += end + 1 - start;
        records.push({
          partition_json: JSON.stringify({ filename: file }),
          offset_json: JSON.stringify({ position }),
          topic,
          value: { raw: text.subarray(start, end) },
        });
        start = end + 1;
      }
      if (records.length > 0) {
        credit -= records.length;
        call.write({ batch: { records } });
      }
      if (credit > 0) timer = setTimeout(pump, idlePollMs);
    }

    call.on("data", (command) => {
      if (file === null && command.command !== "open") {
        refuseUnopened(call, command);
        return;
      }
      switch (command.command) {
        case "open": {
          file = command.open.config.file;
          topic = command.open.config.topic;
          idlePollMs = Number(command.open.config["poll.interval.ms"] || "200");
          for (const stored of command.open.positions) {
            if (JSON.parse(stored.partition_json).filename === file) {
              position = JSON.parse(stored.offset_json).position;
            }
          }
          call.write({ opened: {} });
          break;
        }
        case "credit":
          credit += command.credit.records;
          if (timer === null) pump();
          break;
        case "committed":
          // Nothing to prune upstream: the file stays as it is.
          break;
        case "stop":
          stopped = true;
          if (timer !== null) clearTimeout(timer);
          call.write({ stopped: {} });
          call.end();
          break;
        default:
          break;
      }
    });
    call.on("cancelled", () => {
      stopped = true;
      if (timer !== null) clearTimeout(timer);
    });
    call.on("error", () => {});
  },
};

// A record's value as the line to write: strings as they are, bytes as
// UTF-8, anything structured as JSON.
function line(data) {
  if (!data || !data.kind) return "null";
  if (data.kind === "raw") return data.raw.toString("utf8");
  const value = data.structured.value;
  return render(value);
}

function render(value) {
  if (!value || !value.kind) return "null";
  switch (value.kind) {
    case "null":
      return "null";
    case "string":
      return value.string;
    case "bytes":
      return value.bytes.toString("utf8");
    case "int":
      return String(value.int);
    case "float":
      return String(value.float);
    case "boolean":
      return String(value.boolean);
    default:
      return JSON.stringify(plain(value));
  }
}

function plain(value) {
  switch (value.kind) {
    case "array":
      return value.array.values.map(plain);
    case "map":
      return value.map.entries.map((entry) => [plain(entry.key), plain(entry.value)]);
    case "struct":
      return Object.fromEntries(value.struct.fields.map((field) => [field.name, plain(field.value)]));
    case "bytes":
      return value.bytes.toString("base64");
    case "null":
      return null;
    default:
      return value[value.kind];
  }
}

const sink = {
  Run(call) {
    let fd = null;
    call.on("data", (command) => {
      if (fd === null && command.command !== "open") {
        refuseUnopened(call, command);
        return;
      }
      try {
        switch (command.command) {
          case "open":
            fd = fs.openSync(command.open.config.file, "a");
            call.write({ opened: {} });
            break;
          case "assign":
          case "revoke":
            break;
          case "put": {
            const text = command.put.records.map((record) => line(record.value) + "\n").join("");
            fs.writeSync(fd, text);
            call.write({ put: { id: command.put.id } });
            break;
          }
          case "flush":
            fs.fsyncSync(fd);
            call.write({ flush: { id: command.flush.id } });
            break;
          case "pre_commit":
            // Everything put was written and flushed: all of it may be committed.
            call.write({ pre_commit: { id: command.pre_commit.id, offsets: command.pre_commit.offsets } });
            break;
          case "stop":
            if (fd !== null) fs.closeSync(fd);
            fd = null;
            call.write({ stopped: {} });
            call.end();
            break;
          default:
            break;
        }
      } catch (error) {
        call.write({ error: taskError(`${command.command} failed: ${error.message}`) });
      }
    });
    call.on("error", () => {});
  },
};

function main() {
  const server = new grpc.Server();
  server.addService(v2.Connector.service, connector);
  server.addService(v2.Source.service, source);
  server.addService(v2.Sink.service, sink);
  const address = process.env.WEIR_SIDECAR_SOCKET
    ? `unix:${process.env.WEIR_SIDECAR_SOCKET}`
    : process.env.WEIR_SIDECAR_ADDRESS || "127.0.0.1:50051";
  server.bindAsync(address, grpc.ServerCredentials.createInsecure(), (error) => {
    if (error) {
      console.error(`cannot listen on ${address}: ${error.message}`);
      process.exit(1);
    }
    console.log(`node file connectors listening on ${address}`);
  });
  const shutdown = () => server.tryShutdown(() => process.exit(0));
  process.on("SIGTERM", shutdown);
  process.on("SIGINT", shutdown);
}

main();
