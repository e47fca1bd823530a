// The what-if explorer: a design B edited knob by knob, one debounced /predict per change, and an optional
// pinned design A to compare with. Performance marks: "edit" at each change, "edit-to-redraw" from the last
// edit to the animation frame after the redraw (the browser test reads them), and its parts "predict-request"
// (the /predict round trip), "render" (drawing the answer) and "frame" (from there to the next frame).

import * as api from "./api.js";
import { clone, differences, setKey } from "./config.js";
import * as exporting from "./export.js";
import * as knobs from "./knobs.js";
import * as report from "./report.js";
import * as share from "./share.js";
import * as view from "./view.js";

// A held arrow key (auto-repeat every ~33 ms) asks once, when released, not at every step; a keystroke's redraw
// still comes well under what the eye notices.
const DEBOUNCE_MS = 40;

const state = { presets: [], name: "", original: null, config: null, knobs: null, result: null, pinned: null };
const $ = (id) => document.getElementById(id);
let timer = null; // the debounced /predict of the latest edit, until it starts
let inflight = null; // the AbortController of the /predict under way
let loading = false; // a new design's knobs are being asked for

// For the browser test and anyone curious: what is drawn, how often, and whether an answer is still due.
window.whatif = {
  state,
  charts: view.charts,
  heatmaps: view.heatmaps,
  renders: 0,
  idle: () => !loading && timer === null && inflight === null,
};

function status(text) {
  $("status").textContent = text;
}

function error(id, text) {
  $(id).textContent = text || "";
  $(id).hidden = !text;
}

function render() {
  view.render(state.result, state.pinned?.result);
  report.warnings(state.result, state.pinned?.result);
  report.mechanism(state.result, state.pinned?.result);
  report.differences(state.pinned ? differences(state.pinned.config, state.config) : []);
  $("link").value = share.write({ name: state.name, b: state.config, a: state.pinned?.config });
  window.whatif.renders += 1;
}

function measureRedraw(rendered) {
  performance.measure("frame", { start: rendered }); // what the browser did between our drawing and the frame
  if (performance.getEntriesByName("edit", "mark").length === 0) return;
  performance.measure("edit-to-redraw", "edit");
  performance.clearMarks("edit");
}

async function predictNow() {
  timer = null;
  inflight?.abort(); // an answer for an older edit must not overwrite a newer one
  const controller = new AbortController();
  inflight = controller;
  const started = performance.now();
  let result;
  try {
    result = await api.predict(state.config, controller.signal);
  } catch (problem) {
    if (controller !== inflight) return; // aborted: a newer request owns the page
    inflight = null;
    knobs.clearErrors();
    const beside = problem instanceof api.Problem && knobs.showError(problem);
    error("general-error", beside ? "" : problem.message);
    $("results").classList.add("stale");
    status("Design B is invalid (see the message beside the design); the plots show its last valid prediction.");
    return;
  }
  if (controller !== inflight) return;
  inflight = null;
  const answered = performance.now();
  performance.measure("predict-request", { start: started, end: answered });
  state.result = result;
  knobs.clearErrors();
  error("general-error", "");
  $("results").classList.remove("stale");
  render();
  const rendered = performance.now();
  performance.measure("render", { start: answered, end: rendered });
  requestAnimationFrame(() => measureRedraw(rendered));
  const ms = Math.round(performance.now() - started);
  status(`B: ${result.model_type}, ${result.n_layers} layers · model ${result.model_version} · answered in ${ms} ms`);
}

function onEdit(knob, value) {
  setKey(state.config, knob.key, value);
  knobs.syncKey(state.config, knob.key, knob.name);
  performance.mark("edit");
  clearTimeout(timer);
  timer = setTimeout(predictNow, DEBOUNCE_MS);
}

// A new design B from a preset, a pasted or dropped config, or a link; false when the service refuses it.
async function load(name, config) {
  let answer;
  loading = true;
  try {
    answer = await api.knobs(config);
  } catch (problem) {
    error("source-error", `${name}: ${problem.message}`);
    return false;
  } finally {
    loading = false;
  }
  error("source-error", "");
  Object.assign(state, { name, original: clone(config), config: clone(config), knobs: answer });
  knobs.build($("knob-list"), answer, onEdit);
  $("family").textContent = `${answer.model_type}, ${answer.position} positions`;
  await predictNow();
  return true;
}

function choose(name) {
  const select = $("preset");
  if (![...select.options].some((o) => o.value === name)) select.append(new Option(name, name));
  select.value = name;
}

async function loadText(name, text) {
  let config;
  try {
    config = JSON.parse(text);
  } catch (problem) {
    error("source-error", `${name} is not valid JSON: ${problem.message}`);
    return;
  }
  if (config === null || typeof config !== "object" || Array.isArray(config)) {
    error("source-error", `${name} must hold a JSON object (a config.json)`);
    return;
  }
  if (await load(name, config)) choose(name);
}

async function loadFile(file) {
  if (file) await loadText(file.name, await file.text());
}

function pin() {
  if (!state.result) return;
  state.pinned = { name: state.name, config: clone(state.config), result: state.result };
  $("unpin").hidden = false;
  $("pinned").textContent = `A: ${state.name} as it is now (${state.result.n_layers} layers). Edit B to compare.`;
  render();
}

function unpin() {
  state.pinned = null;
  $("unpin").hidden = true;
  $("pin").focus(); // the button just pressed is gone: keep the keyboard where it was
  $("pinned").textContent = "Pin a design, then edit B: both are drawn (A dashed) with B − A.";
  render();
}

function slug() {
  return state.name.replace(/\.json$/, "").replace(/[^A-Za-z0-9._-]+/g, "-") || "design";
}

function wire() {
  $("preset").addEventListener("change", (event) => {
    const preset = state.presets.find((p) => p.name === event.target.value);
    if (preset) load(preset.name, preset.config);
  });
  $("reset").addEventListener("click", () => load(state.name, state.original));
  $("use-paste").addEventListener("click", () => loadText("pasted config", $("paste").value));
  $("file").addEventListener("change", (event) => loadFile(event.target.files[0]));
  document.addEventListener("dragover", (event) => event.preventDefault());
  document.addEventListener("drop", (event) => {
    event.preventDefault();
    loadFile(event.dataTransfer.files[0]);
  });
  $("knobs").addEventListener("submit", (event) => event.preventDefault()); // Enter in a knob: no reload
  $("domain-more").addEventListener("click", report.toggleDomain);
  $("pin").addEventListener("click", pin);
  $("unpin").addEventListener("click", unpin);
  $("copy-link").addEventListener("click", () => {
    $("link").select();
    navigator.clipboard?.writeText($("link").value).then(() => status("Link copied."), () => {});
  });
  $("download-json").addEventListener("click", () =>
    exporting.download(`archcast-${slug()}.json`, exporting.json(state.name, state, state.pinned), "application/json"),
  );
  $("download-csv").addEventListener("click", () =>
    exporting.download(`archcast-${slug()}.csv`, exporting.csv(state, state.pinned), "text/csv"),
  );
  let width = 0;
  new ResizeObserver(() => {
    const now = $("metrics").clientWidth;
    if (state.result && now !== width) requestAnimationFrame(render);
    width = now;
  }).observe($("metrics"));
}

async function start() {
  wire();
  try {
    state.presets = await api.presets();
  } catch (problem) {
    status(`The service did not list its presets: ${problem.message}`);
    return;
  }
  for (const preset of state.presets) $("preset").append(new Option(preset.name, preset.name));
  let shared = null;
  try {
    shared = share.read();
  } catch (problem) {
    error("source-error", `The link's design could not be read: ${problem.message}`);
  }
  if (shared?.a) {
    try {
      state.pinned = { name: "A", config: shared.a, result: await api.predict(shared.a) };
      $("unpin").hidden = false;
      $("pinned").textContent = "A: the pinned design of the link.";
    } catch (problem) {
      error("source-error", `The link's design A: ${problem.message}`);
    }
  }
  if (shared && (await load(shared.name || "shared link", shared.b))) choose(shared.name || "shared link");
  else await load(state.presets[0].name, state.presets[0].config);
}

start();
