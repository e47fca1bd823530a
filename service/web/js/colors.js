// Colour maps: a sequential one (viridis' anchor colours) for layers and values, a diverging one for B − A.

const VIRIDIS = ["#440154", "#482878", "#3e4989", "#31688e", "#26828e", "#1f9e89", "#35b779", "#6ece58", "#b5de2b", "#fde725"];
const DIVERGING = ["#2166ac", "#67a9cf", "#d1e5f0", "#f7f7f7", "#fddbc7", "#ef8a62", "#b2182b"];

const rgb = (hex) => [1, 3, 5].map((i) => parseInt(hex.slice(i, i + 2), 16));

function ramp(anchors) {
  const colours = anchors.map(rgb);
  // t in [0, 1] → [r, g, b]; outside, the end colours
  return (t) => {
    const x = Math.min(1, Math.max(0, Number.isFinite(t) ? t : 0)) * (colours.length - 1);
    const i = Math.min(colours.length - 2, Math.floor(x));
    const f = x - i;
    return colours[i].map((c, k) => Math.round(c + f * (colours[i + 1][k] - c)));
  };
}

export const sequential = ramp(VIRIDIS);
export const diverging = ramp(DIVERGING);
export const css = ([r, g, b], alpha = 1) => `rgba(${r},${g},${b},${alpha})`;

// Layer ℓ of L: by relative depth, so layer colours mean the same in designs of different depth. The map's
// last tenth (pale yellow) is left out: it would vanish on white.
export const layerColour = (layer, layers, alpha = 1) =>
  css(sequential(layers > 1 ? (0.9 * (layer - 1)) / (layers - 1) : 0), alpha);
