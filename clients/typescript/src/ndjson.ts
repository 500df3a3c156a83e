/**
 * Newline-delimited JSON, as Envoy streams a watch: one object per line, written as the
 * change happens. A line may arrive in pieces, and one piece may hold several lines.
 * No runtime dependency.
 */

/** The objects of an NDJSON byte stream, one per line (blank lines skipped). */
export async function* ndjsonObjects(body: ReadableStream<Uint8Array>): AsyncGenerator<Record<string, unknown>> {
  const reader = body.getReader();
  const decoder = new TextDecoder();
  let pending = "";
  try {
    for (;;) {
      const { done, value } = await reader.read();
      pending += done ? decoder.decode() : decoder.decode(value, { stream: true });
      const lines = pending.split("\n");
      pending = done ? "" : (lines.pop() ?? "");
      for (const line of lines) {
        if (line.trim() !== "") {
          yield parseLine(line);
        }
      }
      if (done) {
        return;
      }
    }
  } finally {
    await reader.cancel().catch(() => undefined);
  }
}

function parseLine(line: string): Record<string, unknown> {
  const value: unknown = JSON.parse(line);
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new SyntaxError(`an NDJSON line is not an object: ${line.slice(0, 100)}`);
  }
  return value as Record<string, unknown>;
}
