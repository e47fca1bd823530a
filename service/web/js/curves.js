/* global uPlot */
// One metric's curves per layer over steps (uPlot, asinh step axis: linear to 1, log beyond, so step 0 is drawn; colour by layer): design B solid with its
// 80 % bands where the model gives them, pinned design A dashed. One layer's band is drawn at a time (the layer
// under the cursor; at first the one that ends highest): a band per layer, widened outside the training domain,
// would bury every curve under one blot, and the y axis spans the curves and that first band only.

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

// {data, series, bands, shape} for uPlot; shape changes when the chart must be rebuilt rather than refilled.
export function plotData(metric, b, a) {
  const data = [b.steps];
  const series = [{ label: "step" }];
  const bands = [];
  const L = b.layers.length;
  let top = 0; // the layer whose band is drawn at first: the one that ends highest (at the last step shown)
  let highest = -Infinity;
  b.layers.forEach((layer, l) => {
    const entry = layer.metrics[metric];
    const curve = entry.curve;
    const end = curve[curve.length - 1];
    if (end != null && end > highest) [top, highest] = [l, end];
    data.push(curve);
    series.push({ label: `B layer ${l + 1}`, stroke: layerColour(l + 1, L), width: 1.5, layer: l });
    if (entry.interval) {
      const high = data.push(entry.interval.high) - 1;
      series.push({ label: `B layer ${l + 1} 80% high`, stroke: "transparent", band: l });
      const low = data.push(entry.interval.low) - 1;
      series.push({ label: `B layer ${l + 1} 80% low`, stroke: "transparent", band: l });
      bands.push({ series: [high, low], fill: layerColour(l + 1, L, 0.18) });
    }
  });
  for (const s of series) if (s.band !== undefined) s.show = s.band === top;
  const sameSteps = a && JSON.stringify(a.steps) === JSON.stringify(b.steps);
  if (sameSteps) {
    a.layers.forEach((layer, l) => {
      data.push(layer.metrics[metric].curve);
      series.push({ label: `A layer ${l + 1}`, stroke: layerColour(l + 1, a.layers.length), width: 1, dash: [5, 4] });
    });
  }
  // the y extent: every curve and the first band (another layer's band, when shown, is clipped to it)
  const shown = data.slice(1).filter((_, i) => series[i + 1].band === undefined || series[i + 1].show);
  const values = shown.flat().filter((v) => v != null && Number.isFinite(v) && (!LOG_Y.has(metric) || v > 0));
  const extent = values.length ? [Math.min(...values), Math.max(...values)] : null;
  const shape = `${series.map((s) => s.label).join("|")}`;
  return { data, series, bands, shape, overlaid: Boolean(sameSteps), extent, top };
}

// Shows layer l's band (its two series) and hides the one shown before; redraws without firing the hooks.
function showBand(u, l) {
  if (l === u.bandLayer) return;
  u.series.forEach((s, i) => {
    if (s.band !== undefined && (s.band === l || s.band === u.bandLayer)) u.setSeries(i, { show: s.band === l }, false);
  });
  u.bandLayer = l;
}

function options(metric, plot, width, readout, holder) {
  let focused = null;
  const extent = (min, max) => holder.extent || [min, max];
  const describe = (u) => {
    const i = u.cursor.idx;
    if (i == null || focused == null) return "";
    return `step ${stepLabel(u.data[0][i])} · ${u.series[focused].label}: ${format(u.data[focused][i])}`;
  };
  return {
    width,
    height: HEIGHT,
    // x: exactly the steps predicted, on uPlot's asinh scale (linear up to 1, log beyond: step 0 has a place,
    // which a log axis does not give it); a log axis would also round out to whole decades
    scales: {
      x: { time: false, distr: 4, asinh: 1, range: (u, min, max) => [min, max] },
      // a log y axis would round out to whole decades too, leaving most of the plot empty; the extent is the
      // chart's own (draw() refreshes it), so that showing another layer's band does not move the axis
      y: LOG_Y.has(metric)
        ? { distr: 3, range: (u, min, max) => extent(min, max).map((v, i) => nice(v, i ? Math.ceil : Math.floor)) }
        : { range: (u, min, max) => uPlot.rangeNum(...extent(min, max), 0.1, true) },
    },
    axes: [
      // a log axis labels only some of its ticks: the others arrive as null
      { label: "training step (0, then log)", values: (u, ticks) => ticks.map((t) => (t == null ? "" : stepLabel(t))) },
      { label: LOG_Y.has(metric) ? `${metric} (log)` : metric, size: 64 },
    ],
    series: plot.series.map((s, i) =>
      i === 0 ? s : { ...s, points: { show: false }, ...(s.band !== undefined ? { width: 0 } : {}) },
    ),
    bands: plot.bands,
    legend: { show: false },
    cursor: { focus: { prox: 24 }, points: { show: false } },
    focus: { alpha: 0.35 },
    hooks: {
      setSeries: [(u, i) => {
        focused = i;
        readout.textContent = describe(u);
        // a band's own (transparent) series can take the focus too: it stands for its layer
        showBand(u, i == null ? holder.top : (u.series[i].layer ?? u.series[i].band ?? holder.top));
      }],
      setCursor: [(u) => { readout.textContent = describe(u); }],
    },
  };
}

// Draws into `target`, reusing the chart when only the numbers changed; returns the chart.
export function draw(chart, target, metric, plot, width, readout) {
  if (chart && chart.shape === plot.shape) {
    Object.assign(chart.holder, { extent: plot.extent, top: plot.top });
    showBand(chart, plot.top);
    chart.setData(plot.data);
    if (chart.width !== width) chart.setSize({ width, height: HEIGHT });
    return chart;
  }
  chart?.destroy();
  const holder = { extent: plot.extent, top: plot.top }; // what the chart's scale and hooks read of its data
  const created = new uPlot(options(metric, plot, width, readout, holder), plot.data, target);
  Object.assign(created, { shape: plot.shape, holder, bandLayer: plot.top });
  return created;
}
