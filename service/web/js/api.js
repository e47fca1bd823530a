// The service's routes, and nothing else: every URL is relative to the page, which the service itself serves.

// A 4xx from the service: its RFC 9457 detail, and the input path it names (config.n_layer, ...) if any.
export class Problem extends Error {
  constructor(body, status) {
    super(body.detail || body.title || `HTTP ${status}`);
    this.field = body.field || null;
    this.status = status;
  }
}

const post = (body, signal) => ({
  method: "POST",
  headers: { "content-type": "application/json" },
  body: JSON.stringify(body),
  signal,
});

async function send(path, options) {
  const response = await fetch(path, options);
  let body;
  try {
    body = await response.json();
  } catch {
    body = { detail: `the service answered ${response.status} ${response.statusText} without JSON` };
  }
  if (!response.ok) throw new Problem(body, response.status);
  return body;
}

export const presets = () => send("presets");
export const knobs = (config) => send("knobs", post({ config }));
export const predict = (config, signal) => send("predict", post({ config }, signal));
