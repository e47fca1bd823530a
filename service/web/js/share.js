// The design in the URL fragment (#design=<base64url JSON>), so a link reopens the same design and comparison.
// A fragment never reaches a server log, and configs are small (a few hundred bytes of JSON).

function encode(object) {
  const bytes = new TextEncoder().encode(JSON.stringify(object));
  let binary = "";
  for (const byte of bytes) binary += String.fromCharCode(byte);
  return btoa(binary).replaceAll("+", "-").replaceAll("/", "_").replace(/=+$/, "");
}

function decode(text) {
  const binary = atob(text.replaceAll("-", "+").replaceAll("_", "/"));
  return JSON.parse(new TextDecoder().decode(Uint8Array.from(binary, (c) => c.charCodeAt(0))));
}

// {name, b: config, a: config | undefined}
export function write(design) {
  history.replaceState(null, "", `#design=${encode(design)}`);
  return location.href;
}

// The design in the page's fragment, or null; throws on a fragment that is not one of ours.
export function read() {
  const match = location.hash.match(/^#design=([A-Za-z0-9_-]+)$/);
  if (!match) return null;
  const design = decode(match[1]);
  if (!design || typeof design.b !== "object") throw new Error("the link holds no design");
  return design;
}
