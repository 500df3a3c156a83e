/** Reading a watch's newline-delimited JSON, whatever pieces it arrives in. */

import assert from "node:assert/strict";
import { test } from "node:test";

import { ndjsonObjects } from "../src/ndjson.js";

function streamOf(...chunks: string[]): ReadableStream<Uint8Array> {
  const encoder = new TextEncoder();
  return new ReadableStream({
    start(controller) {
      for (const chunk of chunks) {
        controller.enqueue(encoder.encode(chunk));
      }
      controller.close();
    },
  });
}

async function read(stream: ReadableStream<Uint8Array>): Promise<unknown[]> {
  const objects: unknown[] = [];
  for await (const object of ndjsonObjects(stream)) {
    objects.push(object);
  }
  return objects;
}

test("lines split across chunks and chunks holding several lines", async () => {
  const objects = await read(streamOf('{"a":', '1}\n{"a":2}\n{"a"', ':3}\n\n{"a":"é"}'));
  assert.deepEqual(objects, [{ a: 1 }, { a: 2 }, { a: 3 }, { a: "é" }]);
});

test("a multi-byte character split between chunks", async () => {
  const bytes = new TextEncoder().encode('{"a":"é"}\n');
  const stream = new ReadableStream<Uint8Array>({
    start(controller) {
      controller.enqueue(bytes.slice(0, 7));
      controller.enqueue(bytes.slice(7));
      controller.close();
    },
  });
  assert.deepEqual(await read(stream), [{ a: "é" }]);
});

test("a line that is not an object is an error", async () => {
  await assert.rejects(read(streamOf("[1]\n")), SyntaxError);
});
