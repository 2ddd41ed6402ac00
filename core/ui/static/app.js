// Lamina UI: a small single-page app over /api/... (hash routes, no framework, no build step).
// Every value is put into the page as text (textContent), never as HTML.
import { renderDag } from "./dag.js";
import { renderPlot } from "./plot.js";

const view = document.getElementById("view");
let generation = 0; // bumped on every navigation: stale polls and responses stop there

// ------------------------------------------------------------------------------ helpers

function h(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else if (k === "class") node.className = v;
    else node.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat(Infinity)) {
    if (c === undefined || c === null || c === false) continue;
    node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return node;
}

async function api(path) {
  const res = await fetch(path, { credentials: "same-origin", headers: { Accept: "application/json" } });
  const body = await res.json().catch(() => ({ error: `HTTP ${res.status}` }));
  if (!res.ok) throw new Error(body.error || `HTTP ${res.status}`);
  return body;
}

const enc = encodeURIComponent;
const badge = (status) => h("span", { class: `badge status-${status}`, "data-status": status }, status);
const when = (iso) => (iso ? iso.replace("T", " ").slice(0, 19) : "");
function secs(s) {
  if (s === null || s === undefined) return "";
  if (s < 60) return `${s.toFixed(s < 10 ? 2 : 1)}s`;
  const m = Math.floor(s / 60);
  return m < 60 ? `${m}m ${Math.round(s % 60)}s` : `${Math.floor(m / 60)}h ${m % 60}m`;
}
function size(n) {
  const units = ["B", "KiB", "MiB", "GiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return i ? `${n.toFixed(1)} ${units[i]}` : `${n} B`;
}
const show = (v) => (typeof v === "string" ? v : JSON.stringify(v));
const kv = (obj) => h("dl", { class: "kv" }, Object.entries(obj || {}).map(([k, v]) => [h("dt", {}, k), h("dd", {}, show(v))]));
const tags = (run) => [
  run.project ? h("span", { class: "tag branch" }, `project ${run.project}`) : null,
  run.branch ? h("span", { class: "tag branch" }, `branch ${run.branch}`) : null,
  run.tags.filter((t) => !t.startsWith("branch:") && !t.startsWith("project:")).map((t) => h("span", { class: "tag" }, t)),
];
const runLink = (id) => h("a", { href: `#/run/${enc(id)}` }, id);
const taskHref = (run, step, task, attempt) => `#/task/${enc(run)}/${enc(step)}/${enc(task)}${attempt !== undefined ? `?attempt=${attempt}` : ""}`;

// replaceChildren() would show a skipped (null) child as the text "null"
const fill = (node, ...children) => node.replaceChildren(...children.flat(Infinity).filter((c) => c !== null && c !== undefined && c !== false));

function params() {
  const q = location.hash.split("?")[1] || "";
  return new URLSearchParams(q);
}

function fail(err) {
  fill(view, h("div", { class: "panel" }, h("p", { class: "error", id: "error" }, String(err.message || err))));
}

function poll(gen, fn, ms) {
  setTimeout(() => gen === generation && fn(), ms);
}

// ------------------------------------------------------------------------------ runs

async function runsPage() {
  const q = params();
  const limit = +(q.get("limit") || 50), offset = +(q.get("offset") || 0);
  const query = new URLSearchParams();
  for (const k of ["flow", "status", "user"]) if (q.get(k)) query.set(k, q.get(k));
  for (const t of q.getAll("tag")) query.append("tag", t);
  query.set("limit", limit);
  query.set("offset", offset);
  const [page, flows] = await Promise.all([api(`/api/runs?${query}`), api("/api/flows")]);
  const select = (name, values) =>
    h("select", { name }, h("option", { value: "" }, "any"), values.map((v) => h("option", { value: v, selected: q.get(name) === v }, v)));
  const form = h(
    "form",
    { class: "filters", id: "filters", onsubmit: (e) => {
        e.preventDefault();
        const f = new FormData(e.target), next = new URLSearchParams();
        for (const [k, v] of f.entries()) if (v) next.append(k, v);
        location.hash = `#/runs?${next}`;
      } },
    h("label", {}, "flow", select("flow", flows.flows)),
    h("label", {}, "status", select("status", ["running", "succeeded", "failed", "interrupted", "killed"])),
    h("label", {}, "tag", h("input", { name: "tag", value: q.get("tag") || "", placeholder: "e.g. branch:main" })),
    h("label", {}, "user", h("input", { name: "user", value: q.get("user") || "" })),
    h("button", { type: "submit" }, "Filter"),
  );
  const picked = new Set();
  const compareBtn = h("button", { id: "compare-selected", disabled: true, onclick: () => (location.hash = `#/compare?runs=${[...picked].map(enc).join(",")}`) }, "Compare selected");
  const rows = page.runs.map((r) =>
    h("tr", { "data-run-id": r.id },
      h("td", {}, h("input", { type: "checkbox", class: "pick", "data-run-id": r.id, "aria-label": `select ${r.id}`, onchange: (e) => {
        e.target.checked ? picked.add(r.id) : picked.delete(r.id);
        compareBtn.disabled = picked.size < 2;
      } })),
      h("td", {}, r.flow),
      h("td", { class: "mono" }, runLink(r.id)),
      h("td", {}, badge(r.status)),
      h("td", {}, r.user),
      h("td", {}, tags(r)),
      h("td", { class: "mono" }, Object.entries(r.params).map(([k, v]) => `${k}=${show(v)}`).join(" ")),
      h("td", {}, when(r.started_at)),
      h("td", { class: "num" }, secs(r.duration)),
    ));
  const nav = (off) => { const next = new URLSearchParams(q); next.set("offset", Math.max(0, off)); location.hash = `#/runs?${next}`; };
  const last = Math.min(offset + page.runs.length, page.total);
  const pager = h("div", { class: "pager", id: "pager" },
    h("button", { class: "secondary", id: "prev", disabled: offset === 0, onclick: () => nav(offset - limit) }, "← Newer"),
    h("span", { id: "runs-total" }, page.total ? `${offset + 1}–${last} of ${page.total} runs` : "no runs"),
    h("button", { class: "secondary", id: "next", disabled: last >= page.total, onclick: () => nav(offset + limit) }, "Older →"),
    compareBtn,
  );
  fill(view, 
    h("h1", {}, "Runs"),
    form,
    pager,
    h("table", { id: "runs-table" },
      h("thead", {}, h("tr", {}, ["", "Flow", "Run", "Status", "User", "Branch / tags", "Parameters", "Started (UTC)", "Took"].map((c) => h("th", {}, c)))),
      h("tbody", {}, rows)),
  );
  performance.mark("lamina:runs-drawn"); // benchmarks/ui_runs.py reads when the rows were in the page
}

// ------------------------------------------------------------------------------ a run

async function runPage(runId) {
  const gen = generation;
  let selected = params().get("step");
  let first = true;
  const refresh = async () => {
    const run = await api(`/api/runs/${enc(runId)}`);
    if (gen !== generation) return;
    if (!selected) {
      const failed = run.dag.nodes.find((n) => n.status === "failed");
      selected = failed ? failed.name : null;
    }
    draw(run);
    if (first) {
      first = false;
      loadExtras(run, gen);
    }
    if (run.status === "running") poll(gen, () => refresh().catch(fail), 1000);
  };
  const dagBox = h("div", { class: "panel dag-wrap" });
  const tasksBox = h("div", { id: "step-tasks" });
  const head = h("div");
  const extras = h("div", { id: "run-extras" });
  fill(view, head, dagBox, tasksBox, extras);
  const draw = (run) => {
    fill(head, 
      h("h1", {}, `${run.flow} / `, h("span", { class: "mono", id: "run-id" }, run.id), " ", badge(run.status)),
      h("p", { class: "muted" }, `by ${run.user} · stack ${run.stack_name || "?"} · started ${when(run.started_at)} UTC`,
        run.duration !== null ? ` · took ${secs(run.duration)}` : "", run.origin_run_id ? [" · resumed from ", runLink(run.origin_run_id)] : "", " ", tags(run)),
    );
    fill(dagBox, 
      h("h2", {}, "Steps"),
      renderDag(run.dag, { selected, onSelect: (name) => { selected = name; draw(run); } }),
    );
    const nodes = selected ? run.dag.nodes.filter((n) => n.name === selected) : run.dag.nodes;
    fill(tasksBox, 
      h("div", { class: "panel" },
        h("h2", {}, selected ? `Tasks of ${selected}` : "Tasks", selected ? h("button", { class: "secondary", style: null, onclick: () => { selected = null; draw(run); } }, " all steps") : null),
        h("table", { id: "tasks-table" },
          h("thead", {}, h("tr", {}, ["Step", "Task", "Status", "Attempts", "Started", "Took", "Error"].map((c) => h("th", {}, c)))),
          h("tbody", {}, nodes.flatMap((n) => n.tasks.map((t) =>
            h("tr", { "data-step": n.name, "data-task": t.task_id },
              h("td", {}, n.name),
              h("td", { class: "mono" }, h("a", { href: taskHref(run.id, n.name, t.task_id) }, t.index !== null ? `${t.task_id} (#${t.index})` : t.task_id)),
              h("td", {}, badge(t.status)),
              h("td", { class: "num" }, t.attempts),
              h("td", {}, when(t.started_at)),
              h("td", { class: "num" }, secs(t.duration)),
              h("td", { class: "error" }, t.error || ""),
            ))))),
      ),
    );
  };
  await refresh();
  function loadExtras(run) {
    const reads = run.data_reads.length
      ? h("table", { id: "data-reads" },
          h("thead", {}, h("tr", {}, ["Task", "Kind", "Table / query", "Rows", "Version"].map((c) => h("th", {}, c)))),
          h("tbody", {}, run.data_reads.map((d) => h("tr", {}, h("td", {}, `${d.step}/${d.task_id}`), h("td", {}, d.kind), h("td", { class: "mono" }, d.target), h("td", { class: "num" }, d.rows ?? ""), h("td", { class: "mono" }, d.version)))))
      : h("p", { class: "muted" }, "no data reads");
    const metricsBox = h("div", { id: "metrics" });
    fill(extras, 
      h("h2", {}, "Metrics"), metricsBox,
      h("div", { class: "row" },
        h("div", { class: "panel", id: "params" }, h("h2", {}, "Parameters"), Object.keys(run.params).length ? kv(run.params) : h("p", { class: "muted" }, "none")),
        h("div", { class: "panel", id: "stack" }, h("h2", {}, "Stack"), stackView(run.stack)),
        h("div", { class: "panel", id: "code" }, h("h2", {}, "Code"),
          run.code_key ? [h("p", { class: "mono" }, run.code_key.split("/").pop().slice(0, 16)), h("a", { href: `#/code/${enc(run.id)}`, id: "browse-code" }, "browse the files")] : h("p", { class: "muted" }, "no code package"),
          h("p", { class: "muted" }, `Python ${run.python_version}`)),
      ),
      h("div", { class: "panel" }, h("h2", {}, "Data reads"), reads),
    );
    api(`/api/runs/${enc(run.id)}/metrics`).then((m) => metricsBox.replaceChildren(metricPlots(m.metrics))).catch(fail);
  }
}

// a stack snapshot: its name, then each layer's adapter with its settings folded away
function stackView(stack) {
  const { layers = {}, ...rest } = stack || {};
  return h("div", {}, kv(rest), Object.entries(layers).map(([layer, cfg]) => {
    const { adapter, ...settings } = cfg || {};
    return h("details", { class: "layer", "data-layer": layer },
      h("summary", {}, h("strong", {}, layer), `: ${adapter}`),
      Object.keys(settings).length ? kv(settings) : h("p", { class: "muted" }, "default settings"));
  }));
}

function metricPlots(metrics, labelOf = (s) => s.task) {
  const names = Object.keys(metrics);
  if (!names.length) return h("p", { class: "muted" }, "no metrics logged");
  return h("div", { class: "plots" }, names.map((name) =>
    h("div", { class: "panel" }, h("h3", {}, name), renderPlot(name, metrics[name].map((s) => ({ label: labelOf(s), points: s.points }))))));
}

// ------------------------------------------------------------------------------ a task

function preview(a) {
  const p = a.preview;
  if (!p) return h("p", { class: "muted" }, `no preview (${a.serializer}); download to inspect it`);
  if (p.kind === "table") {
    return h("div", {},
      h("p", { class: "muted" }, `${p.rows} rows × ${p.columns} columns${p.head.length < p.rows ? `, first ${p.head.length}` : ""}`),
      h("div", { style: null, class: "dag-wrap" }, h("table", { class: "preview" },
        h("thead", {}, h("tr", {}, p.schema.map((f) => h("th", {}, f.name, h("small", {}, f.type))))),
        h("tbody", {}, p.head.map((row) => h("tr", {}, row.map((c) => h("td", {}, c))))))));
  }
  if (p.kind === "array") {
    const stats = {};
    for (const k of ["min", "max", "mean", "nan"]) if (p[k] !== undefined) stats[k] = p[k];
    return h("div", { class: "array-preview" },
      kv({ shape: `(${p.shape.join(", ")})`, dtype: p.dtype, ...stats, ...(p.sampled ? { statistics: "from a sample" } : {}) }),
      h("p", { class: "mono" }, `[${p.head.join(", ")}${p.head.length < p.shape.reduce((x, y) => x * y, 1) ? ", …" : ""}]`));
  }
  if (p.kind === "image") {
    return h("div", {},
      p.data ? h("img", { class: "thumb", alt: a.name, src: `data:image/${p.format === "jpeg" ? "jpeg" : "png"};base64,${p.data}` }) : null,
      h("p", { class: "muted" }, `${p.format} image${p.width ? `, ${p.width}×${p.height}` : ""}`));
  }
  return h("pre", { class: "code value-preview" }, p.repr + (p.truncated ? " …" : ""));
}

async function taskPage(runId, step, taskId) {
  const gen = generation;
  const attempt = params().get("attempt");
  const t = await api(`/api/runs/${enc(runId)}/tasks/${enc(step)}/${enc(taskId)}${attempt !== null ? `?attempt=${enc(attempt)}` : ""}`);
  if (gen !== generation) return;
  const stdout = h("pre", { class: "log", id: "stdout" }, "…");
  const stderr = h("pre", { class: "log", id: "stderr" }, "…");
  const loadLogs = async () => {
    const logs = await api(t.logs);
    if (gen !== generation) return;
    stdout.textContent = logs.stdout || "(empty)";
    stderr.textContent = logs.stderr || "(empty)";
    if (logs.status === "running") poll(gen, () => loadLogs().catch(fail), 1500);
  };
  fill(view, 
    h("p", {}, h("a", { href: `#/run/${enc(runId)}?step=${enc(step)}` }, `← ${t.run.flow}/${runId}`)),
    h("h1", {}, h("span", { class: "mono" }, `${step}/${taskId}`), " ", badge(t.status)),
    h("p", { class: "muted" }, `attempt ${t.attempt} · started ${when(t.started_at)} UTC · took ${secs(t.duration)}`,
      t.inputs.length ? ` · inputs ${t.inputs.join(", ")}` : "",
      t.foreach_stack.length ? ` · foreach ${t.foreach_stack.map((f) => `${f.step}[${f.index}/${f.count}]`).join(" › ")}` : ""),
    t.attempts.length > 1 ? h("p", {}, "attempts: ", t.attempts.map((a) => [h("a", { href: taskHref(runId, step, taskId, a.attempt) }, `#${a.attempt}`), " ", badge(a.status), " "])) : null,
    t.error ? h("div", { class: "panel", id: "failure" }, h("h2", {}, "Error"), h("p", { class: "error" }, t.error),
      t.traceback ? h("pre", { class: "traceback", id: "traceback" }, t.traceback) : null) : null,
    h("div", { class: "panel", id: "artifacts" }, h("h2", {}, "Artifacts"),
      t.artifacts.length ? t.artifacts.map((a) => h("div", { class: "artifact", "data-name": a.name },
        h("h3", {}, a.name, " ", h("span", { class: "muted" }, `${a.type} · ${size(a.size)} · `), h("a", { href: a.download, download: "" }, "download")),
        preview(a))) : h("p", { class: "muted" }, "none")),
    h("h2", {}, "Metrics"), metricPlots(t.metrics),
    h("div", { class: "row" },
      h("div", { class: "panel" }, h("h2", {}, "stdout"), stdout),
      h("div", { class: "panel" }, h("h2", {}, "stderr"), stderr)),
  );
  await loadLogs();
}

// ------------------------------------------------------------------------------ code

async function codePage(runId, path) {
  const listing = await api(`/api/runs/${enc(runId)}/code`);
  const current = path || listing.flow_file || (listing.files.find((f) => f.path.endsWith(".py")) || listing.files[0] || {}).path;
  const body = h("pre", { class: "code", id: "code-file" }, "");
  fill(view, 
    h("p", {}, h("a", { href: `#/run/${enc(runId)}` }, `← run ${runId}`)),
    h("h1", {}, "Code package"),
    h("div", { class: "files" },
      h("ul", { id: "code-files" }, listing.files.map((f) => h("li", {}, h("a", { class: f.path === current ? "current" : null, href: `#/code/${enc(runId)}/${f.path.split("/").map(enc).join("/")}` }, `${f.path} `, h("span", { class: "muted" }, size(f.size)))))),
      body),
  );
  if (current) {
    const file = await api(`/api/runs/${enc(runId)}/code/${current.split("/").map(enc).join("/")}`);
    body.textContent = file.binary ? `(binary file, ${size(file.size)})` : file.text;
  }
}

// ------------------------------------------------------------------------------ compare

async function comparePage() {
  const q = params();
  const picker = h("form", { class: "filters", id: "compare-form", onsubmit: (e) => {
      e.preventDefault();
      const f = new FormData(e.target), next = new URLSearchParams();
      for (const [k, v] of f.entries()) if (v) next.set(k, v);
      location.hash = `#/compare?${next}`;
    } },
    h("label", {}, "runs (comma-separated)", h("input", { name: "runs", size: 60, value: q.get("runs") || "" })),
    h("label", {}, "or flow", h("input", { name: "flow", value: q.get("flow") || "" })),
    h("label", {}, "and branches", h("input", { name: "branches", placeholder: "main,candidate", value: q.get("branches") || "" })),
    h("button", { type: "submit" }, "Compare"));
  if (!q.get("runs") && !q.get("branches")) {
    fill(view, h("h1", {}, "Compare runs"), picker, h("p", { class: "muted" }, "Pick two or more runs on the Runs page, or name them here."));
    return;
  }
  const query = new URLSearchParams();
  for (const k of ["runs", "flow", "branches"]) if (q.get(k)) query.set(k, q.get(k));
  const c = await api(`/api/compare?${query}`);
  const ids = c.runs.map((r) => r.id);
  const table = (id, rows, differ, cell = show) =>
    h("table", { id },
      h("thead", {}, h("tr", {}, h("th", {}, "name"), ids.map((r) => h("th", { class: "mono" }, r)))),
      h("tbody", {}, Object.entries(rows).map(([name, values]) =>
        h("tr", { class: differ.includes(name) ? "differs" : null, "data-name": name },
          h("td", { class: "mono" }, name),
          values.map((v) => h("td", { class: `mono${differ.includes(name) ? " differs" : ""}` }, v === null || v === undefined ? "—" : cell(v)))))));
  const artifactCell = (a) => (a.preview && a.preview.kind === "value" ? a.preview.repr : `${a.type.split(".").pop()} ${a.key.split("/").pop().slice(0, 10)}`);
  const overlaid = {};
  for (const [name, perRun] of Object.entries(c.metrics)) {
    overlaid[name] = perRun.flatMap((seriesList, i) => seriesList.map((s) => ({ ...s, task: seriesList.length > 1 ? `${ids[i]} · ${s.task}` : ids[i] })));
  }
  fill(view, 
    h("h1", {}, "Compare runs"), picker,
    h("div", { class: "panel" }, h("table", { id: "compare-runs" },
      h("thead", {}, h("tr", {}, ["Run", "Flow", "Status", "Branch / tags", "Started", "Took"].map((x) => h("th", {}, x)))),
      h("tbody", {}, c.runs.map((r) => h("tr", {}, h("td", { class: "mono" }, runLink(r.id)), h("td", {}, r.flow), h("td", {}, badge(r.status)), h("td", {}, tags(r)), h("td", {}, when(r.started_at)), h("td", { class: "num" }, secs(r.duration))))))),
    h("h2", {}, "Parameters"), h("div", { class: "panel" }, table("compare-params", c.params, c.params_differ)),
    h("h2", {}, "Metrics (last values)"), h("div", { class: "panel" }, table("compare-metrics", c.metrics_last, c.metrics_differ)),
    h("div", { id: "compare-plots" }, metricPlots(overlaid)),
    h("h2", {}, "Artifacts of end"), h("div", { class: "panel" }, table("compare-artifacts", c.artifacts, c.artifacts_differ, artifactCell)),
  );
}

// ------------------------------------------------------------------------------ routing

async function route() {
  generation++;
  const [path] = location.hash.replace(/^#/, "").split("?");
  const parts = path.split("/").filter(Boolean).map(decodeURIComponent);
  try {
    if (parts[0] === "run" && parts[1]) await runPage(parts[1]);
    else if (parts[0] === "task" && parts.length === 4) await taskPage(parts[1], parts[2], parts[3]);
    else if (parts[0] === "code" && parts[1]) await codePage(parts[1], parts.slice(2).join("/"));
    else if (parts[0] === "compare") await comparePage();
    else await runsPage();
    document.body.dataset.page = parts[0] || "runs";
  } catch (err) {
    fail(err);
  }
}

api("/api/flows").then((f) => (document.getElementById("stack-name").textContent = `stack ${f.stack}`)).catch(() => {});
window.addEventListener("hashchange", route);
route();
