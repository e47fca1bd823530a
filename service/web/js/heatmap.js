// A layer × step heatmap on a plain canvas (steps on the same asinh axis as the curves), and colour bars.

import { css } from "./colors.js";

const MARGIN = { left: 52, right: 10, top: 6, bottom: 26 };
const FONT = "11px system-ui, sans-serif";

function sized(canvas, width, height) {
  const ratio = window.devicePixelRatio || 1;
  canvas.width = Math.round(width * ratio);
  canvas.height = Math.round(height * ratio);
  canvas.style.width = `${width}px`;
  canvas.style.height = `${height}px`;
  const context = canvas.getContext("2d");
  context.setTransform(ratio, 0, 0, ratio, 0, 0);
  return context;
}

// Column edges half-way between neighbouring steps on the axis, so each step owns the span around it.
function edges(positions) {
  const p = positions;
  if (p.length === 1) return [p[0] - 0.5, p[0] + 0.5];
  const n = p.length;
  const inner = p.slice(1).map((v, i) => (v + p[i]) / 2);
  return [p[0] - (p[1] - p[0]) / 2, ...inner, p[n - 1] + (p[n - 1] - p[n - 2]) / 2];
}

export const stepLabel = (step) => (step >= 1000 ? `${step / 1000}k` : `${step}`);

// The curves' step axis (uPlot's asinh scale with a linear part up to 1): 0 at 0, close to a log axis beyond 10.
const onAxis = (step) => Math.asinh(step);

// rows[l][t]: layer l + 1 at steps[t] (all ≥ 0); map: [0, 1] → rgb over [low, high]; nulls stay grey.
export function heatmap(canvas, { steps, rows, map, low, high, width, height }) {
  const context = sized(canvas, width, height);
  context.clearRect(0, 0, width, height);
  const plotWidth = width - MARGIN.left - MARGIN.right;
  const plotHeight = height - MARGIN.top - MARGIN.bottom;
  const bounds = edges(steps.map(onAxis));
  const span = bounds[bounds.length - 1] - bounds[0];
  const x = (position) => MARGIN.left + ((position - bounds[0]) / span) * plotWidth;
  const rowHeight = plotHeight / rows.length;
  const scale = high > low ? high - low : 1;
  rows.forEach((row, l) => {
    const top = MARGIN.top + plotHeight - (l + 1) * rowHeight; // layer 1 at the bottom
    row.forEach((value, t) => {
      context.fillStyle = value == null ? "#ddd" : css(map((value - low) / scale));
      const left = x(bounds[t]);
      context.fillRect(left, top, x(bounds[t + 1]) - left + 0.5, rowHeight + 0.5);
    });
  });
  context.fillStyle = "#333";
  context.font = FONT;
  context.textAlign = "center";
  context.textBaseline = "top";
  const ticks = [0, 1, 10, 100, 1e3, 1e4, 1e5, 1e6].filter((t) => onAxis(t) >= bounds[0] && onAxis(t) <= bounds[bounds.length - 1]);
  for (const tick of ticks) {
    const at = x(onAxis(tick));
    context.fillRect(at, MARGIN.top + plotHeight, 1, 4);
    context.fillText(stepLabel(tick), at, MARGIN.top + plotHeight + 6);
  }
  context.textAlign = "right";
  context.textBaseline = "middle";
  const layers = [...new Set([1, Math.ceil(rows.length / 2), rows.length])];
  for (const layer of layers) {
    context.fillText(`layer ${layer}`, MARGIN.left - 4, MARGIN.top + plotHeight - (layer - 0.5) * rowHeight);
  }
}

// A horizontal colour bar of the map from 0 (left) to 1 (right); its labels are HTML beside it.
export function colourBar(canvas, map, width, height = 12) {
  const context = sized(canvas, width, height);
  for (let i = 0; i < width; i++) {
    context.fillStyle = css(map(i / Math.max(1, width - 1)));
    context.fillRect(i, 0, 1.5, height);
  }
}
