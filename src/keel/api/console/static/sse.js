/* Server-sent events read from a fetch() response body, so that the request can carry the bearer token as a header
 * (a browser's EventSource cannot send one, and a token in the URL would end up in logs and history). */

/* Calls `onEvent({event, id, data, retry})` for each event of `body` (a ReadableStream) until it ends; comments
 * (the server's keep-alives) are skipped. Resolves when the stream ends, rejects when it breaks or is aborted. */
export async function readEvents(body, onEvent) {
  const reader = body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const chunk = await reader.read();
    if (chunk.done) return;
    buffer += decoder.decode(chunk.value, { stream: true }).replace(/\r\n?/g, "\n");
    let cut;
    while ((cut = buffer.indexOf("\n\n")) >= 0) {
      const frame = parse(buffer.slice(0, cut));
      buffer = buffer.slice(cut + 2);
      if (frame) onEvent(frame);
    }
  }
}

/* One event's lines as {event, id, data, retry}; null for a frame of comments or of a retry alone. */
export function parse(text) {
  const frame = { event: "message", id: null, data: null, retry: null };
  const data = [];
  for (const line of text.split("\n")) {
    if (!line || line[0] === ":") continue;
    const at = line.indexOf(":");
    const field = at < 0 ? line : line.slice(0, at);
    const value = at < 0 ? "" : line.slice(at + 1).replace(/^ /, "");
    if (field === "event") frame.event = value;
    else if (field === "data") data.push(value);
    else if (field === "id") frame.id = value;
    else if (field === "retry" && /^\d+$/.test(value)) frame.retry = Number(value);
  }
  if (frame.retry === null && !data.length) return null;
  frame.data = data.length ? data.join("\n") : null;
  return frame;
}
