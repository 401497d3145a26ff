"use strict";
// callpulse dashboard: one server-sent-events stream, re-rendered on each snapshot.
const $ = (s) => document.querySelector(s);
const esc = (s) => String(s ?? "").replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
const fmt = (x, d = 2) => (x === undefined || x === null || Number.isNaN(x) ? "–" : Number(x).toFixed(d));
const senti = (x) => (x === undefined ? "–" : x < -0.2 ? `<span class="neg">▼ ${fmt(x)} negative</span>` : x > 0.2 ? `<span class="pos">▲ ${fmt(x)} positive</span>` : `● ${fmt(x)} neutral`);
const mmss = (s) => `${Math.floor((s || 0) / 60)}:${String(Math.floor((s || 0) % 60)).padStart(2, "0")}`;
if (new URLSearchParams(location.search).get("wall")) document.body.classList.add("wall");
let state = { calls: [], alerts: [], kpis: {} };

function spark(call) {
  const W = 300, H = 46, all = [...call.spark.agent, ...call.spark.customer];
  if (!all.length) return `<svg class="spark" viewBox="0 0 ${W} ${H}"></svg>`;
  const t1 = Math.max(...all.map((p) => p[0])), t0 = t1 - 60;
  const x = (t) => ((t - t0) / 60) * W, y = (v) => H / 2 - (v * H) / 2.2;
  const line = (pts, cls) => pts.length ? `<polyline fill="none" stroke="var(--${cls})" stroke-width="2" points="${pts.filter((p) => p[0] >= t0).map((p) => `${x(p[0]).toFixed(1)},${y(p[1]).toFixed(1)}`).join(" ")}"/>` : "";
  const marks = call.marks.silence.filter((t) => t >= t0).map((t) => `<rect x="${x(t - 1)}" y="0" width="${W / 60}" height="4" fill="#999"><title>silence</title></rect>`).join("")
    + call.marks.overtalk.filter((t) => t >= t0).map((t) => `<rect x="${x(t - 1)}" y="${H - 4}" width="${W / 60}" height="4" fill="var(--neg)"><title>overtalk</title></rect>`).join("");
  return `<svg class="spark" viewBox="0 0 ${W} ${H}" preserveAspectRatio="none"><line x1="0" x2="${W}" y1="${H / 2}" y2="${H / 2}" stroke="#ddd"/>${marks}${line(call.spark.agent, "agent")}${line(call.spark.customer, "customer")}</svg>`;
}

function renderCalls() {
  const cards = state.calls.map((c) => {
    const risk = c.risk || 0, level = risk >= 50 ? 3 : risk >= 30 ? 2 : risk >= 15 ? 1 : 0;
    const open = c.alerts_open || 0;
    return `<div class="card r${level}" data-testid="call-card" data-call-id="${esc(c.call_id)}">
      <div class="top"><span>${esc(c.call_id)}</span><span class="risk" data-testid="risk">risk ${fmt(risk, 0)}</span></div>
      <div class="sub">${esc(c.queue || "–")} · ${esc(c.agent_id || "–")} · ${mmss(c.duration_s)}</div>
      <div class="row">customer: <span data-testid="customer-sentiment">${senti(c.customer_sentiment_avg)}</span></div>
      <div class="row">emotion: <b data-testid="customer-emotion">${esc(c.customer_emotion || "–")}</b> ${c.customer_emotion_score ? fmt(c.customer_emotion_score) : ""}
        · agent ${senti(c.agent_sentiment_avg)}</div>
      <div class="row">silence now ${fmt(c.silence_run_s, 0)} s · longest ${fmt(c.longest_silence_s, 0)} s · overtalk ${fmt(c.overtalk_s, 1)} s
        <span class="badge ${open ? "" : "none"}" data-testid="open-alerts">${open} alert${open == 1 ? "" : "s"}</span></div>
      ${spark(c)}</div>`;
  });
  $("#cards").innerHTML = cards.join("");
  $("#n-calls").textContent = state.calls.length;
  $("#empty").style.display = state.calls.length ? "none" : "block";
}

function renderAlerts() {
  $("#alert-list").innerHTML = state.alerts.map((a) => `<li class="${esc(a.severity)} ${esc(a.state)}" data-testid="alert-item" data-alert-id="${esc(a.alert_id)}">
    <span class="sev">${a.state === "open" ? (a.severity === "critical" ? "⚠⚠" : "⚠") : "✓"} ${esc(a.severity)}</span>
    <b>${esc(a.rule)}</b> · ${esc(a.call_id)} at ${mmss(a.t)}<br>${esc(a.message)}${a.state === "open" && a.evidence ? "<br>" + evidenceText(a.evidence) : ""}
    ${a.state === "open" ? (a.acked ? `<span class="acked" data-testid="acked">acknowledged by ${esc(a.acked.by)}</span>` : `<button data-testid="ack" data-ack="${esc(a.alert_id)}">acknowledge</button>`) : ""}</li>`).join("")
    || `<li class="empty">No alerts.</li>`;
}

const KPI_COLS = [["calls", "calls", 0], ["aht_s", "AHT s", 0], ["sentiment_end", "end sentiment", 2], ["negative_share", "negative %", 0, 100],
  ["improved_share", "improved %", 0, 100], ["alerts_per_100", "alerts/100", 1], ["silence_ratio", "silence %", 1, 100], ["overtalk_rate", "overtalk %", 1, 100]];
function renderKpis() {
  const dims = ["all", "queue", "campaign", "agent"].filter((d) => state.kpis[d]);
  $("#kpi-tables").innerHTML = dims.map((d) => `<h3>${d === "all" ? "All calls" : "By " + d}</h3><table class="kpi" data-testid="kpi-${d}"><tr><th>${d}</th><th>window</th>${KPI_COLS.map((c) => `<th>${c[1]}</th>`).join("")}</tr>` +
    Object.entries(state.kpis[d]).map(([name, k]) => ["15m", "1h", "today"].map((w, i) => `<tr><td>${i ? "" : esc(name)}</td><td>${w}</td>${KPI_COLS.map(([key, , dp, scale]) => {
      const v = k[`${w}.${key}`], ref = k[`today.${key}`];
      const arrow = w !== "today" && v !== undefined && ref !== undefined && Math.abs(v - ref) > 1e-9 ? (v > ref ? " ▲" : " ▼") : "";
      return `<td>${v === undefined ? "–" : fmt(v * (scale || 1), dp) + arrow}</td>`; }).join("")}</tr>`).join("")).join("") + "</table>").join("")
    || `<p class="empty">No ended calls yet: KPIs appear when calls end.</p>`;
}

// -- drill-down drawing: the call's timeline (labelled axes, emotion bands over the turns, alert markers and the
// evidence behind each alert) and the evidence panel.
const EMO_COLOURS = { angry: "#D55E00", disgust: "#8C510A", fearful: "#CC79A7", sad: "#0072B2", bored: "#7F7F7F",
  neutral: "#BBBBBB", calm: "#56B4E9", happy: "#009E73", surprised: "#F0E442" };
const TL = { W: 1000, H: 300, L: 62, R: 990, top: 14, mid: 84, bot: 154, bands: { agent: 166, customer: 182 }, bandH: 13, evTop: 204, evBot: 244, axis: 258 };

function timeTicks(T) {
  const step = [5, 10, 15, 30, 60, 120, 300, 600].find((s) => T / s <= 12) || 1200;
  const out = [];
  for (let t = 0; t <= T + 1e-9; t += step) out.push(t);
  return out;
}

function evidenceText(ev) {
  if (!ev) return "";
  const spans = (ev.spans || []).map(([a, b]) => `${mmss(a)}–${mmss(b)}`).join(", ");
  const what = ev.level !== undefined
    ? `evidence ${fmt(ev.level)} · peak ${fmt(ev.peak)} at ${mmss(ev.peak_t)} vs baseline ${fmt(ev.baseline)}${ev.baseline_ready ? "" : " (prior)"} · ${ev.windows} windows over ${ev.turns ?? "?"} turn${ev.turns === 1 ? "" : "s"}`
    : `${esc(ev.metric)} ${fmt(ev.value)} since ${mmss(ev.held_from_t)}`;
  return `<span class="evidence" data-testid="alert-evidence">${what}${spans ? ` · heard ${spans}` : ""}</span>`;
}

function drawTimeline(c) {
  const { W, L, R, top, mid, bot, bands, bandH, evTop, evBot, axis } = TL;
  const T = Math.max(10, ...c.timeline.map((e) => e.t));
  const x = (t) => L + (Math.max(0, t) / T) * (R - L), dx = (R - L) / T;
  const y = (v) => mid - v * (mid - top);
  let svg = "";
  // sentiment axis
  for (const v of [-1, -0.5, 0, 0.5, 1]) {
    svg += `<line x1="${L}" x2="${R}" y1="${y(v)}" y2="${y(v)}" stroke="${v ? "#eee" : "#ccc"}"/><text x="${L - 4}" y="${y(v) + 4}" text-anchor="end" class="tick">${v > 0 ? "+" : ""}${v}</text>`;
  }
  svg += `<text transform="translate(13 ${mid}) rotate(-90)" text-anchor="middle" class="axis-label">sentiment</text>`;
  // time axis
  svg += `<line x1="${L}" x2="${R}" y1="${axis}" y2="${axis}" stroke="#999"/>`;
  for (const t of timeTicks(T)) svg += `<line x1="${x(t)}" x2="${x(t)}" y1="${axis}" y2="${axis + 5}" stroke="#999"/><text x="${x(t)}" y="${axis + 17}" text-anchor="middle" class="tick">${mmss(t)}</text>`;
  svg += `<text x="${(L + R) / 2}" y="${axis + 36}" text-anchor="middle" class="axis-label">call time (m:ss)</text>`;
  // emotion bands over the turns: one row per leg, coloured by the window's top emotion, faded by its speech share
  for (const [leg, by] of Object.entries(bands)) svg += `<text x="${L - 4}" y="${by + 10}" text-anchor="end" class="tick">${leg}</text>`;
  let evMax = 1;
  for (const e of c.timeline) {
    const by = bands[e.leg];
    if (by === undefined) continue;
    if (e.speech > 0) {
      const colour = e.emotion ? EMO_COLOURS[e.emotion] || "#666" : "#ddd";
      svg += `<rect x="${x(e.t - 1)}" y="${by}" width="${dx + 0.5}" height="${bandH}" fill="${colour}" opacity="${0.35 + 0.65 * e.speech}"><title>${mmss(e.t)} ${e.leg}: ${esc(e.emotion || "speech, not scored")}${e.emotion_score ? " " + fmt(e.emotion_score) : ""}</title></rect>`;
    }
    if (e.leg === "customer" && e.silence) svg += `<rect x="${x(e.t - 1)}" y="${top}" width="${dx}" height="${bot - top}" fill="#888" opacity="0.10"><title>silence</title></rect>`;
    if (e.leg === "customer" && e.anger_evidence !== undefined) evMax = Math.max(evMax, e.anger_evidence, e.negative_evidence || 0);
  }
  const alerts = (c.alert_log || []).filter((a) => a.evidence);
  for (const a of alerts) if (a.evidence.level !== undefined) evMax = Math.max(evMax, a.evidence.level);
  evMax *= 1.15;
  // evidence behind each alert: the spans of the windows that built it, shaded over the plot
  for (const a of alerts) for (const [s0, s1] of a.evidence.spans || []) {
    svg += `<rect x="${x(s0)}" y="${top}" width="${Math.max(x(s1) - x(s0), 1)}" height="${bands.customer + bandH - top}" fill="var(--neg)" opacity="0.13" data-testid="evidence-span"><title>${esc(a.rule)} evidence ${mmss(s0)}–${mmss(s1)}</title></rect>`;
  }
  // sentiment lines, one polyline per talk stretch (a line across a silence would invent scores nobody measured)
  for (const leg of ["agent", "customer"]) {
    let run = [], last = -1e9;
    const flush = () => { if (run.length) svg += `<polyline fill="none" stroke="var(--${leg})" stroke-width="2.5" points="${run.join(" ")}"/>`; run = []; };
    for (const e of c.timeline.filter((e) => e.leg === leg && e.sentiment !== undefined)) {
      if (e.t - last > 3) flush();
      run.push(`${x(e.t).toFixed(1)},${y(e.sentiment).toFixed(1)}`);
      last = e.t;
    }
    flush();
  }
  // the customer's evidence levels (what the anger and negative rules watch)
  const ey = (v) => evBot - (v / evMax) * (evBot - evTop);
  svg += `<rect x="${L}" y="${evTop}" width="${R - L}" height="${evBot - evTop}" fill="#f3f4f6"/><text x="${L - 4}" y="${evTop + 10}" text-anchor="end" class="tick">${fmt(evMax / 1.15, 1)}</text><text x="${L - 4}" y="${evBot}" text-anchor="end" class="tick">0</text>`;
  svg += `<text x="${L + 4}" y="${evTop + 11}" class="tick">customer evidence: anger ━ negative ┅</text>`;
  for (const [key, dash] of [["anger_evidence", ""], ["negative_evidence", "4 3"]]) {
    const pts = c.timeline.filter((e) => e.leg === "customer" && e[key] !== undefined).map((e) => `${x(e.t).toFixed(1)},${ey(e[key]).toFixed(1)}`);
    if (pts.length) svg += `<polyline fill="none" stroke="var(--neg)" stroke-width="1.8" stroke-dasharray="${dash}" points="${pts.join(" ")}"/>`;
  }
  // alert markers
  (c.alert_log || []).forEach((a, i) => {    // labels stagger over three rows so that close alerts stay readable
    const anchor = x(a.t) > R - 150 ? "end" : "start", lx = x(a.t) + (anchor === "end" ? -3 : 3);
    svg += `<g data-testid="alert-marker"><line x1="${x(a.t)}" x2="${x(a.t)}" y1="${top - 6}" y2="${evBot}" stroke="var(--neg)" stroke-width="2"/><text x="${lx}" y="${top + 6 + 13 * (i % 3)}" text-anchor="${anchor}" class="alert-label">⚠ ${esc(a.rule)} ${mmss(a.t)}</text><title>${esc(a.rule)} opened at ${mmss(a.t)}</title></g>`;
  });
  return svg;
}

function evidencePanel(c) {
  const rows = (c.alert_log || []).map((a) => `<li data-testid="evidence-row"><b>${esc(a.rule)}</b> opened at ${mmss(a.t)}: ${evidenceText(a.evidence)}</li>`);
  return rows.length ? `<h3>Why the alerts fired</h3><ul class="evidence-list">${rows.join("")}</ul>` : "";
}

// Each open, redraw or close takes a new number; a redraw whose fetch returns after a later close or open is
// dropped, so a slow fetch never reopens a drill-down that the supervisor has just closed.
let drillSeq = 0;

async function drill(id) {
  const seq = ++drillSeq;
  const r = await fetch(`/api/calls/${encodeURIComponent(id)}`);
  if (!r.ok) return;
  const c = await r.json();
  if (seq !== drillSeq) return;
  $("#drill-title").textContent = `${c.call_id} — ${c.status}`;
  $("#drill-meta").innerHTML = `${esc(c.queue)} · ${esc(c.campaign)} · agent ${esc(c.agent_id)} · ${mmss(c.duration_s)} · talk ${fmt(c.agent_talk_ratio * 100, 0)}% / ${fmt(c.customer_talk_ratio * 100, 0)}% · interruptions ${c.interruptions_agent ?? 0} / ${c.interruptions_customer ?? 0}`;
  $("#timeline").setAttribute("viewBox", `0 0 ${TL.W} ${TL.H}`);
  $("#timeline").innerHTML = drawTimeline(c);
  $("#drill-emotions").innerHTML = `<p class="emo-legend">${Object.entries(EMO_COLOURS).map(([k, v]) => `<i class="sw" style="background:${v}"></i> ${k}`).join(" ")}
    · <i class="sw" style="background:var(--neg);opacity:.35"></i> evidence behind an alert · <b style="color:var(--neg)">│</b> alert</p>`;
  $("#drill-evidence").innerHTML = evidencePanel(c);
  const s = c.summary;
  $("#drill-summary").innerHTML = s ? `<h3>End of call (${esc(s.end_reason)})</h3><p>duration ${mmss(s.duration_s)} · customer sentiment start ${fmt(s.customer_sentiment_start)} → end ${fmt(s.customer_sentiment_end)} (min ${fmt(s.customer_sentiment_min)}, mean ${fmt(s.customer_sentiment_mean)}) · silence ${fmt(s.silence_s, 0)} s (longest ${fmt(s.longest_silence_s, 0)} s) · overtalk ${fmt(s.overtalk_s, 1)} s · dominant emotions: agent ${esc(s.agent_dominant_emotion)}, customer ${esc(s.customer_dominant_emotion)} · alerts ${s.alerts} ${esc((s.alert_rules || []).join(", "))}</p>` : "<p>Call in progress.</p>";
  $("#drill").classList.remove("hidden");
  $("#drill").dataset.callId = id;
}

document.addEventListener("click", async (ev) => {
  const ack = ev.target.closest("[data-ack]");
  if (ack) { ack.disabled = true; await fetch(`/api/alerts/${encodeURIComponent(ack.dataset.ack)}/ack`, { method: "POST", headers: { "X-Requested-With": "callpulse" } }); return; }
  const card = ev.target.closest(".card");
  if (card) return drill(card.dataset.callId);
  const nav = ev.target.closest("nav button");
  if (nav) {
    document.querySelectorAll("nav button").forEach((b) => b.classList.toggle("active", b === nav));
    document.querySelectorAll(".view").forEach((v) => v.classList.toggle("active", v.id === nav.dataset.view));
  }
  if (ev.target.id === "close" || ev.target.id === "drill") { drillSeq++; $("#drill").classList.add("hidden"); }
});

function connect() {
  const es = new EventSource("/api/stream");
  es.addEventListener("snapshot", (m) => {
    state = JSON.parse(m.data);
    renderCalls(); renderAlerts(); renderKpis();
    $("#status").textContent = `live · updated ${new Date().toLocaleTimeString()}`;
    const open = $("#drill").dataset.callId;
    if (open && !$("#drill").classList.contains("hidden")) drill(open);
  });
  es.onerror = () => { $("#status").textContent = "reconnecting…"; };
}
connect();
