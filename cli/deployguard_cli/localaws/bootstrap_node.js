// The Node.js runtime's part, run as `node <this file> <spec JSON>` in the function's own process
// (the Node counterpart of bootstrap.py; lambda_runner starts it): load the Handler (`file.export`:
// CommonJS require, ESM `.mjs` or `"type": "module"` through dynamic import), then call it with each
// event and a context shaped like the Node runtime's (async and callback handlers), and answer what
// it returns (or the runtime's error payload). console.* lines are written as the Node runtime
// writes them: `<ISO time>\t<request id>\t<LEVEL>\t<message>`, to stdout, which the runner keeps as
// the log. Shapes and error types follow aws-lambda-nodejs-runtime-interface-client.
// Two ways to run, as the spec says:
// - one invocation (the runner's fresh mode): write init's logged byte count to the ready pipe, take
//   the event from stdin, write the answer to the result file and exit;
// - `serve` (the runner's pool mode): a warm execution environment. After init it sends
//   {"ready": <init's logged bytes>} (or {"init_error": …} and exits), then serves invocations one
//   at a time: it reads a request ({request_id, invoked_function_arn, client_context, timeout_ms,
//   event}) from the request fd, sends {"started": <request id>}, runs the handler and sends
//   {"result": {payload | error, duration_ms}}. Messages are JSON, each after its byte length
//   (4 bytes, big-endian). Module state carries over from one invocation to the next, as on Lambda.
//   Between invocations it blocks in a synchronous read, so what the last one left pending (a
//   timer, a socket) runs only once the next one has arrived, as in an environment Lambda froze.
//   An uncaught exception or unhandled rejection answers the invocation and ends the process
//   ({"result": …, "exiting": true}, exit 129), as the runtime does; so does process.exit (no
//   result: the runner answers Runtime.ExitError). The end of the request pipe ends the process.
// The AWS SDK the runtime ships (node_sdk.py installs it and puts it on NODE_PATH, after the
// function's own modules and its layers): the v2 `aws-sdk` gets a global config that points it at
// the embedded AWS (v3 reads AWS_ENDPOINT_URL itself); on nodejs18.x and later, ES modules find
// packages on NODE_PATH as on Lambda; a package that could not be installed fails with the reason.
"use strict";

const fs = require("fs");
const Module = require("module");
const path = require("path");
const util = require("util");
const { pathToFileURL } = require("url");

const spec = JSON.parse(process.argv[2]);
const sdk = spec.runtime_sdk || { missing: {} };
let requestId = undefined;
let onEmptyLoop = null; // what the current invocation does when the event loop empties

const LEVELS = { log: "INFO", info: "INFO", warn: "WARN", error: "ERROR", debug: "DEBUG", trace: "TRACE" };
for (const [name, level] of Object.entries(LEVELS)) {
  console[name] = (...args) => {
    const message = util.format(...args).replace(/\n/g, "\r");
    fs.writeSync(1, `${new Date().toISOString()}\t${requestId}\t${level}\t${message}\n`);
  };
}

class Fault extends Error {
  constructor(kind, message, trace) {
    super(message);
    this.kind = kind;
    this.trace = trace;
  }
}

// A "Cannot find module 'x/y'" / "Cannot find package 'x'" message with, after its first line,
// why the SDK package it names is not here (not shipped by this runtime, or not installable).
function withSdkHint(message) {
  const text = String(message);
  const named = /Cannot find (?:module|package) '([^']+)'/.exec(text);
  if (named === null) {
    return text;
  }
  const parts = named[1].split("/");
  const name = named[1].startsWith("@") ? parts.slice(0, 2).join("/") : parts[0];
  if (!Object.prototype.hasOwnProperty.call(sdk.missing, name)) {
    return text;
  }
  const end = text.indexOf("\n");
  return end < 0 ? `${text}\n${sdk.missing[name]}` : `${text.slice(0, end)}\n${sdk.missing[name]}${text.slice(end)}`;
}

// The runtime's aws-sdk v2 at the embedded AWS: its global config (which node_loader.js replaces
// when it first loads, hence the check on each load) gets the endpoint etc. A function that bundles
// its own aws-sdk loads that copy, which is left alone.
function configureSdkV2(root, config) {
  const within = root + path.sep;
  const load = Module._load;
  let configured = null;
  Module._load = function loadAndConfigure(request, parent, isMain) {
    const loaded = load.apply(this, arguments);
    if (request === "aws-sdk" || request.startsWith("aws-sdk/")) {
      let file = "";
      try {
        file = Module._resolveFilename(request, parent, isMain);
      } catch (err) {
        file = "";
      }
      const AWS = file.startsWith(within) ? load(path.join(root, "lib", "core.js"), null, false) : null;
      if (AWS && AWS.config && AWS.config !== configured) {
        AWS.config.update(config);
        configured = AWS.config;
      }
    }
    return loaded;
  };
}

// ES modules do not read NODE_PATH; on nodejs18.x and later Lambda lets them import the SDK and
// layers' packages, so a resolve hook tries NODE_PATH's folders after the usual lookup fails.
// NOTE: registered only when the handler is an ES module and there is a NODE_PATH (it starts a
// hooks thread: tens of milliseconds).
let esmHooked = false;
function resolveEsmOnNodePath() {
  const folders = (process.env.NODE_PATH || "").split(path.delimiter).filter(Boolean);
  if (esmHooked || !sdk.esm_resolves_node_path || folders.length === 0 || !Module.register) {
    return;
  }
  esmHooked = true;
  const hook = `
    let parents = [];
    export async function initialize(data) { parents = data.parents; }
    export async function resolve(specifier, context, next) {
      try {
        return await next(specifier, context);
      } catch (err) {
        if (!err || err.code !== "ERR_MODULE_NOT_FOUND" || /^(\\.|\\/|[a-z]+:)/.test(specifier)) {
          throw err;
        }
        for (const parentURL of parents) {
          try {
            return await next(specifier, { ...context, parentURL });
          } catch (again) {}
        }
        throw err;
      }
    }`;
  // each folder is a node_modules: resolving from a file beside it looks there
  const parents = folders.map((folder) => pathToFileURL(path.join(path.dirname(folder), "_.js")).href);
  Module.register(`data:text/javascript,${encodeURIComponent(hook)}`, { data: { parents } });
}

async function importModule(file) {
  resolveEsmOnNodePath();
  return import(pathToFileURL(file).href);
}

function errorOf(err) {
  if (err instanceof Fault) {
    return { errorType: err.kind, errorMessage: err.message, trace: err.trace || [] };
  }
  if (err instanceof Error) {
    return {
      errorType: err.name || "Error",
      errorMessage: withSdkHint(err.message),
      // this file's frames are left out, as the runtime's own are on Lambda
      trace: String(err.stack || "")
        .split("\n")
        .filter((line) => !line.includes(__filename)),
    };
  }
  return { errorType: typeof err, errorMessage: String(err), trace: [] };
}

function logError(result, title) {
  const record = { errorType: result.errorType, errorMessage: result.errorMessage, stack: result.trace };
  // NOTE: "\t" + JSON, as the runtime client's Errors.toFormatted: "Invoke Error \t{...}"
  console.error(title, "\t" + JSON.stringify(record));
}

function writeResult(result) {
  fs.writeFileSync(spec.result_path, JSON.stringify(result));
}

// --- the serve protocol: JSON messages, each after its byte length (4 bytes, big-endian) --------

const pause = new Int32Array(new SharedArrayBuffer(4));

function readExactly(fd, size) {
  const buffer = Buffer.alloc(size);
  let filled = 0;
  while (filled < size) {
    let read;
    try {
      read = fs.readSync(fd, buffer, filled, size - filled, null);
    } catch (err) {
      if (err && (err.code === "EAGAIN" || err.code === "EINTR")) {
        Atomics.wait(pause, 0, 0, 5);
        continue;
      }
      if (err && err.code === "EOF") {
        return null;
      }
      throw err;
    }
    if (read === 0) {
      return null;
    }
    filled += read;
  }
  return buffer;
}

// The next request, or null once the runner closed the request pipe.
function receive() {
  const header = readExactly(spec.request_fd, 4);
  const body = header === null ? null : readExactly(spec.request_fd, header.readUInt32BE(0));
  return body === null ? null : JSON.parse(body.toString("utf8"));
}

function send(message) {
  const body = Buffer.from(JSON.stringify(message), "utf8");
  const frame = Buffer.alloc(4 + body.length);
  frame.writeUInt32BE(body.length, 0);
  body.copy(frame, 4);
  let written = 0;
  while (written < frame.length) {
    try {
      written += fs.writeSync(spec.status_fd, frame, written, frame.length - written);
    } catch (err) {
      if (err && (err.code === "EAGAIN" || err.code === "EINTR")) {
        Atomics.wait(pause, 0, 0, 5);
        continue;
      }
      throw err;
    }
  }
}

function moduleFile(root, name) {
  for (const ext of [".js", ".mjs", ".cjs"]) {
    const candidate = path.resolve(root, name + ext);
    if (fs.existsSync(candidate)) {
      return candidate;
    }
  }
  return null;
}

async function loadHandler(root, handler) {
  const base = path.basename(handler);
  const dot = base.indexOf(".");
  if (dot < 1 || dot === base.length - 1) {
    throw new Fault("Runtime.MalformedHandlerName", "Bad handler");
  }
  const moduleName = handler.slice(0, handler.length - base.length + dot);
  const exportPath = base.slice(dot + 1);
  const file = moduleFile(root, moduleName);
  let loaded;
  try {
    if (file === null) {
      const error = new Error(`Cannot find module '${moduleName}'`);
      error.code = "MODULE_NOT_FOUND";
      throw error;
    }
    if (file.endsWith(".mjs")) {
      loaded = await importModule(file);
    } else {
      try {
        loaded = require(file);
      } catch (err) {
        if (err && err.code === "ERR_REQUIRE_ESM") {
          loaded = await importModule(file);
        } else {
          throw err;
        }
      }
    }
  } catch (err) {
    if (err instanceof SyntaxError) {
      throw new Fault("Runtime.UserCodeSyntaxError", `${err.name}: ${err.message}`, String(err.stack).split("\n"));
    }
    if (err && (err.code === "MODULE_NOT_FOUND" || err.code === "ERR_MODULE_NOT_FOUND")) {
      const message = withSdkHint(`Error: ${err.message}`);
      throw new Fault("Runtime.ImportModuleError", message, String(err.stack).split("\n"));
    }
    throw err;
  }
  let found = loaded;
  for (const part of exportPath.split(".")) {
    found = found === undefined || found === null ? undefined : found[part];
  }
  if (typeof found !== "function") {
    throw new Fault("Runtime.HandlerNotFound", `${moduleName}.${exportPath} is undefined or not exported`);
  }
  return found;
}

function makeContext(request, deadlineMs, finish) {
  const env = process.env;
  const context = {
    callbackWaitsForEmptyEventLoop: true,
    functionName: env.AWS_LAMBDA_FUNCTION_NAME,
    functionVersion: env.AWS_LAMBDA_FUNCTION_VERSION,
    invokedFunctionArn: request.invoked_function_arn,
    memoryLimitInMB: env.AWS_LAMBDA_FUNCTION_MEMORY_SIZE,
    awsRequestId: request.request_id,
    logGroupName: env.AWS_LAMBDA_LOG_GROUP_NAME,
    logStreamName: env.AWS_LAMBDA_LOG_STREAM_NAME,
    identity: undefined,
    clientContext: request.client_context === null ? undefined : request.client_context,
    getRemainingTimeInMillis: () => Math.max(deadlineMs - Date.now(), 0),
    done: (err, result) => finish(err, result),
    succeed: (result) => finish(null, result),
    fail: (err) => finish(err === undefined || err === null ? "handled" : err),
  };
  return context;
}

function readStdin() {
  try {
    return fs.readFileSync(0);
  } catch (err) {
    if (err && err.code === "EAGAIN") {
      return Buffer.alloc(0);
    }
    throw err;
  }
}

// What the current invocation answers with when something escapes its handler (null between
// invocations and during init).
let answerUncaught = null;

// One invocation: the handler with the event `raw` (JSON text); `respond` gets the answer once:
// {payload} or {error}, with the handler's duration.
function invoke(handler, request, raw, respond) {
  requestId = request.request_id;
  const started = process.hrtime.bigint();
  const elapsed = () => Number(process.hrtime.bigint() - started) / 1e6;
  let done = false;
  const finish = (err, result) => {
    if (done) {
      return;
    }
    done = true;
    onEmptyLoop = null;
    answerUncaught = null;
    if (err !== undefined && err !== null) {
      const failure = errorOf(err);
      logError(failure, "Invoke Error");
      respond({ error: failure, duration_ms: elapsed() });
      return;
    }
    let payload;
    try {
      payload = JSON.stringify(result === undefined ? null : result);
    } catch (marshal) {
      const failure = { errorType: "Runtime.MarshalError", errorMessage: `Unable to stringify response body`, trace: [] };
      logError(failure, "Invoke Error");
      respond({ error: failure, duration_ms: elapsed() });
      return;
    }
    respond({ payload, duration_ms: elapsed() });
  };
  answerUncaught = (failure) => {
    done = true;
    respond({ error: failure, duration_ms: elapsed() }, true);
  };
  try {
    const event = raw.trim() ? JSON.parse(raw) : {};
    const context = makeContext(request, Date.now() + request.timeout_ms, finish);
    const answer = handler(event, context, finish);
    if (answer && typeof answer.then === "function") {
      answer.then((result) => finish(null, result), (err) => finish(err === undefined ? "undefined" : err));
    } else if (handler.length < 3) {
      // NOTE: a non-async handler without a callback parameter answers what it returned
      finish(null, answer);
    } else if (!done) {
      // a callback handler whose event loop empties without calling back answers null, as on Lambda
      onEmptyLoop = () => finish(null, null);
    }
  } catch (err) {
    finish(err);
  }
}

// The warm environment's loop: one request at a time, until the runner closes the request pipe.
function serveNext(handler) {
  const request = receive();
  if (request === null) {
    process.exit(0);
  }
  send({ started: request.request_id });
  requestId = request.request_id;
  const respond = (result, exiting) => {
    send(exiting ? { result, exiting: true } : { result });
    if (!exiting) {
      // NOTE: not at once: what the handler's answer queued (microtasks, ready I/O) runs first
      setImmediate(() => serveNext(handler));
    }
  };
  answerUncaught = (failure) => respond({ error: failure }, true);
  // NOTE: on the loop's next turn, so that what the last invocation left due (a timer) runs
  // first, inside this invocation, as it does in an environment Lambda thaws
  setImmediate(() => invoke(handler, request, request.event, respond));
}

async function main() {
  if (sdk.v2_root) {
    configureSdkV2(sdk.v2_root, sdk.v2_config);
  }
  let handler;
  try {
    handler = await loadHandler(spec.task_root, spec.handler);
  } catch (err) {
    const failure = errorOf(err);
    logError(failure, "Uncaught Exception");
    if (spec.serve) {
      send({ init_error: failure });
    } else {
      writeResult({ error: failure });
    }
    process.exit(1);
  }
  // what init wrote: stdout and stderr share this file
  let logged = -1;
  try {
    logged = fs.fstatSync(1).size;
  } catch (err) {
    logged = -1;
  }
  process.on("uncaughtException", (err) => finishUncaught(err));
  process.on("unhandledRejection", (reason) => finishUncaught(reason));
  process.on("beforeExit", () => {
    if (onEmptyLoop !== null) {
      onEmptyLoop();
    }
  });
  if (spec.serve) {
    send({ ready: logged });
    serveNext(handler);
    return;
  }
  fs.writeSync(spec.ready_fd, `${logged}\n`);
  fs.closeSync(spec.ready_fd);
  invoke(handler, spec, readStdin().toString("utf8"), (result, exiting) => {
    writeResult(result);
    process.exit(exiting ? 129 : 0);
  });
}

function finishUncaught(err) {
  const failure = errorOf(err);
  logError(failure, "Uncaught Exception");
  if (answerUncaught !== null) {
    answerUncaught(failure);
  } else if (!spec.serve) {
    writeResult({ error: failure });
  }
  process.exit(129);
}

main();
