#!/usr/bin/env node
// hookhost-build APP.js -o PLUGIN.wasm [--wit DIR]: build a plugin component.
//
// Bundles the app with esbuild (the SDK and any npm packages it imports, with the
// `hookhost-component` condition so the SDK calls the real host), then wraps componentize-js
// with hookhost's WIT (default: the repository's wit/ beside this SDK) and world `plugin`,
// every WASI feature of the engine off: the sandbox grants no stdio, clock, randomness or
// network, so a plugin must not count on them.

import { realpathSync } from "node:fs";
import { mkdtemp, rm, writeFile, mkdir } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";

const SDK_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const DEFAULT_WIT = resolve(SDK_ROOT, "..", "wit");
const DISABLED = ["stdio", "random", "clocks", "http", "fetch-event"];

/** Bundle `app` and componentize it into `out`. */
export async function build(app, out, wit = DEFAULT_WIT) {
  const esbuild = await import("esbuild");
  const { componentize } = await import("@bytecodealliance/componentize-js");
  const bundled = await esbuild.build({
    entryPoints: [resolve(app)],
    bundle: true,
    format: "esm",
    platform: "neutral",
    mainFields: ["module", "main"],
    conditions: ["hookhost-component"],
    external: ["hookhost:*"],
    write: false,
    logLevel: "warning",
  });
  const work = await mkdtemp(join(tmpdir(), "hookhost-build-"));
  try {
    const sourcePath = join(work, "app.js");
    await writeFile(sourcePath, bundled.outputFiles[0].contents);
    const { component } = await componentize({ sourcePath, witPath: resolve(wit), worldName: "plugin", disableFeatures: DISABLED });
    await mkdir(dirname(resolve(out)), { recursive: true });
    await writeFile(out, component);
    return component.length;
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

// Run as a command (also through node_modules/.bin's symlink), not imported.
if (process.argv[1] && realpathSync(process.argv[1]) === realpathSync(fileURLToPath(import.meta.url))) {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: { output: { type: "string", short: "o" }, wit: { type: "string", default: DEFAULT_WIT } },
  });
  if (positionals.length !== 1 || !values.output) {
    console.error("usage: hookhost-build APP.js -o PLUGIN.wasm [--wit DIR]");
    process.exit(2);
  }
  const bytes = await build(positionals[0], values.output, values.wit);
  console.error(`wrote ${values.output} (${bytes} bytes)`);
}
