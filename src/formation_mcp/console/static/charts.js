// Line charts as inline SVG (no library, nothing from elsewhere; presentation attributes
// only, so the Content-Security-Policy's style-src holds): one series over its times.
const SVG = "http://www.w3.org/2000/svg";
const WIDTH = 320;
const HEIGHT = 120;
const PAD = 4;

function svg(tag, attributes = {}) {
  const node = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attributes)) node.setAttribute(key, String(value));
  return node;
}

// `values` may hold nulls (no measurement): the line breaks there, and the chart starts at
// the first measurement (a young instance's few minutes fill its width). `ceiling` fixes the
// top of the scale (a limit such as the memory size, drawn dashed), else the largest value.
export function lineChart(title, allValues, unit, ceiling) {
  const first = allValues.findIndex((v) => typeof v === "number");
  const values = first < 0 ? [] : allValues.slice(first);
  const present = values.filter((v) => typeof v === "number");
  const top = Math.max(ceiling ?? 0, ...present, 1e-9);
  const figure = document.createElement("figure");
  figure.className = "chart";
  const caption = document.createElement("figcaption");
  const last = present.length ? present[present.length - 1] : undefined;
  caption.textContent = `${title}: ${last === undefined ? "no samples" : `${round(last)} ${unit}`}`;
  const chart = svg("svg", {
    viewBox: `0 0 ${WIDTH} ${HEIGHT}`,
    role: "img",
    "aria-label": `${title}, ${present.length} points, at most ${round(Math.max(0, ...present))} ${unit}`,
    "data-points": present.length,
  });
  chart.append(svg("rect", { x: 0, y: 0, width: WIDTH, height: HEIGHT, fill: "#fff", stroke: "#d5d9e0" }));
  if (ceiling !== undefined) {
    chart.append(svg("line", { x1: 0, x2: WIDTH, y1: PAD, y2: PAD, stroke: "#c33", "stroke-dasharray": "4 3" }));
  }
  const scale = svg("text", { x: WIDTH - PAD, y: PAD + 12, "text-anchor": "end", "font-size": 11, fill: "#555" });
  scale.textContent = `${round(top)} ${unit}`;
  chart.append(scale);
  const step = values.length > 1 ? (WIDTH - 2 * PAD) / (values.length - 1) : 0;
  let segment = [];
  const flush = () => {
    if (segment.length > 1) {
      chart.append(svg("polyline", { points: segment.join(" "), fill: "none", stroke: "#2563eb", "stroke-width": 2 }));
    } else if (segment.length === 1) {
      const [x, y] = segment[0].split(",");
      chart.append(svg("circle", { cx: x, cy: y, r: 2, fill: "#2563eb" }));
    }
    segment = [];
  };
  values.forEach((value, index) => {
    if (typeof value !== "number") return flush();
    const x = PAD + index * step;
    const y = HEIGHT - PAD - (value / top) * (HEIGHT - 2 * PAD);
    segment.push(`${x.toFixed(1)},${y.toFixed(1)}`);
  });
  flush();
  figure.append(caption, chart);
  return figure;
}

function round(value) {
  return Math.abs(value) >= 10 ? value.toFixed(0) : value.toFixed(2);
}
