// The design's knobs: one labelled input per knob of POST /knobs, each writing one config key, with the
// service's error shown beside the knob whose key it names.

import { getKey } from "./config.js";

const inputs = new Map(); // knob name → {knob, input, error}

function element(tag, attributes = {}, text = "") {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, value);
  if (text) node.textContent = text;
  return node;
}

function show(input, knob) {
  if (knob.kind === "bool") input.checked = Boolean(knob.value);
  else if (knob.kind === "choice") input.value = knob.value;
  else if (knob.set || knob.value === null) input.value = knob.value ?? "";
  else {
    input.value = ""; // not in the config: the family's default applies, and shows as the placeholder
    input.placeholder = `${knob.value}`;
  }
}

// The value to write, undefined to remove the key, or null when the input holds no number yet ("1e").
function valueOf(input, kind) {
  if (kind === "bool") return input.checked;
  if (kind === "choice") return input.value;
  if (input.validity.badInput) return null;
  return input.value === "" ? undefined : Number(input.value);
}

function knobElement(knob, onEdit) {
  const id = `k-${knob.name}`;
  const wrap = element("div", { class: `knob ${knob.kind}`, "data-knob": knob.name });
  const label = element("label", { for: id }, knob.label);
  let input;
  if (knob.kind === "choice") {
    input = element("select", { id });
    for (const option of knob.options) input.append(element("option", { value: option }, option));
  } else if (knob.kind === "bool") {
    input = element("input", { id, type: "checkbox" });
  } else {
    input = element("input", { id, type: "number", min: "0", step: knob.kind === "int" ? "1" : "any" });
    if (knob.kind === "int") input.setAttribute("inputmode", "numeric");
  }
  const key = element("small", { id: `${id}-key`, class: "key" });
  const describeKey = (set) => (knob.key ? `${knob.key}${set ? "" : " · family default"}` : (knob.note ?? ""));
  key.textContent = describeKey(knob.set);
  const error = element("p", { id: `${id}-error`, class: "error", role: "alert", hidden: "" });
  input.setAttribute("aria-describedby", `${id}-key ${id}-error`);
  input.disabled = !knob.key;
  input.dataset.key = knob.key ?? "";
  show(input, knob);
  const event = knob.kind === "bool" || knob.kind === "choice" ? "change" : "input";
  input.addEventListener(event, () => {
    const value = valueOf(input, knob.kind);
    if (value === null) return;
    key.textContent = describeKey(value !== undefined);
    follow(knob.name, value);
    onEdit(knob, value);
  });
  if (knob.kind === "bool") wrap.append(input, label, key, error);
  else wrap.append(label, input, key, error);
  inputs.set(knob.name, { knob, input, error });
  return wrap;
}

export function build(container, answer, onEdit) {
  inputs.clear();
  container.replaceChildren(...answer.knobs.map((knob) => knobElement(knob, onEdit)));
}

// After an edit: other knobs that write the same key (OPT's enable_bias sets both biases) show the new value.
export function syncKey(config, key, except) {
  for (const { knob, input } of inputs.values()) {
    if (knob.key !== key || knob.name === except) continue;
    const value = getKey(config, key);
    if (knob.kind === "bool") input.checked = Boolean(value);
    else input.value = value ?? "";
  }
}

// Defaults that follow another knob while unset (an FFN of 4 × width, as many KV heads as heads), by the rule
// POST /knobs gave: their placeholders show the value the service will use.
function follow(leader, value) {
  for (const { knob, input } of inputs.values()) {
    if (knob.follows?.knob !== leader || input.value !== "") continue;
    input.placeholder = typeof value === "number" ? String(Math.round(value * knob.follows.times)) : "";
  }
}

export function clearErrors() {
  for (const { input, error } of inputs.values()) {
    error.hidden = true;
    error.textContent = "";
    input.removeAttribute("aria-invalid");
  }
}

// Shows the service's detail beside each knob that writes the key the problem names; false when none does.
export function showError(problem) {
  const key = (problem.field || "").replace(/^config\./, "");
  let shown = false;
  for (const { knob, input, error } of inputs.values()) {
    if (!key || knob.key !== key) continue;
    error.textContent = problem.message;
    error.hidden = false;
    input.setAttribute("aria-invalid", "true");
    shown = true;
  }
  return shown;
}
