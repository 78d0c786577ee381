// Weir's web console: plain JavaScript over Kafka Connect's REST API (and
// Weir's /runners and tap). No build step; the coordinator serves it at /ui.
"use strict";

const REFRESH_MS = 2000;
const TAP_KEEP = 200;

/** Builds an element; children are nodes or text (never parsed as HTML). */
function el(tag, attributes, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes || {})) {
    if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else if (value !== undefined && value !== null && value !== false) node.setAttribute(name, value);
  }
  for (const child of children.flat()) {
    if (child !== undefined && child !== null) node.append(child);
  }
  return node;
}

const enc = encodeURIComponent;

/** Calls the REST API; a refusal throws with Kafka Connect's message. */
async function api(method, path, body) {
  const options = { method, headers: { Accept: "application/json" } };
  if (body !== undefined) {
    options.headers["Content-Type"] = "application/json";
    options.body = JSON.stringify(body);
  }
  const response = await fetch(path, options);
  const text = await response.text();
  let parsed = null;
  try { parsed = text ? JSON.parse(text) : null; } catch (_) { parsed = text; }
  if (!response.ok) {
    const message = parsed && parsed.message ? parsed.message : `HTTP ${response.status}`;
    throw new Error(`${message} (HTTP ${response.status})`);
  }
  return parsed;
}

function say(text, isError) {
  const message = document.getElementById("message");
  message.textContent = text;
  message.className = isError ? "error" : "";
}

function stateBadge(state) {
  return el("span", { class: `state state-${state}` }, state || "UNASSIGNED");
}

/** Connector config names whose details the user opened, kept across refreshes. */
const openConfigs = new Set();
let connectors = {};

function actionButton(name, action, label, disabled) {
  return el("button", {
    type: "button",
    "data-action": action,
    disabled,
    onclick: (event) => act(name, action, event.currentTarget),
  }, label);
}

async function act(name, action, button) {
  if (action === "delete" && !button.classList.contains("confirm")) {
    // A second click within three seconds deletes.
    button.classList.add("confirm");
    button.textContent = "Delete?";
    setTimeout(() => { button.classList.remove("confirm"); button.textContent = "Delete"; }, 3000);
    return;
  }
  if (action === "edit") {
    const info = connectors[name].info || {};
    document.getElementById("editor").value =
      JSON.stringify({ name, config: info.config || {} }, null, 2);
    document.getElementById("editor-result").replaceChildren();
    document.getElementById("editor-section").scrollIntoView();
    return;
  }
  const calls = {
    pause: ["PUT", `/connectors/${enc(name)}/pause`],
    resume: ["PUT", `/connectors/${enc(name)}/resume`],
    stop: ["PUT", `/connectors/${enc(name)}/stop`],
    restart: ["POST", `/connectors/${enc(name)}/restart?includeTasks=true&onlyFailed=false`],
    delete: ["DELETE", `/connectors/${enc(name)}`],
  };
  try {
    await api(...calls[action]);
    say(`${action}: ${name}`);
  } catch (error) {
    say(`${action} ${name}: ${error.message}`, true);
  }
  refresh();
}

function connectorRows(name, entry) {
  const status = entry.status || {};
  const info = entry.info || {};
  const connector = status.connector || {};
  const tasks = (status.tasks || []).slice().sort((a, b) => a.id - b.id);
  const taskCells = tasks.map((task) =>
    el("span", { class: "task", "data-task": task.id }, `${task.id}: `, stateBadge(task.state)));
  const actions = [
    actionButton(name, "pause", "Pause", connector.state === "PAUSED"),
    actionButton(name, "resume", "Resume", connector.state === "RUNNING"),
    actionButton(name, "stop", "Stop", connector.state === "STOPPED"),
    actionButton(name, "restart", "Restart"),
    actionButton(name, "edit", "Edit"),
    actionButton(name, "delete", "Delete"),
  ];
  const rows = [el("tr", { class: "connector", "data-connector": name },
    el("td", { class: "name" }, name),
    el("td", {}, status.type || info.type || ""),
    el("td", { class: "connector-state" }, stateBadge(connector.state)),
    el("td", {}, connector.worker_id || ""),
    el("td", { class: "tasks" }, taskCells.length ? taskCells : "none"),
    el("td", { class: "actions" }, actions))];
  const failures = [];
  if (connector.state === "FAILED") failures.push(["connector", connector.trace]);
  for (const task of tasks) {
    if (task.state === "FAILED") failures.push([`task ${task.id}`, task.trace]);
  }
  const details = el("details", {
    ontoggle: (event) => event.currentTarget.open ? openConfigs.add(name) : openConfigs.delete(name),
  }, el("summary", {}, "config"), el("pre", { class: "config" }, JSON.stringify(info.config || {}, null, 2)));
  details.open = openConfigs.has(name);
  rows.push(el("tr", { class: "detail", "data-connector": name },
    el("td", { colspan: 6 },
      failures.map(([what, trace]) => el("div", { class: "failure" },
        el("strong", {}, `${what} FAILED`),
        el("pre", { class: "trace" }, trace || "(no trace)"))),
      details)));
  return rows;
}

function renderConnectors() {
  const body = document.querySelector("#connectors tbody");
  const names = Object.keys(connectors).sort();
  body.replaceChildren(...names.flatMap((name) => connectorRows(name, connectors[name])));
  document.getElementById("no-connectors").hidden = names.length > 0;
  const select = document.getElementById("tap-connector");
  const chosen = select.value;
  select.replaceChildren(...names.map((name) => el("option", { value: name }, name)));
  if (names.includes(chosen)) select.value = chosen;
}

function renderRunners(runners) {
  const body = document.querySelector("#runners tbody");
  body.replaceChildren(...runners.map((runner) => el("tr", { "data-runner": runner.id },
    el("td", {}, runner.id),
    el("td", {}, runner.coordinator),
    el("td", {}, (runner.connectors || []).join(", ")),
    el("td", {}, (runner.tasks || []).join(", ")))));
}

let refreshing = false;
let refreshAgain = false;
let lastSeen = null;
let clusterUnreadable = false;

async function refresh() {
  if (refreshing) {
    // An action's refresh must not be lost behind a periodic one.
    refreshAgain = true;
    return;
  }
  refreshing = true;
  try {
    connectors = await api("GET", "/connectors?expand=status&expand=info") || {};
    let runners = [];
    try {
      runners = await api("GET", "/runners") || [];
    } catch (_) {
      // Not a Weir cluster, or no runner yet: no runners to show.
    }
    // Rows are rebuilt only when something changed, so a click never lands
    // on a row that is being replaced.
    const seen = JSON.stringify([connectors, runners]);
    if (seen !== lastSeen) {
      lastSeen = seen;
      renderConnectors();
      renderRunners(runners);
    }
    document.getElementById("refreshed").textContent =
      `refreshed ${new Date().toLocaleTimeString()}`;
    if (clusterUnreadable) say("");
    clusterUnreadable = false;
  } catch (error) {
    clusterUnreadable = true;
    say(`Cannot read the cluster: ${error.message}`, true);
  } finally {
    refreshing = false;
    if (refreshAgain) {
      refreshAgain = false;
      refresh();
    }
  }
}

/** The editor's connector, or an error shown inline. */
function editedConnector() {
  const result = document.getElementById("editor-result");
  let parsed;
  try {
    parsed = JSON.parse(document.getElementById("editor").value);
  } catch (error) {
    result.replaceChildren(el("p", { class: "error" }, `Not JSON: ${error.message}`));
    return null;
  }
  const config = parsed && parsed.config;
  if (!parsed || typeof parsed.name !== "string" || !parsed.name || typeof config !== "object" || !config) {
    result.replaceChildren(el("p", { class: "error" },
      'Expected {"name": "...", "config": {...}}'));
    return null;
  }
  if (!config["connector.class"]) {
    result.replaceChildren(el("p", { class: "error" }, "config needs connector.class"));
    return null;
  }
  return parsed;
}

async function validate() {
  const connector = editedConnector();
  if (!connector) return false;
  const result = document.getElementById("editor-result");
  const config = Object.assign({}, connector.config, { name: connector.name });
  try {
    const answer = await api("PUT",
      `/connector-plugins/${enc(config["connector.class"])}/config/validate`, config);
    const problems = (answer.configs || [])
      .filter((c) => c.value && c.value.errors && c.value.errors.length)
      .map((c) => el("li", { class: "error", "data-key": c.value.name },
        `${c.value.name}: ${c.value.errors.join("; ")}`));
    if (problems.length) {
      result.replaceChildren(el("p", { class: "error" },
        `${answer.error_count} error(s) in ${answer.name}:`), el("ul", {}, problems));
      return false;
    }
    result.replaceChildren(el("p", { class: "ok" }, `Valid (${answer.name}).`));
    return true;
  } catch (error) {
    result.replaceChildren(el("p", { class: "error" }, error.message));
    return false;
  }
}

async function save() {
  if (!(await validate())) return;
  const connector = editedConnector();
  const result = document.getElementById("editor-result");
  try {
    await api("PUT", `/connectors/${enc(connector.name)}/config`, connector.config);
    result.replaceChildren(el("p", { class: "ok" }, `Saved ${connector.name}.`));
    refresh();
  } catch (error) {
    result.replaceChildren(el("p", { class: "error" }, error.message));
  }
}

let tap = null;

function tapLine(record) {
  let where = `task ${record.task} ${record.topic}`;
  if (record.partition !== null && record.partition !== undefined) where += `[${record.partition}]`;
  if (record.offset !== null && record.offset !== undefined) where += `@${record.offset}`;
  const line = el("li", { class: "record", title: record.runner ? `on runner ${record.runner}` : undefined },
    `${where} key=${JSON.stringify(record.key)} value=${JSON.stringify(record.value)}`);
  if (record.skipped_before > 0) {
    line.prepend(el("span", { class: "skipped" }, `(${record.skipped_before} not shown) `));
  }
  return line;
}

function stopTap(state) {
  if (tap) tap.close();
  tap = null;
  document.getElementById("tap-start").disabled = false;
  document.getElementById("tap-stop").disabled = true;
  const shown = document.getElementById("tap-state");
  shown.textContent = state || "";
  delete shown.dataset.open;
}

/** Why a tap could not open: the cluster's own message, read with a plain request. */
async function tapRefusal(url) {
  const controller = new AbortController();
  try {
    const response = await fetch(url, { signal: controller.signal, headers: { Accept: "application/json" } });
    if (response.ok) return "the tap closed";
    const body = await response.json().catch(() => ({}));
    return `${body.message || "refused"} (HTTP ${response.status})`;
  } catch (error) {
    return `cannot reach the cluster: ${error.message}`;
  } finally {
    controller.abort();
  }
}

function startTap() {
  const name = document.getElementById("tap-connector").value;
  const point = document.getElementById("tap-point").value;
  if (!name) return;
  stopTap();
  document.getElementById("tap-records").replaceChildren();
  const url = `/connectors/${enc(name)}/tap?point=${enc(point)}`;
  const source = new EventSource(url);
  tap = source;
  document.getElementById("tap-start").disabled = true;
  document.getElementById("tap-stop").disabled = false;
  document.getElementById("tap-state").textContent = `opening a tap on ${name} at ${point}`;
  source.addEventListener("open", () => {
    // The coordinator answers once the runners attached the tap.
    const shown = document.getElementById("tap-state");
    shown.textContent = `tapping ${name} at ${point}`;
    shown.dataset.open = "true";
  });
  source.addEventListener("record", (event) => {
    const list = document.getElementById("tap-records");
    list.prepend(tapLine(JSON.parse(event.data)));
    while (list.children.length > TAP_KEEP) list.lastChild.remove();
  });
  source.addEventListener("ended", (event) => stopTap(`the tap ended: ${event.data}`));
  source.addEventListener("error", async () => {
    if (tap !== source) return;
    if (source.readyState === EventSource.CONNECTING) {
      const shown = document.getElementById("tap-state");
      shown.textContent = `reconnecting to the tap on ${name}…`;
      delete shown.dataset.open;
      return;
    }
    const reason = await tapRefusal(url);
    if (tap === source) stopTap(`no tap: ${reason}`);
  });
}

document.getElementById("validate").addEventListener("click", validate);
document.getElementById("save").addEventListener("click", save);
document.getElementById("tap-start").addEventListener("click", startTap);
document.getElementById("tap-stop").addEventListener("click", () => stopTap("stopped"));
document.getElementById("cluster").textContent = location.host;
refresh();
setInterval(refresh, REFRESH_MS);
