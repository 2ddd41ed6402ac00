// Line plots in SVG: one path per series (a task, or a run in a comparison), with axes, a few
// ticks, a hover title on every point, and a legend.
const SVG = "http://www.w3.org/2000/svg";
export const COLORS = ["#3b6fd8", "#d64545", "#2f9e5b", "#d99a1e", "#8a4fd0", "#1f9fb3", "#c2477e", "#6b7384"];

function el(tag, attrs = {}, text) {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  if (text !== undefined) node.textContent = text;
  return node;
}

function ticks(lo, hi, n = 5) {
  if (lo === hi) return [lo];
  const raw = (hi - lo) / n;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => s >= raw) || raw;
  const out = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) out.push(+v.toPrecision(12));
  return out;
}

function fmt(v) {
  if (Math.abs(v) >= 1e5 || (Math.abs(v) < 1e-3 && v !== 0)) return v.toExponential(2);
  return String(+v.toPrecision(4));
}

// series: [{label, points: [[x, y], ...]}]
export function renderPlot(name, series, { width = 520, height = 240 } = {}) {
  const wrap = document.createElement("div");
  const m = { l: 52, r: 14, t: 12, b: 30 };
  const all = series.flatMap((s) => s.points);
  const xs = all.map((p) => p[0]), ys = all.map((p) => p[1]);
  let [x0, x1] = [Math.min(...xs), Math.max(...xs)];
  let [y0, y1] = [Math.min(...ys), Math.max(...ys)];
  if (x0 === x1) { x0 -= 1; x1 += 1; }
  if (y0 === y1) { const d = Math.abs(y0) * 0.1 || 1; y0 -= d; y1 += d; }
  const X = (x) => m.l + ((x - x0) / (x1 - x0)) * (width - m.l - m.r);
  const Y = (y) => height - m.b - ((y - y0) / (y1 - y0)) * (height - m.t - m.b);
  const svg = el("svg", { class: "plot", "data-metric": name, "data-series": series.length, width, height, viewBox: `0 0 ${width} ${height}`, role: "img" });
  svg.append(el("title", {}, `metric ${name}`));
  for (const t of ticks(y0, y1)) {
    svg.append(el("line", { class: "grid", x1: m.l, x2: width - m.r, y1: Y(t), y2: Y(t) }));
    svg.append(el("text", { x: m.l - 6, y: Y(t) + 4, "text-anchor": "end" }, fmt(t)));
  }
  for (const t of ticks(x0, x1, 6)) {
    svg.append(el("text", { x: X(t), y: height - m.b + 16, "text-anchor": "middle" }, fmt(t)));
  }
  svg.append(el("line", { class: "axis", x1: m.l, x2: width - m.r, y1: height - m.b, y2: height - m.b }));
  svg.append(el("line", { class: "axis", x1: m.l, x2: m.l, y1: m.t, y2: height - m.b }));
  svg.append(el("text", { x: width - m.r, y: height - 4, "text-anchor": "end" }, "step"));
  const legend = document.createElement("div");
  legend.className = "legend";
  series.forEach((s, i) => {
    const color = COLORS[i % COLORS.length];
    const pts = [...s.points].sort((a, b) => a[0] - b[0]);
    const d = pts.map((p, j) => `${j ? "L" : "M"}${X(p[0]).toFixed(1)},${Y(p[1]).toFixed(1)}`).join(" ");
    svg.append(el("path", { class: "series", d, stroke: color, "data-label": s.label }));
    for (const p of pts) {
      const c = el("circle", { cx: X(p[0]), cy: Y(p[1]), r: pts.length > 60 ? 1.5 : 3, fill: color });
      c.append(el("title", {}, `${s.label}: step ${p[0]} = ${p[1]}`));
      svg.append(c);
    }
    const item = document.createElement("span");
    item.style.setProperty("--c", color);
    item.textContent = s.label;
    legend.append(item);
  });
  wrap.append(svg, legend);
  return wrap;
}
