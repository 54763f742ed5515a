// The explorer's page: tabs, and one loader per view; every number and figure comes from /api.
"use strict";

const $ = (id) => document.getElementById(id);
const SVG = "http://www.w3.org/2000/svg";

// ------------------------------------------------------------------------------ helpers
async function api(path, body) {
  const init = body === undefined ? {} : {
    method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
  };
  let res;
  try {
    res = await fetch(path, init);
  } catch (e) {
    throw new Error(`the explorer server cannot be reached (${e.message}); is ptheta explore still running?`);
  }
  let data = null;
  try { data = await res.json(); } catch (e) { /* not JSON: reported below */ }
  if (!res.ok) throw new Error(data && data.error ? data.error : `HTTP ${res.status} from ${path}`);
  if (data === null) throw new Error(`the answer from ${path} was not JSON`);
  return data;
}

/** Numbers as the page shows them: null (not computed) as an em dash. */
function fmt(x, digits = 2) {
  if (x === null || x === undefined) return "—";
  if (typeof x !== "number") return String(x);
  if (Number.isInteger(x) && digits === 0) return x.toLocaleString("en-US");
  if (Math.abs(x) >= 1e6) return x.toExponential(digits);
  if (x !== 0 && Math.abs(x) < 10 ** -digits) return x.toPrecision(2); // 0.01 s → "0.010"
  return x.toFixed(digits);
}
const fmtInt = (x) => fmt(x, 0);
const fmtProb = (p) => (p === null || p === undefined ? "—" : p.toFixed(3));

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "text") node.textContent = v;
    else if (k === "class") node.className = v;
    else node.setAttribute(k, v);
  }
  for (const child of children) node.append(child);
  return node;
}

function debounce(fn, ms) {
  let timer;
  return (...args) => { clearTimeout(timer); timer = setTimeout(() => fn(...args), ms); };
}

/** plotly.js (4.8 MB) is loaded only when a view first draws a plot: the other views open at once. */
let plotlyLoading = null;
function plotly() {
  if (window.Plotly) return Promise.resolve(window.Plotly);
  plotlyLoading ??= new Promise((resolve, reject) => {
    const script = el("script", { src: "static/plotly.min.js" });
    script.onload = () => resolve(window.Plotly);
    script.onerror = () => {
      plotlyLoading = null; // let a later view try again
      script.remove();
      reject(new Error("plotly.js did not load from static/plotly.min.js; install the plotly Python package (pip install plotly)"));
    };
    document.head.append(script);
  });
  return plotlyLoading;
}

/** A view's loading line and error box. `request` shows "loading…" while a call is
 *  pending, puts any error in the panel, and answers undefined for a call that failed or
 *  was overtaken by a newer one (a slider moved again), so stale answers are dropped. */
class Panel {
  constructor(name) {
    this.root = $(`view-${name}`);
    this.status = this.root.querySelector(".status");
    this.error = this.root.querySelector(".error");
    this.token = 0;
  }
  async request(message, call) {
    const token = ++this.token;
    // a short delay: quick answers (cached models) do not flash a loading line
    const timer = setTimeout(() => { if (token === this.token) this.status.textContent = message; }, 120);
    this.root.setAttribute("aria-busy", "true");
    try {
      const data = await call();
      if (token !== this.token) return undefined;
      this.error.hidden = true;
      return data;
    } catch (e) {
      if (token === this.token) this.showError(e);
      return undefined;
    } finally {
      clearTimeout(timer);
      if (token === this.token) {
        this.status.textContent = "";
        this.root.removeAttribute("aria-busy");
      }
    }
  }
  showError(e) {
    this.error.textContent = e.message || String(e);
    this.error.hidden = false;
  }
}

// ------------------------------------------------------------------------ 1: the space
const space = {
  init() {
    this.panel = new Panel("space");
    const slider = $("space-slider");
    const update = debounce(() => this.update(Number(slider.value)), 60);
    slider.addEventListener("input", () => { $("space-n").textContent = slider.value; update(); });
    this.update(Number(slider.value));
  },
  async update(n) {
    const data = await this.panel.request("Counting parameters of models fitted on n pixels…",
      () => api(`api/space?n=${n}`));
    if (!data) return;
    $("space-n").textContent = String(data.n);
    $("space-configs").textContent = data.configurations_text;
    $("space-params-log2").textContent = fmt(data.free_parameters_log2, 2);
    $("space-log10").textContent = fmt(data.log10_configurations, 1);
    const box = $("space-box");
    const verdict = $("space-verdict");
    box.classList.toggle("red", data.red);
    verdict.classList.toggle("red", data.red);
    box.dataset.red = String(data.red);
    verdict.textContent = data.red
      ? `Too big: 2^n − 1 free parameters is more than the ${data.exceeds.join(", ")}.`
      : data.exceeds.length
        ? `Already more than the ${data.exceeds.join(", ")}.`
        : "Still smaller than every reference magnitude below.";
    this.drawReferences(data);
    const body = $("space-families").tBodies[0];
    body.replaceChildren(
      el("tr", { class: "full" }, el("td", { text: "any distribution (full table)" }),
        el("td", { class: "num", text: `2^${data.n} − 1 ≈ 10^${fmt(data.log10_configurations, 1)}` })),
      ...data.families.map((f) => el("tr", { "data-model": f.model },
        el("td", { text: f.model }), el("td", { class: "num", text: fmtInt(f.n_parameters) }))),
    );
    $("space-note").textContent = data.note || "";
  },
  drawReferences(data) {
    const scale = Math.max(784, ...data.references.map((r) => r.log2));
    const rows = data.references.map((r) => {
      const exceeded = data.exceeds.includes(r.name);
      const bar = el("div", { class: "bar" },
        el("div", { class: "ref", style: `width: ${(100 * r.log2) / scale}%` }),
        el("div", { class: "you", style: `left: ${(100 * data.n) / scale}%`, title: `n = ${data.n}` }));
      return el("li", { class: exceeded ? "exceeded" : "" },
        el("span", { class: "name", text: r.name }), bar, el("span", { class: "num", text: `≈ 2^${fmt(r.log2, 0)}` }));
    });
    $("space-refs").replaceChildren(...rows);
  },
};

// -------------------------------------------------------------------- 2: structure
const structure = {
  async init() {
    this.panel = new Panel("structure");
    this.seed = 0;
    $("structure-resample").addEventListener("click", () => {
      this.seed += 1;
      $("structure-seed").textContent = String(this.seed);
      this.loadSamples();
    });
    const data = await this.panel.request(
      "Fitting the structure models on digits (first use only; cached afterwards)…",
      () => api("api/structure"));
    if (!data) return;
    this.data = data;
    $("structure-models").replaceChildren(...data.models.map((m) => this.card(m)));
    this.drawTree(data.tree, data.image_shape);
    this.loadSamples();
  },
  card(m) {
    const canvas = el("canvas", { id: `structure-canvas-${m.model}`, "data-testid": "sample-grid", width: 4, height: 4 });
    const stats = el("dl", {},
      el("dt", { text: "likelihood" }), el("dd", { text: m.likelihood }),
      el("dt", { text: "test NLL" }), el("dd", { text: `${fmt(m.test_nll_nats, 2)} nats` }),
      el("dt", { text: "bits / pixel" }), el("dd", { text: fmt(m.test_nll_bits_per_dim, 3) }),
      el("dt", { text: "parameters" }), el("dd", { text: fmtInt(m.n_parameters) }));
    return el("div", { class: "card", "data-model": m.model }, el("h3", { text: m.model }), canvas, stats);
  },
  async loadSamples() {
    const seed = this.seed;
    const all = await this.panel.request("Sampling…", () => Promise.all(this.data.models.map(
      (m) => api(`api/structure/samples?model=${encodeURIComponent(m.model)}&n=16&seed=${seed}`))));
    if (!all) return;
    for (const s of all) drawSamples($(`structure-canvas-${s.model}`), s);
  },
  drawTree(tree, shape) {
    const [h, w] = shape;
    const svg = $("structure-tree");
    $("structure-graph").hidden = !tree; // no structure model exports a graph
    if (!tree) return;
    $("structure-tree-title").textContent = `${tree.model}: the learned graph over the ${h}×${w} pixels`;
    svg.setAttribute("viewBox", `0 0 ${w} ${h}`);
    const centre = (i) => [(i % w) + 0.5, Math.floor(i / w) + 0.5]; // row-major pixel index
    const shapes = [];
    for (let i = 0; i < w * h; i++) {
      const [x, y] = centre(i);
      shapes.push(svgEl("rect", { class: "cell", x: x - 0.5, y: y - 0.5, width: 1, height: 1 }));
    }
    for (const [i, j] of tree.edges) {
      const [x1, y1] = centre(i);
      const [x2, y2] = centre(j);
      shapes.push(svgEl("line", { x1, y1, x2, y2, "data-edge": `${i}-${j}` }));
    }
    for (let i = 0; i < w * h; i++) {
      const [x, y] = centre(i);
      shapes.push(svgEl("circle", { class: "node", cx: x, cy: y, r: 0.1 }));
    }
    for (const root of tree.roots) {
      const [rx, ry] = centre(root);
      shapes.push(svgEl("circle", { class: "root", cx: rx, cy: ry, r: 0.3 }));
    }
    svg.replaceChildren(...shapes);
    const where = tree.roots.map((r) => `row ${Math.floor(r / w) + 1}, column ${(r % w) + 1}`).join("; ");
    svg.setAttribute("aria-label", `${tree.title}, over the ${h}×${w} pixels: ${tree.edges.length} edges, root at ${where}`);
  },
};

function svgEl(tag, attrs) {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  return node;
}

/** A grid of gray-level images on a canvas: ink dark on white, one canvas pixel per image pixel
 *  scaled by CSS (image-rendering: pixelated keeps the pixels square). */
function drawSamples(canvas, s) {
  const [h, w] = s.image_shape;
  const n = s.samples.length;
  const cols = Math.ceil(Math.sqrt(n));
  const rows = Math.ceil(n / cols);
  const gap = 1;
  canvas.width = cols * (w + gap) + gap;
  canvas.height = rows * (h + gap) + gap;
  const ctx = canvas.getContext("2d");
  ctx.fillStyle = "#c8ced6";
  ctx.fillRect(0, 0, canvas.width, canvas.height);
  const image = ctx.getImageData(0, 0, canvas.width, canvas.height);
  s.samples.forEach((sample, k) => {
    const x0 = gap + (k % cols) * (w + gap);
    const y0 = gap + Math.floor(k / cols) * (h + gap);
    sample.forEach((v, i) => {
      const g = Math.round(255 * (1 - v / (s.levels - 1)));
      const at = 4 * ((y0 + Math.floor(i / w)) * canvas.width + x0 + (i % w));
      image.data[at] = image.data[at + 1] = image.data[at + 2] = g;
      image.data[at + 3] = 255;
    });
  });
  ctx.putImageData(image, 0, 0);
  canvas.dataset.seed = String(s.seed);
  canvas.setAttribute("aria-label", `${n} samples from ${s.model}, seed ${s.seed}`);
}

// ---------------------------------------------------------------------- 3: surface
const surface = {
  async init() {
    this.panel = new Panel("surface");
    const opts = await this.panel.request("Loading the choices…", () => api("api/surface/options"));
    if (!opts) return;
    $("surface-data").replaceChildren(...opts.datasets.map((d) => el("option", { value: d, text: d })));
    $("surface-model").replaceChildren(...opts.models.map(
      (m) => el("option", { value: m.model, text: `${m.model} — ${m.quantity}` })));
    for (const id of ["surface-data", "surface-model", "surface-grid"]) {
      $(id).addEventListener("change", () => this.update());
    }
    $("surface-log").addEventListener("change", () => {
      if (this.last) this.draw(this.last).catch((e) => this.panel.showError(e));
    });
    this.update();
  },
  async update() {
    const data = $("surface-data").value;
    const model = $("surface-model").value;
    const grid = $("surface-grid").value;
    const answer = await this.panel.request(`Fitting ${model} on ${data} (first use only) and evaluating it on a ${grid}×${grid} grid…`,
      () => api(`api/surface?data=${encodeURIComponent(data)}&model=${encodeURIComponent(model)}&grid=${grid}`));
    if (!answer) return;
    this.last = answer;
    try { await this.draw(answer); } catch (e) { this.panel.showError(e); }
  },
  async draw(d) {
    const log = $("surface-log").checked;
    const z = log ? d.log_z : d.z;
    const title = log ? `log ${d.quantity}` : d.quantity;
    $("surface-quantity").textContent = d.quantity;
    $("surface-likelihood").textContent = d.likelihood;
    $("surface-integral").textContent = d.integral === null ? "not defined (unnormalised quantity)" : fmt(d.integral, 3);
    const P = await plotly();
    P.react("surface-3d", [{ type: "surface", x: d.x, y: d.y, z, colorscale: "Viridis", colorbar: { title: { text: title } } }], {
      title: { text: `${d.model} on ${d.data}: ${title}` },
      scene: { xaxis: { title: { text: "x₁" } }, yaxis: { title: { text: "x₂" } }, zaxis: { title: { text: title } } },
      margin: { l: 0, r: 0, t: 40, b: 0 },
    }, { responsive: true, displaylogo: false });
    const traces = [
      { type: "heatmap", x: d.x, y: d.y, z, colorscale: "Viridis", colorbar: { title: { text: title } }, name: title },
      { type: "scatter", mode: "markers", x: d.points.map((p) => p[0]), y: d.points.map((p) => p[1]),
        marker: { size: 3, color: "white", line: { width: 0.5, color: "black" } }, name: "training points" },
    ];
    if (d.true_log_density) {
      traces.push({ type: "contour", x: d.x, y: d.y, z: log ? d.true_log_density : d.true_log_density.map((r) => r.map(Math.exp)),
        contours: { coloring: "lines" }, line: { color: "white", dash: "dot" }, showscale: false, name: "true density" });
    }
    P.react("surface-heat", traces, {
      title: { text: "heat map with the training points" },
      xaxis: { title: { text: "x₁" }, constrain: "domain" }, yaxis: { title: { text: "x₂" }, scaleanchor: "x", constrain: "domain" },
      legend: { orientation: "h" }, margin: { t: 40 },
    }, { responsive: true, displaylogo: false });
  },
};

// ------------------------------------------------------------------------- 4: spam
const spam = {
  async init() {
    this.panel = new Panel("spam");
    this.selected = [];
    const vocab = await this.panel.request("Fitting naive Bayes and logistic regression (first use only)…",
      () => api("api/spam/vocab"));
    if (!vocab) return;
    $("spam-source").textContent = vocab.synthetic
      ? `Synthetic data, not real mail — ${vocab.source} (${fmtInt(vocab.n_train)} training e-mails).`
      : `Your corpus: ${vocab.source} (${fmtInt(vocab.n_train)} training e-mails).`;
    $("spam-words").replaceChildren(...vocab.words.map((w) => {
      const chip = el("button", { type: "button", "data-word": w, "aria-pressed": "false", text: w });
      chip.addEventListener("click", () => this.toggle(w));
      return chip;
    }));
    $("spam-pairs").replaceChildren(...vocab.correlated_pairs.map((pair) => {
      const b = el("button", { type: "button", "data-pair": pair.join("+"), text: pair.join(" + ") });
      b.addEventListener("click", () => {
        for (const w of pair) if (!this.selected.includes(w)) this.selected.push(w);
        this.update();
      });
      return b;
    }));
    $("spam-clear").addEventListener("click", () => { this.selected = []; this.update(); });
    this.update();
  },
  toggle(word) {
    const at = this.selected.indexOf(word);
    if (at >= 0) this.selected.splice(at, 1); else this.selected.push(word);
    this.update();
  },
  async update() {
    for (const chip of $("spam-words").children) {
      chip.setAttribute("aria-pressed", String(this.selected.includes(chip.dataset.word)));
    }
    const words = [...this.selected];
    const d = await this.panel.request("Scoring…", () => api("api/spam/posterior", { words }));
    if (!d) return;
    $("spam-nb").textContent = fmtProb(d.naive_bayes);
    $("spam-lr").textContent = fmtProb(d.logistic);
    $("spam-nb-bar").style.width = `${100 * d.naive_bayes}%`;
    $("spam-lr-bar").style.width = `${100 * d.logistic}%`;
    $("spam-nb-logodds").textContent = fmt(d.naive_bayes_log_odds, 2);
    $("view-spam").dataset.words = d.words.join(",");
    $("spam-contrib").tBodies[0].replaceChildren(...d.contributions.map((c) => el("tr", {},
      el("td", { text: c.word }), el("td", { class: "num", text: fmt(c.naive_bayes, 2) }),
      el("td", { class: "num", text: fmt(c.logistic, 2) }))));
  },
};

// ------------------------------------------------------------------------- 5: flow
const flow = {
  async init() {
    this.panel = new Panel("flow");
    const opts = await this.panel.request("Loading the choices…", () => api("api/flow/options"));
    if (!opts) return;
    this.nLayers = opts.n_layers;
    $("flow-n-layers").textContent = String(opts.n_layers);
    const slider = $("flow-strength");
    slider.max = String(opts.n_layers); // one slider step per layer: strength k / L
    $("flow-data").replaceChildren(...opts.datasets.map((d) => el("option", { value: d, text: d })));
    const update = debounce(() => this.update(), 60);
    slider.addEventListener("input", () => {
      $("flow-strength-value").textContent = (Number(slider.value) / this.nLayers).toFixed(2);
      update();
    });
    $("flow-data").addEventListener("change", () => this.update());
    this.update();
  },
  async update() {
    const data = $("flow-data").value;
    const strength = Number($("flow-strength").value) / this.nLayers;
    const d = await this.panel.request(`Fitting a RealNVP flow on ${data} (first use only)…`,
      () => api(`api/flow?data=${encodeURIComponent(data)}&strength=${strength}&grid=60`));
    if (!d) return;
    $("flow-strength-value").textContent = d.strength.toFixed(2);
    $("flow-layer").textContent = String(d.layer);
    $("flow-integral").textContent = fmt(d.integral, 3);
    try {
      (await plotly()).react("flow-plot", [
        { type: "heatmap", x: d.x, y: d.y, z: d.z, colorscale: "Viridis", colorbar: { title: { text: "density" } } },
        { type: "scatter", mode: "markers", x: d.points.map((p) => p[0]), y: d.points.map((p) => p[1]),
          marker: { size: 3, color: "white", line: { width: 0.5, color: "black" } }, name: "base samples pushed through" },
      ], {
        title: { text: `after ${d.layer} of ${d.n_layers} layers (strength ${d.strength.toFixed(2)})` },
        xaxis: { title: { text: "x₁" }, constrain: "domain" }, yaxis: { title: { text: "x₂" }, scaleanchor: "x", constrain: "domain" },
        legend: { orientation: "h" }, margin: { t: 40 },
      }, { responsive: true, displaylogo: false });
    } catch (e) { this.panel.showError(e); }
  },
};

// --------------------------------------------------------------- 6: probability budget
const PALETTE = ["#2557a7", "#e07b39", "#3a8f5c", "#b3261e", "#7a4fb5", "#c49a1a", "#1f8a99", "#a2527c"];

const mass = {
  async init() {
    this.panel = new Panel("mass");
    const opts = await this.panel.request("Loading the choices…", () => api("api/surface/options"));
    if (!opts) return;
    $("mass-data").replaceChildren(...opts.datasets.map((d) => el("option", { value: d, text: d })));
    for (const id of ["mass-row", "mass-data"]) $(id).addEventListener("change", () => this.update());
    this.update();
  },
  async update() {
    const select = $("mass-row");
    const row = select.value ? `row=${select.value}&` : ""; // first call: the API's default row
    const data = $("mass-data").value;
    const d = await this.panel.request("Fitting the three models (first use only) and adding up their probabilities…",
      () => api(`api/mass?${row}data=${encodeURIComponent(data)}&grid=60`));
    if (!d) return;
    if (select.options.length !== d.n_rows) {
      select.replaceChildren(...Array.from({ length: d.n_rows },
        (_, r) => el("option", { value: String(r), text: `row ${r + 1} of ${d.n_rows}` })));
    }
    select.value = String(d.row);
    $("mass-models").replaceChildren(...d.models.map((m) => this.card(m)));
    const flow = d.models.find((m) => m.density);
    try { await this.drawFlow(flow); } catch (e) { this.panel.showError(e); }
  },
  card(m) {
    const box = el("div", { class: "budget", "data-kind": m.kind });
    if (!m.model) {
      box.append(el("h3", { text: m.kind }), el("p", { class: "note", text: m.missing }));
      return box;
    }
    const digits = m.data_kind === "binary" ? 6 : 3;
    box.append(
      el("h3", { text: `${m.kind}: ${m.model}` }),
      el("p", { class: "note", text: `${m.space}. ${m.how}.` }),
      el("p", { class: "big" }, "total probability = ",
        el("strong", { class: "mass-total", "data-testid": "mass-total", text: fmt(m.total, digits) })),
    );
    // the bar is one unit wide; a model that spends more than one unit overflows it
    const scale = Math.max(1, m.total);
    const bar = el("div", { class: "budget-bar", role: "img",
      "aria-label": `${m.model}: ${m.parts.length} largest parts and the rest, total ${fmt(m.total, digits)}` });
    const legend = el("tbody");
    const parts = [...m.parts, { ...m.rest, rest: true }];
    parts.forEach((part, i) => {
      const colour = part.rest ? "#c8ced6" : PALETTE[i % PALETTE.length];
      bar.append(el("div", { class: "segment", title: `${part.label}: ${fmt(part.mass, 4)}`,
        style: `width: ${(100 * Math.max(part.mass, 0)) / scale}%; background: ${colour}` }));
      legend.append(el("tr", {},
        el("td", {}, el("span", { class: "swatch", style: `background: ${colour}` })),
        el("td", { class: part.configuration ? "pixels" : "", text: part.label }),
        el("td", { class: "num", text: fmt(part.mass, 4) })));
    });
    const one = el("div", { class: "budget-one", style: `left: ${100 / scale}%`, title: "one unit" });
    box.append(el("div", { class: "budget-track" }, bar, one),
      el("table", { class: "data parts" }, el("thead", {}, el("tr", {},
        el("th", { scope: "col", text: "" }), el("th", { scope: "col", text: "part" }),
        el("th", { scope: "col", class: "num", text: "probability" }))), legend));
    return box;
  },
  async drawFlow(m) {
    const P = await plotly();
    if (!m) { P.purge("mass-plot"); return; }
    const { x, y, z } = m.density;
    const shapes = m.parts.map((part, i) => ({ type: "rect", x0: part.box[0], x1: part.box[1], y0: part.box[2], y1: part.box[3],
      line: { color: PALETTE[i % PALETTE.length], width: 2 } }));
    P.react("mass-plot", [{ type: "heatmap", x, y, z, colorscale: "Greys", reversescale: true, colorbar: { title: { text: "density" } } }], {
      title: { text: `${m.model}: where its unit of mass lies (the ${m.parts.length} largest regions outlined)` },
      shapes, xaxis: { title: { text: "x₁" }, constrain: "domain" }, yaxis: { title: { text: "x₂" }, scaleanchor: "x", constrain: "domain" },
      margin: { t: 40 },
    }, { responsive: true, displaylogo: false });
  },
};

// ---------------------------------------------------------------- 7: surprise, entropy
const bitsAndNats = (m) => `${fmt(m.bits, 2)} bits (${fmt(m.nats, 2)} nats)`;

const surprise = {
  init() {
    this.panel = new Panel("surprise");
    this.event = 7;
    $("surprise-events").replaceChildren(...Array.from({ length: 8 }, (_, k) => {
      const chip = el("button", { type: "button", "data-event": String(k), "aria-pressed": String(k === this.event), text: String(k) });
      chip.addEventListener("click", () => { this.event = k; this.update(); });
      return chip;
    }));
    const update = debounce(() => this.update(), 60);
    for (const key of ["p", "q"]) {
      const slider = $(`surprise-${key}`);
      slider.addEventListener("input", () => { $(`surprise-${key}-value`).textContent = Number(slider.value).toFixed(2); update(); });
    }
    this.update();
  },
  async update() {
    for (const chip of $("surprise-events").children) chip.setAttribute("aria-pressed", String(Number(chip.dataset.event) === this.event));
    const p = $("surprise-p").value;
    const q = $("surprise-q").value;
    const d = await this.panel.request("Fitting p and q to their draws…",
      () => api(`api/surprise?p=${p}&q=${q}&event=${this.event}`));
    if (!d) return;
    for (const dist of d.distributions) {
      const key = dist.name;
      $(`surprise-${key}-value`).textContent = dist.peakedness.toFixed(2);
      $(`surprise-${key}-event`).textContent = `${fmt(dist.event_surprise_bits, 2)} bits`;
      $(`surprise-${key}-prob`).textContent = fmt(dist.event_probability, 4);
      $(`surprise-${key}-entropy`).textContent = bitsAndNats(dist.entropy);
    }
    const rows = [
      ["cross-entropy H(p, q)", d.cross_entropy.p_q], ["cross-entropy H(q, p)", d.cross_entropy.q_p],
      ["KL(p ‖ q)", d.kl.p_q], ["KL(q ‖ p)", d.kl.q_p],
    ];
    $("surprise-info").tBodies[0].replaceChildren(...rows.map(([name, m]) => el("tr", {},
      el("td", { text: name }), el("td", { class: "num", text: fmt(m.bits, 3) }),
      el("td", { class: "num", text: fmt(m.nats, 3) }), el("td", { text: `${m.method}, ${m.likelihood}` }))));
    $("surprise-note").textContent = `Each distribution is a model of the family “${d.model}” fitted to `
      + `${fmtInt(d.n_draws)} draws from it: its probabilities (bars) differ from the exact ones (rings) by the sampling error.`;
    try { await this.draw(d); } catch (e) { this.panel.showError(e); }
  },
  async draw(d) {
    const P = await plotly();
    const outcomes = d.distributions[0].fitted.map((_, k) => String(k));
    const colours = { p: "#2557a7", q: "#e07b39" };
    const outline = outcomes.map((_, k) => (k === d.event ? 3 : 0)); // the chosen event's bars
    const probs = [];
    const bits = [];
    for (const dist of d.distributions) {
      const c = colours[dist.name];
      probs.push({ type: "bar", name: `${dist.name} (fitted)`, x: outcomes, y: dist.fitted, offsetgroup: dist.name,
        marker: { color: c, line: { color: "#1d232b", width: outline } } });
      probs.push({ type: "scatter", mode: "markers", name: "exact", x: outcomes, y: dist.true, offsetgroup: dist.name,
        marker: { color: "#1d232b", symbol: "circle-open", size: 8 }, showlegend: dist.name === "q" });
      bits.push({ type: "bar", name: dist.name, x: outcomes, y: dist.surprise_bits, marker: { color: c, line: { color: "#1d232b", width: outline } },
        text: dist.surprise_bits.map((b) => fmt(b, 1)), textposition: "outside" });
    }
    const entropyLines = d.distributions.map((dist) => ({ type: "line", xref: "paper", x0: 0, x1: 1, y0: dist.entropy.bits, y1: dist.entropy.bits,
      line: { color: colours[dist.name], dash: "dash", width: 2 } }));
    const notes = d.distributions.map((dist) => ({ xref: "paper", x: 1.01, y: dist.entropy.bits, xanchor: "left", showarrow: false,
      text: `H(${dist.name})`, font: { color: colours[dist.name] } }));
    const xaxis = { title: { text: "outcome" }, type: "category" };
    P.react("surprise-probs", probs, {
      title: { text: "probability of each outcome (outlined: the event)" }, barmode: "group", scattermode: "group",
      xaxis, yaxis: { title: { text: "probability" }, rangemode: "tozero" },
      legend: { orientation: "h", y: -0.2 }, margin: { t: 40 },
    }, { responsive: true, displaylogo: false });
    P.react("surprise-bits", bits, {
      title: { text: "surprise −log₂ p (dashed: the entropy, its average)" }, barmode: "group",
      xaxis, yaxis: { title: { text: "bits" }, rangemode: "tozero" },
      shapes: entropyLines, annotations: notes, legend: { orientation: "h", y: -0.2 }, margin: { t: 40, r: 60 },
    }, { responsive: true, displaylogo: false });
  },
};

// ------------------------------------------------------- 8 and 9: paths over the plane
/** Lines of every path over the `tail` frames up to frame k (one trace, paths separated by
 *  gaps), and the paths' positions at frame k. `paths` is (frames, n, 2). */
function pathTraces(paths, k, colour, tail = Infinity) {
  const xs = [];
  const ys = [];
  const first = Math.max(0, k - tail);
  for (let i = 0; i < paths[0].length; i++) {
    for (let f = first; f <= k; f++) { xs.push(paths[f][i][0]); ys.push(paths[f][i][1]); }
    xs.push(null); ys.push(null);
  }
  const name = Number.isFinite(tail) ? `the last ${tail} steps` : "paths so far";
  return [
    { type: "scatter", mode: "lines", x: xs, y: ys, line: { color: colour, width: 1 }, opacity: 0.6, name, hoverinfo: "skip" },
    { type: "scatter", mode: "markers", x: paths[k].map((p) => p[0]), y: paths[k].map((p) => p[1]),
      marker: { size: 7, color: colour, line: { width: 1, color: "#1d232b" } }, name: `positions at frame ${k}` },
  ];
}

/** A frame slider over a view's paths: redrawn in the page, no new request. */
function frameSlider(id, frames, start, onMove) {
  const slider = $(id);
  slider.max = String(frames - 1);
  slider.value = String(start);
  slider.oninput = () => onMove(Number(slider.value));
}

const SCORE_TAIL = 5; // Langevin chains jump: only their last few steps are drawn

const score = {
  async init() {
    this.panel = new Panel("score");
    this.seed = 0;
    const opts = await this.panel.request("Loading the choices…", () => api("api/score/options"));
    if (!opts) return;
    $("score-data").replaceChildren(...opts.datasets.map((d) => el("option", { value: d, text: d })));
    $("score-model").replaceChildren(...opts.models.map((m) => el("option", { value: m, text: m })));
    for (const id of ["score-data", "score-model"]) $(id).addEventListener("change", () => this.update());
    $("score-resample").addEventListener("click", () => {
      this.seed += 1;
      $("score-seed").textContent = String(this.seed);
      this.update();
    });
    this.update();
  },
  async update() {
    const data = $("score-data").value;
    const model = $("score-model").value;
    const d = await this.panel.request(`Fitting ${model} on ${data} (first use only) and running its Langevin chains…`,
      () => api(`api/score?data=${encodeURIComponent(data)}&model=${encodeURIComponent(model)}&grid=20&chains=32&frames=40&seed=${this.seed}`));
    if (!d) return;
    this.last = d;
    const frames = d.paths.length;
    $("score-frames").textContent = String(frames - 1);
    frameSlider("score-frame", frames, frames - 1, (k) => this.show(k));
    try { await this.draw(d); } catch (e) { this.panel.showError(e); }
    this.show(Number($("score-frame").value)); // where the slider is now: it may have moved meanwhile
  },
  /** The arrows: unit-length segments through the grid points, heads coloured by log₁₀ |score|. */
  arrows(d) {
    const step = Math.min(d.x[1] - d.x[0], d.y[1] - d.y[0]);
    const half = 0.4 * step;
    const sx = [];
    const sy = [];
    const hx = [];
    const hy = [];
    const angle = [];
    const size = [];
    d.y.forEach((y0, i) => d.x.forEach((x0, j) => {
      const n = d.norm[i][j];
      if (!(n > 0)) return;
      const dx = (d.u[i][j] / n) * half;
      const dy = (d.v[i][j] / n) * half;
      sx.push(x0 - dx, x0 + dx, null);
      sy.push(y0 - dy, y0 + dy, null);
      hx.push(x0 + dx); hy.push(y0 + dy);
      angle.push(90 - (Math.atan2(dy, dx) * 180) / Math.PI); // plotly: degrees clockwise from up
      size.push(Math.log10(n));
    }));
    return [
      { type: "scatter", mode: "lines", x: sx, y: sy, line: { color: "#8fa3bd", width: 1.5 }, hoverinfo: "skip", showlegend: false },
      { type: "scatter", mode: "markers", x: hx, y: hy, name: "score ∇ log p (direction)",
        marker: { symbol: "arrow", angle, size: 9, color: size, colorscale: "Viridis", colorbar: { title: { text: "log₁₀ |∇ log p|" } } },
        text: size.map((s) => `|∇ log p| = ${fmt(10 ** s, 2)}`), hoverinfo: "text" },
    ];
  },
  async draw(d) {
    const P = await plotly();
    const points = { type: "scatter", mode: "markers", x: d.points.map((p) => p[0]), y: d.points.map((p) => p[1]),
      marker: { size: 3, color: "#5b6673" }, name: "training points", hoverinfo: "skip" };
    this.fixed = [points, ...this.arrows(d)];
    const pad = 0.05 * (d.x[d.x.length - 1] - d.x[0]);
    this.layout = {
      title: { text: `${d.model} on ${d.data}: the learned score and ${d.paths[0].length} Langevin chains` },
      xaxis: { title: { text: "x₁" }, range: [d.x[0] - pad, d.x[d.x.length - 1] + pad], constrain: "domain" },
      yaxis: { title: { text: "x₂" }, range: [d.y[0] - pad, d.y[d.y.length - 1] + pad], scaleanchor: "x", constrain: "domain" },
      legend: { orientation: "h", y: -0.15 }, margin: { t: 40 },
    };
    await P.react("score-plot", [...this.fixed, ...pathTraces(d.paths, d.paths.length - 1, "#b3261e", SCORE_TAIL)], this.layout,
      { responsive: true, displaylogo: false });
  },
  show(k) {
    const d = this.last;
    if (!d) return;
    $("score-frame").value = String(k);
    $("score-frame-value").textContent = String(k);
    $("score-distance").textContent = fmt(d.distance_to_data[k], 3);
    if (window.Plotly && this.fixed) {
      window.Plotly.react("score-plot", [...this.fixed, ...pathTraces(d.paths, k, "#b3261e", SCORE_TAIL)], this.layout);
    }
  },
};

const ode = {
  async init() {
    this.panel = new Panel("ode");
    this.seed = 0;
    const opts = await this.panel.request("Loading the choices…", () => api("api/ode/options"));
    if (!opts) return;
    $("ode-data").replaceChildren(...opts.datasets.map((d) => el("option", { value: d, text: d })));
    $("ode-model").replaceChildren(...opts.models.map((m) => el("option", { value: m.model, text: `${m.model} — ${m.likelihood} likelihood` })));
    for (const id of ["ode-data", "ode-model"]) $(id).addEventListener("change", () => this.update());
    $("ode-resample").addEventListener("click", () => {
      this.seed += 1;
      $("ode-seed").textContent = String(this.seed);
      this.update();
    });
    this.update();
  },
  async update() {
    const data = $("ode-data").value;
    const model = $("ode-model").value;
    const d = await this.panel.request(`Fitting ${model} on ${data} (first use only), integrating its ODE and its density on a grid…`,
      () => api(`api/ode?data=${encodeURIComponent(data)}&model=${encodeURIComponent(model)}&grid=40&paths=64&frames=30&seed=${this.seed}`));
    if (!d) return;
    this.last = d;
    const frames = d.paths.length;
    $("ode-frames").textContent = String(frames - 1);
    $("ode-integral").textContent = d.integral === null ? "not defined (no likelihood)" : fmt(d.integral, 3);
    $("ode-likelihood").textContent = d.likelihood;
    const details = Object.entries(d.details || {}).map(([k, v]) => `${k} ${fmt(v, typeof v === "number" && !Number.isInteger(v) ? 6 : 0)}`);
    $("ode-details").textContent = details.length ? ` · ${details.join(", ")} (the density's solve)` : "";
    frameSlider("ode-frame", frames, frames - 1, (k) => this.show(k));
    try { await this.draw(d); } catch (e) { this.panel.showError(e); }
    this.show(Number($("ode-frame").value)); // where the slider is now: it may have moved meanwhile
  },
  async draw(d) {
    const P = await plotly();
    this.fixed = d.z ? [{ type: "heatmap", x: d.x, y: d.y, z: d.z, colorscale: "Viridis", colorbar: { title: { text: "density" } }, name: "density" }] : [];
    // one view for every frame: the density's box and every path point
    const all = d.paths.flat();
    const xs = all.map((p) => p[0]).concat(d.x || []);
    const ys = all.map((p) => p[1]).concat(d.y || []);
    this.layout = {
      title: { text: `${d.model} on ${d.data}: ${d.paths[0].length} paths from the Gaussian (frame 0) to the data` },
      xaxis: { title: { text: "x₁" }, range: [Math.min(...xs), Math.max(...xs)], constrain: "domain" },
      yaxis: { title: { text: "x₂" }, range: [Math.min(...ys), Math.max(...ys)], scaleanchor: "x", constrain: "domain" },
      legend: { orientation: "h", y: -0.15 }, margin: { t: 40 },
    };
    await P.react("ode-plot", [...this.fixed, ...pathTraces(d.paths, d.paths.length - 1, "#ffffff")], this.layout,
      { responsive: true, displaylogo: false });
  },
  show(k) {
    const d = this.last;
    if (!d) return;
    $("ode-frame").value = String(k);
    $("ode-frame-value").textContent = String(k);
    $("ode-distance").textContent = fmt(d.distance_to_data[k], 3);
    if (window.Plotly && this.fixed) window.Plotly.react("ode-plot", [...this.fixed, ...pathTraces(d.paths, k, "#ffffff")], this.layout);
  },
};

// --------------------------------------------------------------------- 10: compare
const NLL_KEYS = ["test_nll_nats", "test_nll_bits_per_dim"];
const COLUMNS = [
  { key: "model", label: "model" },
  { key: "family", label: "family" },
  { key: "likelihood", label: "likelihood" },
  { key: "units", label: "units" },
  { key: "test_nll_nats", label: "test NLL (nats)", digits: 2 },
  { key: "test_nll_bits_per_dim", label: "bits/dim", digits: 3 },
  { key: "test_nll_sem", label: "± s.e.m.", digits: 2 },
  { key: "n_parameters", label: "parameters", digits: 0 },
  { key: "fit_seconds", label: "fit (s)", digits: 1 },
  { key: "sample_seconds", label: "sample (s)", digits: 2 },
  { key: "fd", label: "FD", digits: 2 },
  { key: "precision", label: "precision", digits: 2 },
  { key: "recall", label: "recall", digits: 2 },
  { key: "mmd", label: "MMD", digits: 3 },
  { key: "memorisation", label: "memorisation", digits: 2 },
  { key: "status", label: "status" },
];
const KIND_MARK = { exact: "", bound: "≤ ", estimate: "≈ " };

/** What a row's NLL is on the data's own scale: an exact density of dequantised data is only
 *  an upper bound on the discrete NLL, so it is drawn and marked as a bound. */
function nllKind(row) {
  return row.likelihood === "exact" && row.units === "dequantised" ? "bound" : row.likelihood;
}

/** A likelihood cell says what kind of number it is: "≤ 3.04" for a bound, "none" for none. */
function compareCell(row, col) {
  const v = row[col.key];
  if (NLL_KEYS.includes(col.key)) {
    if (row.likelihood === "none") return "none";
    if (v === null || v === undefined) return "—";
    return (KIND_MARK[nllKind(row)] ?? "") + fmt(v, col.digits);
  }
  if (col.key === "status" && row.status !== "ok") return `${row.status}: ${row.error ?? ""}`.trim();
  return col.digits === undefined ? fmt(v) : fmt(v, col.digits);
}

const compare = {
  async init() {
    this.panel = new Panel("compare");
    this.sort = { key: null, dir: 1 };
    const list = await this.panel.request("Looking for compare reports…", () => api("api/compare/list"));
    if (!list) return;
    const names = [...new Set(list.reports.map((r) => r.data))];
    if (!names.length) {
      this.panel.showError(new Error("no compare reports found in the reports folder; run: ptheta compare --data digits --out reports/digits, then reload"));
      return;
    }
    $("compare-data").replaceChildren(...names.map((d) => el("option", { value: d, text: d })));
    $("compare-data").addEventListener("change", () => this.load());
    const head = $("compare-table").tHead.rows[0];
    head.replaceChildren(...COLUMNS.map((c) => {
      const th = el("th", { scope: "col", tabindex: "0", "data-key": c.key, "aria-sort": "none", text: c.label,
        class: c.digits === undefined ? "" : "num", title: `sort by ${c.label}` });
      th.addEventListener("click", () => this.sortBy(c.key));
      th.addEventListener("keydown", (e) => { if (e.key === "Enter" || e.key === " ") { e.preventDefault(); this.sortBy(c.key); } });
      return th;
    }));
    this.load();
  },
  async load() {
    const data = $("compare-data").value;
    const report = await this.panel.request("Reading the report…", () => api(`api/compare?data=${encodeURIComponent(data)}`));
    if (!report) return;
    this.report = report;
    const split = report.split ? ` · split ${report.split.train}/${report.split.val}/${report.split.test} (train/val/test)` : "";
    $("compare-created").textContent = `created ${report.created ?? "?"} · budget ${fmt(report.budget_seconds, 0)} s per model${split}`;
    this.drawTable();
    try { await this.drawChart(); } catch (e) { this.panel.showError(e); }
  },
  sortBy(key) {
    this.sort = { key, dir: this.sort.key === key ? -this.sort.dir : 1 };
    this.drawTable();
  },
  sortedRows() {
    const rows = [...this.report.rows];
    const { key, dir } = this.sort;
    if (!key) return rows;
    // a likelihood of kind "none" has no number: like a missing value it sorts last
    const value = (r) => (NLL_KEYS.includes(key) && r.likelihood === "none" ? null : r[key]);
    return rows.sort((a, b) => {
      const va = value(a);
      const vb = value(b);
      if (va === null || va === undefined) return vb === null || vb === undefined ? 0 : 1;
      if (vb === null || vb === undefined) return -1;
      return dir * (typeof va === "number" ? va - vb : String(va).localeCompare(String(vb)));
    });
  },
  drawTable() {
    for (const th of $("compare-table").tHead.rows[0].cells) {
      const on = th.dataset.key === this.sort.key;
      th.setAttribute("aria-sort", on ? (this.sort.dir > 0 ? "ascending" : "descending") : "none");
    }
    $("compare-table").tBodies[0].replaceChildren(...this.sortedRows().map((row) => el("tr",
      { "data-model": row.model, class: row.status === "ok" ? "" : "failed" },
      ...COLUMNS.map((c) => {
        const cell = el("td", { text: compareCell(row, c), "data-key": c.key });
        if (c.digits !== undefined) cell.classList.add("num");
        if (NLL_KEYS.includes(c.key) && row.likelihood === "none") cell.classList.add("kind-none");
        return cell;
      }))));
  },
  async drawChart() {
    const rows = this.report.rows;
    const label = (r) => `${r.model}<br>(${r.units ?? "?"})`;
    const styles = {
      exact: { name: "exact", marker: { color: "#2557a7" } },
      bound: { name: "upper bound (≤)", marker: { color: "rgba(0,0,0,0)", line: { color: "#2557a7", width: 2 }, pattern: { shape: "/", fgcolor: "#2557a7" } } },
      estimate: { name: "estimate (≈)", marker: { color: "rgba(0,0,0,0)", line: { color: "#7a4fb5", width: 2 }, pattern: { shape: ".", fgcolor: "#7a4fb5" } } },
    };
    const traces = [];
    for (const [kind, style] of Object.entries(styles)) {
      const these = rows.filter((r) => nllKind(r) === kind && r.likelihood !== "none" && r.test_nll_bits_per_dim !== null);
      if (!these.length) continue;
      traces.push({ type: "bar", ...style, x: these.map(label), y: these.map((r) => r.test_nll_bits_per_dim),
        text: these.map((r) => KIND_MARK[kind] + fmt(r.test_nll_bits_per_dim, 3)), textposition: "outside" });
    }
    // no bar for a model without a number: its category is kept and labelled in words
    const empty = rows.filter((r) => r.likelihood === "none" || r.test_nll_bits_per_dim === null);
    if (empty.length) {
      traces.push({ type: "bar", name: "no likelihood (none)", x: empty.map(label), y: empty.map(() => 0),
        marker: { color: "rgba(0,0,0,0)" }, hoverinfo: "skip", showlegend: false });
    }
    const annotations = empty.map((r) => ({ x: label(r), y: 0, yanchor: "bottom", showarrow: false,
      text: r.status !== "ok" ? "failed" : r.likelihood === "none" ? "none" : "not computed", font: { color: "#5b6673" } }));
    (await plotly()).react("compare-chart", traces, {
      title: { text: `test NLL on ${this.report.data} (bits/dim, lower is better)` },
      barmode: "group", xaxis: { categoryorder: "array", categoryarray: rows.map(label) },
      yaxis: { title: { text: "bits per dimension" }, rangemode: "tozero" }, annotations,
      legend: { orientation: "h", y: -0.25 }, margin: { t: 40, b: 90 },
    }, { responsive: true, displaylogo: false });
    const units = new Set(rows.filter((r) => r.likelihood !== "none").map((r) => r.units));
    $("compare-units").textContent = units.has("continuous") && units.size > 1
      ? "Rows in continuous units are densities of real-valued data: not comparable with discrete NLLs in the same chart."
      : units.has("dequantised") ? "Dequantised rows are upper bounds on the discrete NLL, drawn as bounds." : "";
  },
};

// ------------------------------------------------------------------- 11: sequences
/** One sampled (or observed) sequence as a row of letter cells; with `states`, each cell
 *  is coloured by the state of the most probable path, else grey. */
function sequenceRow(seq, withStates) {
  const letters = seq.text === null ? seq.tokens.map(String) : [...seq.text];
  const cells = letters.map((ch, t) => {
    const state = withStates && seq.states ? seq.states[t] : null;
    const attrs = { class: "tok", text: ch === " " ? "␣" : ch };
    if (state !== null && state >= 0) {
      attrs.style = `background: ${PALETTE[state % PALETTE.length]}; color: #fff`;
      attrs["data-state"] = String(state);
      attrs.title = `state ${state}`;
    }
    return el("span", attrs);
  });
  return el("div", { class: "seq", "data-testid": "sequence" }, ...cells, el("span", { class: "end", text: "∎", title: "end of the sequence" }));
}

const sequences = {
  async init() {
    this.panel = new Panel("sequences");
    this.seed = 0;
    $("sequences-resample").addEventListener("click", () => {
      this.seed += 1;
      $("sequences-seed").textContent = String(this.seed);
      this.update();
    });
    await this.update();
  },
  async update() {
    const seed = this.seed;
    const data = await this.panel.request(
      "Fitting the sequence models on the words (first use only; cached afterwards)…",
      () => api(`api/sequences?n=12&seed=${seed}`));
    if (!data) return;
    $("sequences-data").textContent = `${data.data}: ${data.description}. Test split: ${fmtInt(data.n_test)} words, ${fmtInt(data.test_steps)} steps (letters plus one end per word).`;
    $("sequences-unit").textContent = (data.per_step_unit || "bits / step").replace("/", " / ");
    const mark = (m) => KIND_MARK[m.likelihood] || "";
    $("sequences-table").tBodies[0].replaceChildren(...data.models.map((m) => el("tr", { "data-model": m.model },
      el("td", { text: m.model }), el("td", { text: m.likelihood }),
      el("td", { class: "num", text: `${mark(m)}${fmt(m.test_nll_nats, 2)} ± ${fmt(m.test_nll_sem, 2)}` }),
      el("td", { class: "num", "data-testid": "nats-per-step", text: mark(m) + fmt(m.test_nll_per_step, 3) }),
      el("td", { class: "num", text: mark(m) + fmt(m.test_bits_per_step, 3) }),
      el("td", { class: "num", text: fmtInt(m.n_parameters) }))));
    $("sequences-note").textContent = `NLL ${data.note}.`;
    const cards = data.models.map((m) => el("div", { class: "card", "data-model": m.model },
      el("h3", { text: m.model }),
      el("p", { class: "note", text: m.has_states
        ? `${m.n_states} hidden states: colour = the state of the most probable path`
        : "no hidden states" }),
      ...m.samples.map((s) => sequenceRow(s, m.has_states))));
    cards.push(el("div", { class: "card", "data-model": "observed" }, el("h3", { text: "observed test words" }),
      el("p", { class: "note", text: "the data themselves" }), ...data.observed.map((s) => sequenceRow(s, false))));
    $("sequences-models").replaceChildren(...cards);
    $("sequences-models").dataset.seed = String(data.seed);
  },
};

// -------------------------------------------------------------------------- tabs
const VIEWS = { space, structure, surface, spam, flow, mass, surprise, score, ode, compare, sequences };
const started = new Set();

function show(name) {
  if (!VIEWS[name]) name = "space";
  for (const tab of document.querySelectorAll('[role="tab"]')) {
    const on = tab.dataset.view === name;
    tab.setAttribute("aria-selected", String(on));
    tab.tabIndex = on ? 0 : -1;
    $(tab.getAttribute("aria-controls")).hidden = !on;
  }
  if (location.hash !== `#${name}`) history.replaceState(null, "", `#${name}`);
  if (!started.has(name)) {
    started.add(name); // fitted on first use: a view asks the server only once it is opened
    Promise.resolve(VIEWS[name].init()).catch((e) => new Panel(name).showError(e));
  } else if (window.Plotly) {
    for (const plot of $(`view-${name}`).querySelectorAll(".js-plotly-plot")) window.Plotly.Plots.resize(plot);
  }
}

function initTabs() {
  const tabs = [...document.querySelectorAll('[role="tab"]')];
  tabs.forEach((tab, i) => {
    tab.addEventListener("click", () => show(tab.dataset.view));
    tab.addEventListener("keydown", (e) => { // arrow keys move along the tab list (WAI-ARIA tabs)
      const step = { ArrowRight: 1, ArrowLeft: -1 }[e.key];
      if (!step) return;
      const next = tabs[(i + step + tabs.length) % tabs.length];
      next.focus();
      show(next.dataset.view);
    });
  });
  window.addEventListener("hashchange", () => show(location.hash.slice(1)));
  show(location.hash.slice(1));
  api("api/health").then((h) => { $("version").textContent = `ptheta ${h.version}`; }, () => {});
}

initTabs();
