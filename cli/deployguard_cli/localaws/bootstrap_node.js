// The Node.js runtime's part in one invocation, run as `node <this file> <spec JSON>` in the
// function's own process (the Node counterpart of bootstrap.py; same protocol with lambda_runner):
// load the Handler (`file.export`: CommonJS require, ESM `.mjs` or `"type": "module"` through
// dynamic import), write init's logged byte count to the ready pipe, call the handler with the
// event from stdin and a context shaped like the Node runtime's (async and callback handlers),
// and write the answer (or the runtime's error payload) to the result file. console.* lines are
// written as the Node runtime writes them: `<ISO time>\t<request id>\t<LEVEL>\t<message>`.
// Shapes and error types follow aws-lambda-nodejs-runtime-interface-client. One process per
// invocation: there is no fork server for Node.
"use strict";

const fs = require("fs");
const path = require("path");
const util = require("util");
const { pathToFileURL } = require("url");

const spec = JSON.parse(process.argv[2]);
let requestId = undefined;

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

function errorOf(err) {
  if (err instanceof Fault) {
    return { errorType: err.kind, errorMessage: err.message, trace: err.trace || [] };
  }
  if (err instanceof Error) {
    return {
      errorType: err.name || "Error",
      errorMessage: err.message,
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
      loaded = await import(pathToFileURL(file).href);
    } else {
      try {
        loaded = require(file);
      } catch (err) {
        if (err && err.code === "ERR_REQUIRE_ESM") {
          loaded = await import(pathToFileURL(file).href);
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
      throw new Fault("Runtime.ImportModuleError", `Error: ${err.message}`, String(err.stack).split("\n"));
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

function makeContext(deadlineMs, finish) {
  const env = process.env;
  const context = {
    callbackWaitsForEmptyEventLoop: true,
    functionName: env.AWS_LAMBDA_FUNCTION_NAME,
    functionVersion: env.AWS_LAMBDA_FUNCTION_VERSION,
    invokedFunctionArn: spec.invoked_function_arn,
    memoryLimitInMB: env.AWS_LAMBDA_FUNCTION_MEMORY_SIZE,
    awsRequestId: spec.request_id,
    logGroupName: env.AWS_LAMBDA_LOG_GROUP_NAME,
    logStreamName: env.AWS_LAMBDA_LOG_STREAM_NAME,
    identity: undefined,
    clientContext: spec.client_context === null ? undefined : spec.client_context,
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

function invoke(handler) {
  requestId = spec.request_id;
  const raw = readStdin().toString("utf8");
  const started = process.hrtime.bigint();
  const elapsed = () => Number(process.hrtime.bigint() - started) / 1e6;
  let done = false;
  const finish = (err, result) => {
    if (done) {
      return;
    }
    done = true;
    if (err !== undefined && err !== null) {
      const failure = errorOf(err);
      logError(failure, "Invoke Error");
      writeResult({ error: failure, duration_ms: elapsed() });
      process.exit(0);
    }
    let payload;
    try {
      payload = JSON.stringify(result === undefined ? null : result);
    } catch (marshal) {
      const failure = { errorType: "Runtime.MarshalError", errorMessage: `Unable to stringify response body`, trace: [] };
      logError(failure, "Invoke Error");
      writeResult({ error: failure, duration_ms: elapsed() });
      process.exit(0);
    }
    writeResult({ payload, duration_ms: elapsed() });
    process.exit(0);
  };
  try {
    const event = raw.trim() ? JSON.parse(raw) : {};
    const context = makeContext(Date.now() + spec.timeout_ms, finish);
    const answer = handler(event, context, finish);
    if (answer && typeof answer.then === "function") {
      answer.then((result) => finish(null, result), (err) => finish(err === undefined ? "undefined" : err));
    } else if (handler.length < 3) {
      // NOTE: a non-async handler without a callback parameter answers what it returned
      finish(null, answer);
    } else {
      // a callback handler whose event loop empties without calling back answers null, as on Lambda
      process.on("beforeExit", () => finish(null, null));
    }
  } catch (err) {
    finish(err);
  }
}

async function main() {
  let handler;
  try {
    handler = await loadHandler(spec.task_root, spec.handler);
  } catch (err) {
    const failure = errorOf(err);
    logError(failure, "Uncaught Exception");
    writeResult({ error: failure });
    process.exit(1);
  }
  // what init wrote: stdout and stderr share this file
  let logged = -1;
  try {
    logged = fs.fstatSync(1).size;
  } catch (err) {
    logged = -1;
  }
  fs.writeSync(spec.ready_fd, `${logged}\n`);
  fs.closeSync(spec.ready_fd);
  process.on("uncaughtException", (err) => finishUncaught(err));
  process.on("unhandledRejection", (reason) => finishUncaught(reason));
  invoke(handler);
}

function finishUncaught(err) {
  const failure = errorOf(err);
  logError(failure, "Uncaught Exception");
  writeResult({ error: failure });
  process.exit(129);
}

main();
