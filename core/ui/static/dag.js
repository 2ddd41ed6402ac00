// A run's DAG as SVG: steps in layers (longest path from start), ordered by their parents'
// positions, edges as curves; a foreach edge is dashed and labelled with its fan-out count.
const SVG = "http://www.w3.org/2000/svg";
const W = 168, H = 56, GAP_X = 36, GAP_Y = 74, PAD = 16;

function el(tag, attrs = {}, text) {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) if (v !== undefined && v !== null) node.setAttribute(k, v);
  if (text !== undefined) node.textContent = text;
  return node;
}

function layers(nodes, edges) {
  const names = nodes.map((n) => n.name);
  const parents = Object.fromEntries(names.map((n) => [n, []]));
  for (const [a, b] of edges) if (parents[b] && names.includes(a)) parents[b].push(a);
  const depth = {};
  const visit = (name, seen = new Set()) => {
    if (depth[name] !== undefined) return depth[name];
    if (seen.has(name)) return 0; // a cycle cannot happen in a valid flow; never loop on one
    seen.add(name);
    const ps = parents[name];
    depth[name] = ps.length ? Math.max(...ps.map((p) => visit(p, seen))) + 1 : 0;
    return depth[name];
  };
  names.forEach((n) => visit(n));
  const rows = [];
  for (const n of names) (rows[depth[n]] ||= []).push(n);
  // order each row by the mean position of its parents, so branches do not cross
  const pos = {};
  rows.forEach((row, r) => {
    if (r > 0) {
      const key = (n) => {
        const ps = parents[n].filter((p) => pos[p] !== undefined);
        return ps.length ? ps.reduce((s, p) => s + pos[p], 0) / ps.length : 0;
      };
      row.sort((a, b) => key(a) - key(b));
    }
    row.forEach((n, i) => (pos[n] = i - (row.length - 1) / 2));
  });
  return { rows, pos, depth };
}

function subtitle(node) {
  const c = node.counts || {};
  const done = c.succeeded || 0, total = node.tasks.length;
  const parts = [];
  if (node.type && !["linear", "start", "end"].includes(node.type)) parts.push(node.type);
  if (node.expected !== null && node.expected !== undefined) parts.push(`${done}/${node.expected} tasks`);
  else if (total > 1) parts.push(`${done}/${total} tasks`);
  else if (total === 1) parts.push(node.tasks[0].status);
  else parts.push(node.status);
  if (c.failed) parts.push(`${c.failed} failed`);
  if (c.running && total > 1) parts.push(`${c.running} running`);
  return parts.join(" · ");
}

export function renderDag(dag, { selected, onSelect } = {}) {
  const { nodes, edges } = dag;
  const { rows, pos, depth } = layers(nodes, edges);
  const widest = Math.max(1, ...rows.map((r) => r.length));
  const width = widest * W + (widest - 1) * GAP_X + 2 * PAD;
  const height = rows.length * H + (rows.length - 1) * GAP_Y + 2 * PAD;
  const at = (name) => ({
    x: width / 2 + pos[name] * (W + GAP_X) - W / 2,
    y: PAD + depth[name] * (H + GAP_Y),
  });
  const svg = el("svg", { class: "dag", id: "dag", width, height, viewBox: `0 0 ${width} ${height}`, role: "img" });
  svg.append(el("title", {}, "the run's steps and how they connect"));
  const byName = Object.fromEntries(nodes.map((n) => [n.name, n]));
  for (const [a, b] of edges) {
    if (!byName[a] || !byName[b]) continue;
    const p = at(a), q = at(b);
    const x1 = p.x + W / 2, y1 = p.y + H, x2 = q.x + W / 2, y2 = q.y;
    const my = (y1 + y2) / 2;
    const foreach = byName[a].type === "foreach" || byName[a].foreach_count !== null && byName[a].foreach_count !== undefined;
    svg.append(el("path", { class: `edge${foreach ? " foreach" : ""}`, d: `M${x1},${y1} C${x1},${my} ${x2},${my} ${x2},${y2}`, "data-from": a, "data-to": b }));
    if (foreach) {
      const n = byName[a].foreach_count;
      const label = n === null || n === undefined ? "foreach" : `foreach ×${n}`;
      svg.append(el("text", { class: "edge-label", x: (x1 + x2) / 2 + 6, y: my + 4 }, label));
    }
  }
  for (const node of nodes) {
    const { x, y } = at(node.name);
    const g = el("g", {
      class: `node${selected === node.name ? " selected" : ""}`,
      "data-step": node.name,
      "data-status": node.status,
      transform: `translate(${x},${y})`,
      tabindex: 0,
    });
    g.append(el("title", {}, `${node.name}: ${node.status}${node.doc ? " — " + node.doc : ""}`));
    g.append(el("rect", { width: W, height: H, rx: 7 }));
    g.append(el("text", { class: "name", x: 10, y: 22 }, node.name));
    g.append(el("text", { class: "sub", x: 10, y: 41 }, subtitle(node)));
    if (onSelect) {
      g.addEventListener("click", () => onSelect(node.name));
      g.addEventListener("keydown", (e) => e.key === "Enter" && onSelect(node.name));
    }
    svg.append(g);
  }
  return svg;
}
