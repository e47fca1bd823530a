// Downloads of what the page shows: the /predict answers as JSON, and one CSV row per design, metric, layer
// and step (with the 80 % band where the model gives one).

export function json(name, b, a) {
  const body = { design: name, b: { config: b.config, prediction: b.result } };
  if (a) body.a = { config: a.config, prediction: a.result };
  return JSON.stringify(body, null, 2);
}

const cell = (v) => (v == null ? "" : String(v));

export function csv(b, a) {
  const lines = ["design,metric,layer,step,value,low,high"];
  for (const [label, design] of [["B", b], ["A", a]]) {
    if (!design) continue;
    const { steps, layers } = design.result;
    for (const layer of layers) {
      for (const [metric, entry] of Object.entries(layer.metrics)) {
        steps.forEach((step, t) => {
          const band = entry.interval ? [entry.interval.low[t], entry.interval.high[t]] : [null, null];
          lines.push([label, metric, layer.layer, step, entry.curve[t], ...band].map(cell).join(","));
        });
      }
    }
  }
  return `${lines.join("\n")}\n`;
}

export function download(filename, text, type) {
  const url = URL.createObjectURL(new Blob([text], { type }));
  const link = document.createElement("a");
  link.href = url;
  link.download = filename;
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}
