// One section per metric: the summary sentence, the curves, the layer × step heatmap and, with A pinned,
// the B − A heatmap.

import { diverging, sequential } from "./colors.js";
import * as curves from "./curves.js";
import { colourBar, heatmap } from "./heatmap.js";

const ABOUT = {
  ma_ratio: "massive-activation ratio: the largest |h| of a layer's output over its median",
  linearity: "R² of the best linear map from the previous layer's output to this layer's",
  linearity_nores: "the same for the block's update (output minus input)",
};

const sections = new Map(); // metric → its elements and chart
export const charts = {}; // metric → the uPlot chart as drawn (the browser test reads its data)
export const heatmaps = {}; // metric → {b, diff}: the rows drawn on each heatmap

function make(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text) node.textContent = text;
  return node;
}

function colourBarRow(canvas, left, right, caption) {
  const row = make("div", "colorbar");
  row.append(left, canvas, right);
  if (caption) row.append(make("span", "caption", caption));
  return row;
}

function heatFigure(title, className) {
  const figure = make("figure", className);
  const canvas = make("canvas");
  canvas.setAttribute("role", "img");
  const bar = make("canvas");
  const low = make("span", "low");
  const high = make("span", "high");
  const note = make("p", "muted");
  figure.append(make("figcaption", "", title), canvas, colourBarRow(bar, low, high), note);
  return { figure, canvas, bar, low, high, note };
}

function create(metric) {
  const root = make("section", "metric");
  root.dataset.metric = metric;
  const heading = make("h2", "", metric);
  heading.append(" ", make("small", "", ABOUT[metric] || ""));
  const summaryB = make("p", "summary b");
  const summaryA = make("p", "summary a");
  const figure = make("figure", "curves");
  const chart = make("div", "chart");
  chart.setAttribute("role", "img");
  const layerBar = make("canvas");
  const first = make("span", "", "layer 1");
  const last = make("span");
  const readout = make("p", "readout");
  const legend =
    "colour: layer; B solid, A dashed; shaded: the 80 % interval of the layer under the cursor (at first, of the " +
    "layer that ends highest), where the model gives one";
  figure.append(chart, colourBarRow(layerBar, first, last, legend), readout);
  const heats = make("div", "heats");
  const b = heatFigure("B: layer × training step (0, then log)", "heat");
  const diff = heatFigure("B − A: layer × training step (0, then log)", "heat diff");
  heats.append(b.figure, diff.figure);
  root.append(heading, summaryB, summaryA, figure, heats);
  document.getElementById("metrics").append(root);
  return { root, summaryB, summaryA, chart, layerBar, last, readout, b, diff, plot: null };
}

const finite = (rows) => rows.flat().filter((v) => v != null && Number.isFinite(v));
const fmt = (v) => (Math.abs(v) >= 100 ? v.toFixed(0) : v.toPrecision(3));

function sentence(result, metric, label) {
  const found = (result?.summary || []).find((s) => s.metric === metric);
  return found ? `${label}: ${found.text}` : "";
}

function drawHeat(parts, rows, steps, map, low, high, width, label) {
  const height = Math.min(260, Math.max(120, rows.length * 9)) + 32;
  heatmap(parts.canvas, { steps, rows, map, low, high, width, height });
  colourBar(parts.bar, map, Math.max(40, Math.min(240, width - 140)));
  parts.low.textContent = fmt(low);
  parts.high.textContent = fmt(high);
  parts.canvas.setAttribute("aria-label", `${label}: ${rows.length} layers × ${steps.length} steps, ${fmt(low)} to ${fmt(high)}`);
}

// B's layer ℓ against A's layer at the same relative depth (the same layer when both have as many).
function matchDepth(bLayers, aLayers) {
  return Array.from({ length: bLayers }, (_, l) =>
    bLayers === aLayers ? l : Math.min(aLayers - 1, Math.max(0, Math.round(((l + 0.5) * aLayers) / bLayers - 0.5))),
  );
}

function renderMetric(parts, metric, b, a, width) {
  parts.summaryB.textContent = sentence(b, metric, "B");
  parts.summaryB.hidden = !parts.summaryB.textContent;
  parts.summaryA.textContent = sentence(a, metric, "A");
  parts.summaryA.hidden = !parts.summaryA.textContent;

  const plot = curves.plotData(metric, b, a);
  parts.plot = curves.draw(parts.plot, parts.chart, metric, plot, width, parts.readout);
  charts[metric] = parts.plot;
  parts.chart.setAttribute("aria-label", `${metric} over training steps, one curve per layer of B`);
  colourBar(parts.layerBar, (t) => sequential(0.9 * t), 160);
  parts.last.textContent = `layer ${b.layers.length}`;

  const steps = b.steps;
  const rows = b.layers.map((layer) => layer.metrics[metric].curve);
  const values = finite(rows);
  const heatWidth = plot.overlaid && width >= 720 ? Math.floor((width - 16) / 2) : width;
  drawHeat(parts.b, rows, steps, sequential, Math.min(...values), Math.max(...values), heatWidth, `${metric} of B`);
  heatmaps[metric] = { b: rows, diff: null };

  parts.diff.figure.hidden = !plot.overlaid;
  if (plot.overlaid) {
    const pairs = matchDepth(b.layers.length, a.layers.length);
    const diff = rows.map((row, l) =>
      row.map((v, t) => {
        const other = a.layers[pairs[l]].metrics[metric].curve[t];
        return v == null || other == null ? null : v - other;
      }),
    );
    const extent = Math.max(1e-12, ...finite(diff).map(Math.abs));
    drawHeat(parts.diff, diff, steps, diverging, -extent, extent, heatWidth, `${metric}, B minus A`);
    heatmaps[metric].diff = diff;
    parts.diff.note.textContent =
      b.layers.length === a.layers.length
        ? "blue: B lower than A; red: B higher"
        : `A has ${a.layers.length} layers, B ${b.layers.length}: layers matched by relative depth`;
  }
}

const contentWidth = (node) => {
  const style = getComputedStyle(node);
  return Math.floor(node.clientWidth - parseFloat(style.paddingLeft) - parseFloat(style.paddingRight));
};

// Draws every metric of B (and A, when pinned and predicted at the same steps).
export function render(b, a) {
  const metrics = Object.keys(b.layers[0].metrics);
  for (const [metric, parts] of sections) {
    if (!metrics.includes(metric)) {
      parts.plot?.destroy();
      parts.root.remove();
      sections.delete(metric);
      delete charts[metric];
    }
  }
  for (const metric of metrics) if (!sections.has(metric)) sections.set(metric, create(metric));
  const width = contentWidth(sections.get(metrics[0]).root);
  for (const metric of metrics) renderMetric(sections.get(metric), metric, b, a, width);
}
