// Renders widget outputs through VS Code's widget host (@vscode/jupyter-ipywidgets8), bootstrapped
// as VS Code's notebook webview bootstraps it. Two modes:
// - saved notebook (default): reads `notebook.json` beside the page, {widgets: <the notebook's
//   metadata.widgets>, outputs: [<widget-view+json of each output>]}, and renders it, no kernel;
// - live (`?server=<url>&token=<token>`): starts a kernel on that Jupyter server, hands the
//   connection to the manager as VS Code hands it its proxy kernel, and renders every widget
//   output of the code run by `window.__run(code)`.
// Progress and failures go to window.__host ({done, errors, log}) for the test to read.
import { activate } from "./ipywidgets.js";

const WIDGET_VIEW = "application/vnd.jupyter.widget-view+json";
const host = { done: false, errors: [], log: [] };
window.__host = host;
const logger = (message) => host.log.push(String(message));

// VS Code's ScriptManager: when the manager cannot load a widget's module, it asks the extension
// host for the module's source; for a local kernel that is `<prefix>/share/jupyter/nbextensions/
// <module>/index.js`, which the webview registers in require.js (a path without ".js").
const registered = new Set();
const scriptLoader = {
  widgetsRegisteredInRequireJs: registered,
  async loadWidgetScript(moduleName, moduleVersion) {
    logger(`script source requested: ${moduleName}@${moduleVersion}`);
    const url = `nbextensions/${moduleName}/index.js`;
    const found = await fetch(url, { method: "HEAD" });
    if (!found.ok) throw new Error(`no local nbextension for ${moduleName}`);
    window.requirejs.config({ paths: { [moduleName]: url.slice(0, -3) } });
    registered.add(moduleName);
  },
  successHandler(className, moduleName, moduleVersion) {
    logger(`loaded ${moduleName}@${moduleVersion} ${className}`);
  },
  errorHandler(className, moduleName, moduleVersion, error) {
    host.errors.push(`failed to load ${moduleName}@${moduleVersion} ${className}: ${error}`);
  },
};

// VS Code creates its proxy kernel with empty ids when it only restores a notebook's widget
// state; the manager then asks that kernel for nothing.
const signal = () => ({ connect: () => true, disconnect: () => true });
const offlineKernel = {
  id: "",
  clientId: "",
  username: "",
  name: "",
  status: "unknown",
  connectionStatus: "disconnected",
  statusChanged: signal(),
  connectionStatusChanged: signal(),
  iopubMessage: signal(),
  unhandledMessage: signal(),
  anyMessage: signal(),
  disposed: signal(),
  registerCommTarget() {},
  removeCommTarget() {},
  createComm() {
    throw new Error("no kernel: the notebook's widget state is shown without one");
  },
  requestCommInfo: async () => ({ content: { comms: {} } }),
};

async function renderOutput(manager, data, container) {
  // VS Code's renderer: a div per output, then get_model / create_view / display_view.
  const el = document.createElement("div");
  el.className = "cell-output-ipywidget-background";
  container.append(el);
  const model = await manager.get_model(data.model_id);
  model.comm_live = false; // widget state from a notebook: no live kernel
  const view = await manager.create_view(model, { el });
  view.initialize({ model, el, options: {} }); // as VS Code does for a notebook's state
  await manager.display_view(data, view, { node: el });
}

function loadHost() {
  window.requirejs.config({ map: { "*": { "jupyter-js-widgets": "@jupyter-widgets/base" } } });
  activate();
  window.vscIPyWidgets8.load();
  return window.vscIPyWidgets.WidgetManager;
}

async function renderLive(manager, data, container) {
  const el = document.createElement("div");
  el.className = "cell-output-ipywidget-background";
  container.append(el);
  const model = await manager.get_model(data.model_id);
  const view = await manager.create_view(model, { el });
  await manager.display_view(data, view, { node: el });
}

async function live(server, token) {
  const { KernelManager, ServerConnection } = await import("./services.js");
  const serverSettings = ServerConnection.makeSettings({
    baseUrl: server,
    wsUrl: server.replace(/^http/, "ws"),
    token,
    appendToken: true,
  });
  const kernel = await new KernelManager({ serverSettings }).startNew({ name: "python3" });
  const WidgetManager = loadHost();
  const container = document.getElementById("outputs");
  const manager = new WidgetManager(kernel, container, scriptLoader, logger, undefined);
  // VS Code renders a widget output when the display message arrives, after the comm_open
  // that created its model.
  kernel.iopubMessage.connect((_, msg) => {
    const data = msg.content?.data?.[WIDGET_VIEW];
    if (!data) return;
    renderLive(manager, data, container).catch((error) =>
      host.errors.push(`output ${data.model_id}: ${error?.stack ?? error}`),
    );
  });
  window.__run = async (code) => {
    const reply = await kernel.requestExecute({ code }).done;
    const { status, ename, evalue } = reply.content;
    return status === "ok" ? "ok" : `${status}: ${ename}: ${evalue}`;
  };
}

async function main() {
  const params = new URLSearchParams(location.search);
  if (params.get("server")) {
    await live(params.get("server"), params.get("token"));
    return;
  }
  const notebook = await (await fetch("notebook.json")).json();
  const WidgetManager = loadHost();
  const container = document.getElementById("outputs");
  const manager = new WidgetManager(offlineKernel, container, scriptLoader, logger, notebook.widgets);
  const model = {
    metadata: { get: (key) => notebook.widgets && key === "widgets" && notebook.widgets },
    getMetadata: (key) => (key === "widgets" ? notebook.widgets : undefined),
  };
  await manager.restoreWidgets(model, { loadKernel: false, loadNotebook: true });
  for (const data of notebook.outputs) {
    try {
      await renderOutput(manager, data, container);
    } catch (error) {
      host.errors.push(`output ${data.model_id}: ${error?.stack ?? error}`);
    }
  }
}

main()
  .catch((error) => host.errors.push(String(error?.stack ?? error)))
  .finally(() => {
    host.done = true;
  });
