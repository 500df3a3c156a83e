/** The REST entry point loads nothing but Node.js: no protobuf, no gRPC, no package at all. */

import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";

const IMPORT = /(?:^|\n)\s*(?:import|export)\s[^'"]*?from\s*["']([^"']+)["']|(?:^|\n)\s*import\s*["']([^"']+)["']/g;

/** Every module specifier reachable from `entry` through relative imports. */
function reachable(entry: string): { files: string[]; packages: string[] } {
  const files: string[] = [];
  const packages = new Set<string>();
  const queue = [entry];
  while (queue.length > 0) {
    const file = queue.pop() as string;
    if (files.includes(file)) {
      continue;
    }
    files.push(file);
    for (const match of readFileSync(file, "utf8").matchAll(IMPORT)) {
      const specifier = match[1] ?? match[2] ?? "";
      if (specifier.startsWith(".")) {
        queue.push(resolve(dirname(file), specifier));
      } else {
        packages.add(specifier);
      }
    }
  }
  return { files, packages: [...packages].sort() };
}

test("the REST entry point imports only node: modules", () => {
  const here = dirname(fileURLToPath(import.meta.url));
  const { files, packages } = reachable(resolve(here, "../src/rest.js"));
  assert.ok(files.some((file) => file.endsWith("rest_backend.js")), files.join("\n"));
  assert.deepEqual(
    packages.filter((name) => !name.startsWith("node:")),
    [],
  );
});

test("the gRPC entry point does use the generated code and connect", () => {
  const here = dirname(fileURLToPath(import.meta.url));
  const { files, packages } = reachable(resolve(here, "../src/index.js"));
  assert.ok(files.some((file) => file.endsWith("tools_pb.js")));
  assert.ok(packages.includes("@connectrpc/connect-node"));
});
