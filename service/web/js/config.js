// Editing a config.json by dotted key ("n_layer", "archcast.glu"), and what differs between two of them.

export const clone = (value) => JSON.parse(JSON.stringify(value));

export function getKey(config, key) {
  return key.split(".").reduce((node, part) => (node == null ? undefined : node[part]), config);
}

// undefined removes the key: the family's default applies again.
export function setKey(config, key, value) {
  const parts = key.split(".");
  let node = config;
  for (const part of parts.slice(0, -1)) {
    if (node[part] === null || typeof node[part] !== "object") node[part] = {};
    node = node[part];
  }
  const last = parts[parts.length - 1];
  if (value === undefined) delete node[last];
  else node[last] = value;
}

function flatten(config, prefix = "", out = {}) {
  for (const [key, value] of Object.entries(config || {})) {
    const path = prefix + key;
    if (value !== null && typeof value === "object" && !Array.isArray(value)) flatten(value, `${path}.`, out);
    else out[path] = value;
  }
  return out;
}

// [{key, a, b}] for each key whose value differs (absent: undefined), in key order.
export function differences(a, b) {
  const fa = flatten(a);
  const fb = flatten(b);
  const keys = [...new Set([...Object.keys(fa), ...Object.keys(fb)])].sort();
  return keys
    .filter((k) => JSON.stringify(fa[k]) !== JSON.stringify(fb[k]))
    .map((key) => ({ key, a: fa[key], b: fb[key] }));
}
