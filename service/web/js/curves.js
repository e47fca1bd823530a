/* global uPlot */
// One metric's curves per layer over steps (uPlot, log step axis, colour by layer): design B solid with its
// 80 % bands where the model gives them, pinned design A dashed.

import { layerColour } from "./colors.js";
import { stepLabel } from "./heatmap.js";

const HEIGHT = 280;
const LOG_Y = new Set(["ma_ratio"]); // a ratio ≥ 1 that spans decades; linearity scores live in [0, 1]

const format = (v) => (v == null ? "–" : Math.abs(v) >= 100 ? v.toFixed(1) : v.toPrecision(3));

// The 1-2-5 number at or beyond v (round: Math.floor below it, Math.ceil above): the ends of a log axis.
function nice(v, round) {
  const decade = 10 ** Math.floor(Math.log10(v));
  const steps = [1, 2, 5, 10];
  const pick = round === Math.floor ? steps.filter((s) => s * decade <= v).pop() : steps.find((s) => s * decade >= v);
  return pick * decade;
}

// Only steps > 0 fit a log axis: the indices of those steps.
export const positive = (steps) => steps.map((s, i) => (s > 0 ? i : -1)).filter((i) => i >= 0);

// {data, series, bands, shape} for uPlot; shape changes when the chart must be rebuilt rather than refilled.
export function plotData(metric, b, a) {
  const keep = positive(b.steps);
  const pick = (values) => keep.map((i) => values[i]);
  const data = [pick(b.steps)];
  const series = [{ label: "step" }];
  const bands = [];
  const L = b.layers.length;
  b.layers.forEach((layer, l) => {
    const entry = layer.metrics[metric];
    data.push(pick(entry.curve));
    series.push({ label: `B layer ${l + 1}`, stroke: layerColour(l + 1, L), width: 1.5 });
    if (entry.interval) {
      const high = data.push(pick(entry.interval.high)) - 1;
      series.push({ label: `B layer ${l + 1} 80% high`, stroke: "transparent", band: true });
      const low = data.push(pick(entry.interval.low)) - 1;
      series.push({ label: `B layer ${l + 1} 80% low`, stroke: "transparent", band: true });
      bands.push({ series: [high, low], fill: layerColour(l + 1, L, 0.12) });
    }
  });
  const sameSteps = a && JSON.stringify(a.steps) === JSON.stringify(b.steps);
  if (sameSteps) {
    a.layers.forEach((layer, l) => {
      data.push(pick(layer.metrics[metric].curve));
      series.push({ label: `A layer ${l + 1}`, stroke: layerColour(l + 1, a.layers.length), width: 1, dash: [5, 4] });
    });
  }
  const shape = `${series.map((s) => s.label).join("|")}`;
  return { data, series, bands, shape, overlaid: Boolean(sameSteps) };
}

function options(metric, plot, width, readout) {
  let focused = null;
  const describe = (u) => {
    const i = u.cursor.idx;
    if (i == null || focused == null) return "";
    return `step ${stepLabel(u.data[0][i])} · ${u.series[focused].label}: ${format(u.data[focused][i])}`;
  };
  return {
    width,
    height: HEIGHT,
    // x: exactly the steps predicted (a log axis would otherwise round out to whole decades)
    scales: {
      x: { time: false, distr: 3, range: (u, min, max) => [min, max] },
      // a log y axis would round out to whole decades too, leaving most of the plot empty
      y: LOG_Y.has(metric) ? { distr: 3, range: (u, min, max) => [nice(min, Math.floor), nice(max, Math.ceil)] } : {},
    },
    axes: [
      // a log axis labels only some of its ticks: the others arrive as null
      { label: "training step (log)", values: (u, ticks) => ticks.map((t) => (t == null ? "" : stepLabel(t))) },
      { label: LOG_Y.has(metric) ? `${metric} (log)` : metric, size: 64 },
    ],
    series: plot.series.map((s, i) =>
      i === 0 ? s : { ...s, points: { show: false }, ...(s.band ? { width: 0 } : {}) },
    ),
    bands: plot.bands,
    legend: { show: false },
    cursor: { focus: { prox: 24 }, points: { show: false } },
    focus: { alpha: 0.35 },
    hooks: {
      setSeries: [(u, i) => { focused = i; readout.textContent = describe(u); }],
      setCursor: [(u) => { readout.textContent = describe(u); }],
    },
  };
}

// Draws into `target`, reusing the chart when only the numbers changed; returns the chart.
export function draw(chart, target, metric, plot, width, readout) {
  if (chart && chart.shape === plot.shape) {
    chart.setData(plot.data);
    if (chart.width !== width) chart.setSize({ width, height: HEIGHT });
    return chart;
  }
  chart?.destroy();
  const created = new uPlot(options(metric, plot, width, readout), plot.data, target);
  created.shape = plot.shape;
  return created;
}
