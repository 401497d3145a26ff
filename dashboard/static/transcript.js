"use strict";
// The live transcript in the call drill-down (kept apart from app.js): one lane per leg on the timeline's time
// axis, the text below, cues highlighted. Redrawn whenever app.js redraws the drill-down's timeline.
(() => {
  const W = 1000, LANE_H = 16;
  const q = (s) => document.querySelector(s);
  const h = (s) => String(s ?? "").replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
  const clock = (s) => `${Math.floor((s || 0) / 60)}:${String(Math.floor((s || 0) % 60)).padStart(2, "0")}`;
  let busy = false, again = false;

  function render(tr) {
    const box = q("#drill-transcript");
    if (!tr || !tr.segments.length) { box.innerHTML = `<p class="tx-empty">No transcript (transcripts off, or nothing said yet).</p>`; return; }
    // the same axis as app.js's timeline, 0..max(10 s, last step); without a timeline, the transcript's own end
    const T = Math.max(10, tr.timeline_end ?? Math.max(...tr.segments.map((s) => s.end)));
    const x = (t) => (t / T) * W;
    let lanes = "";
    ["agent", "customer"].forEach((leg, i) => {
      lanes += `<text x="2" y="${i * LANE_H + 11}" font-size="10" fill="#555">${leg}</text>`;
      for (const s of tr.segments.filter((s) => s.leg === leg)) {
        const cue = s.cues.length ? " cue" : "";
        lanes += `<rect class="tx-seg${cue}" data-testid="transcript-segment" x="${x(s.start).toFixed(1)}" y="${i * LANE_H + 2}" width="${Math.max(2, x(s.end) - x(s.start)).toFixed(1)}" height="${LANE_H - 4}" fill="var(--${leg})" opacity="0.55"><title>${clock(s.start)} ${h(s.text)}</title></rect>`;
      }
    });
    const cueMarks = tr.segments.filter((s) => s.cues.length).map((s) => `<line class="tx-cue-mark" x1="${x(s.end)}" x2="${x(s.end)}" y1="0" y2="${2 * LANE_H}" stroke="var(--neg)" stroke-width="3"><title>${h(s.cues.join(", "))}</title></line>`).join("");
    const lines = tr.segments.map((s) => {
      let text = h(s.text);
      if (s.cues.length) text = `<mark class="cue" data-testid="cue">${text}</mark> <span class="cue-names">${h(s.cues.join(", "))}</span>`;
      return `<li class="tx-line ${h(s.leg)}" data-testid="transcript-line" data-leg="${h(s.leg)}"><span class="tx-t">${clock(s.start)}</span> <b>${h(s.leg)}</b> ${text}${s.final ? "" : " …"}</li>`;
    }).join("");
    box.innerHTML = `<h3>Transcript (${h(tr.language || "")}, redacted)</h3>
      <svg class="tx-lanes" data-testid="transcript-lanes" viewBox="0 0 ${W} ${2 * LANE_H}" preserveAspectRatio="none">${lanes}${cueMarks}</svg>
      <ol class="tx-lines">${lines}</ol>`;
    // the cues also on the timeline itself, as markers at the moment they were said
    // (replaced on every render: a group drawn before the first cue was said must not hide the later ones)
    const tl = q("#timeline");
    if (tl) {
      tl.querySelectorAll(".tx-cues").forEach((g) => g.remove());
      tl.insertAdjacentHTML("beforeend", `<g class="tx-cues">${tr.segments.filter((s) => s.cues.length).map((s) =>
        `<line x1="${x(s.end)}" x2="${x(s.end)}" y1="0" y2="226" stroke="var(--neg)" stroke-dasharray="4 3"><title>${h(s.cues.join(", "))}</title></line>`).join("")}</g>`);
    }
  }

  async function refresh() {
    const id = q("#drill")?.dataset.callId;
    if (!id) return;
    if (busy) { again = true; return; }   // a redraw during a fetch is served by one more fetch after it
    busy = true;
    try {
      const r = await fetch(`/api/calls/${encodeURIComponent(id)}/transcript`);
      render(r.ok ? await r.json() : null);
    } finally {
      busy = false;
      if (again) { again = false; refresh(); }
    }
  }

  window.addEventListener("DOMContentLoaded", () => {
    const tl = q("#timeline");
    // app.js replaces the timeline's content on every redraw; our own cue overlay must not trigger a refetch
    const ours = (m) => [...m.addedNodes, ...m.removedNodes].every((n) => n.classList && n.classList.contains("tx-cues"));
    if (tl) new MutationObserver((muts) => { if (!muts.every(ours)) refresh(); }).observe(tl, { childList: true });
  });
})();
