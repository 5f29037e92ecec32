// dashboard/charts.js: the dashboard's two SVG charts, drawn from its model.
// Pure DOM: the model and the server's clock are handed in.

const $ = (id) => document.getElementById(id);
const SVG = "http://www.w3.org/2000/svg";

const STATE_COLORS = { active: "#26a269", warning: "#e5a50a", ended: "#9aa4ae" };
const REASON_COLORS = {
  client_ended: "#1a5fb4",
  client_gone: "#9141ac",
  idle_timeout: "#e5a50a",
  max_duration: "#c01c28",
  replaced: "#2ec27e",
  admin: "#5e5c64",
  server_shutdown: "#33c7de",
  error: "#ff7800",
};

/** The start of the bucket (`bucketS` seconds wide) that time `at` falls in. */
export function bucketStart(at, bucketS) {
  return Math.floor(at / bucketS) * bucketS;
}

function svg(tag, attrs = {}, textContent = null) {
  const node = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, String(value));
  if (textContent !== null) node.textContent = textContent;
  return node;
}

function endsInWindow(model, now) {
  const first = bucketStart(now, model.bucketS) - 11 * model.bucketS;
  let total = 0;
  for (const [key, count] of model.ends) {
    if (Number(key.split("|")[0]) >= first) total += count;
  }
  return total;
}

/** The bar chart of live sessions by state, and sessions ended in the last hour. */
export function renderStates(model, now) {
  const counts = { active: 0, warning: 0 };
  for (const s of model.live.values()) counts[s.state] = (counts[s.state] ?? 0) + 1;
  const bars = [
    ["active", counts.active],
    ["warning", counts.warning],
    ["ended", endsInWindow(model, now)],
  ];
  const max = Math.max(1, ...bars.map(([, n]) => n));
  const chart = $("chart-states");
  chart.replaceChildren();
  bars.forEach(([state, n], i) => {
    const y = 12 + i * 36;
    const label = state === "ended" ? "ended (1h)" : state;
    chart.append(svg("text", { x: 0, y: y + 15 }, label));
    chart.append(svg("rect", { x: 84, y, width: 200, height: 22, rx: 3, fill: "#eef1f4" }));
    const width = n === 0 ? 0 : Math.max(3, (200 * n) / max);
    chart.append(
      svg("rect", { x: 84, y, width, height: 22, rx: 3, fill: STATE_COLORS[state], "data-state": state }),
    );
    chart.append(svg("text", { x: 292, y: y + 15, class: "count" }, String(n)));
  });
  $("states-summary").textContent =
    `${model.live.size} live: ${counts.active} active, ${counts.warning} warning.`;
}

/** The stacked columns of ends by reason over the last 12 buckets, with its legend. */
// 60+ lines: one chart drawn top to bottom (axes, columns, labels, legend) reads best whole.
export function renderEnds(model, now) {
  const chart = $("chart-ends");
  chart.replaceChildren();
  const bucket = model.bucketS;
  const first = bucketStart(now, bucket) - 11 * bucket;
  const columns = [];
  const totals = {};
  for (let k = 0; k < 12; k++) {
    const start = first + k * bucket;
    const parts = [];
    for (const reason of Object.keys(REASON_COLORS)) {
      const n = model.ends.get(`${start}|${reason}`) ?? 0;
      if (n > 0) {
        parts.push([reason, n]);
        totals[reason] = (totals[reason] ?? 0) + n;
      }
    }
    columns.push(parts);
  }
  const max = Math.max(1, ...columns.map((parts) => parts.reduce((sum, [, n]) => sum + n, 0)));
  const left = 34;
  const top = 10;
  const height = 110;
  const width = 480;
  const slot = width / 12;
  chart.append(svg("line", { x1: left, y1: top + height, x2: left + width, y2: top + height, stroke: "#9aa4ae" }));
  chart.append(svg("text", { x: left - 6, y: top + 8, "text-anchor": "end" }, String(max)));
  chart.append(svg("text", { x: left - 6, y: top + height, "text-anchor": "end" }, "0"));
  columns.forEach((parts, k) => {
    let y = top + height;
    for (const [reason, n] of parts) {
      const h = (height * n) / max;
      y -= h;
      const rect = svg("rect", {
        x: left + k * slot + 3,
        y,
        width: slot - 6,
        height: h,
        fill: REASON_COLORS[reason],
        "data-reason": reason,
      });
      rect.append(svg("title", {}, `${n} × ${reason}`));
      chart.append(rect);
    }
  });
  const labels = [
    [0, `-${Math.round((12 * bucket) / 60)} min`],
    [6, `-${Math.round((6 * bucket) / 60)} min`],
    [11.5, "now"],
  ];
  for (const [k, label] of labels) {
    chart.append(svg("text", { x: left + k * slot, y: top + height + 16 }, label));
  }
  const legend = $("ends-legend");
  legend.replaceChildren();
  const reasons = Object.keys(totals);
  if (reasons.length === 0) {
    const item = document.createElement("li");
    item.className = "muted";
    item.textContent = "No session ended in the last hour.";
    legend.append(item);
  }
  for (const reason of reasons) {
    const item = document.createElement("li");
    item.dataset.reason = reason;
    const swatch = document.createElement("i");
    swatch.style.background = REASON_COLORS[reason];
    item.append(swatch, document.createTextNode(`${reason} ${totals[reason]}`));
    legend.append(item);
  }
}
