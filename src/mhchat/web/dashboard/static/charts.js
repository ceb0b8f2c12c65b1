// A session's activity charts, drawn as inline SVG from the activity JSON, with a table of the
// same figures for screen readers and keyboard users.
"use strict";

(function () {
  const NS = "http://www.w3.org/2000/svg";
  const COLOURS = { x: "#1a1a1a", bluesky: "#0560c7", facebook: "#5b3cc4", fake: "#8a4b00" };
  const NAMES = { x: "X", bluesky: "Bluesky", facebook: "Facebook", fake: "Test" };
  const LINES = [
    ["participants", "Participants", "#0560c7"],
    ["first_timers", "First-timers", "#a33d00"],
    ["reposts", "Reposts", "#1b7a3a"],
  ];
  const W = 640, H = 240, PAD = { l: 40, r: 12, t: 12, b: 36 };
  const root = document.getElementById("session");
  if (!root) return;
  const session = root.dataset.session;

  function svgEl(tag, attrs, text) {
    const node = document.createElementNS(NS, tag);
    Object.entries(attrs || {}).forEach(([k, v]) => node.setAttribute(k, String(v)));
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function niceMax(value) {
    // A multiple of four, so the four grid steps are whole numbers.
    return Math.max(4, Math.ceil(value / 4) * 4);
  }

  function frame(label, max, minutes) {
    const svg = svgEl("svg", { viewBox: "0 0 " + W + " " + H, role: "img", "aria-label": label, class: "chart-svg" });
    svg.append(svgEl("title", {}, label));
    const plotH = H - PAD.t - PAD.b;
    for (let i = 0; i <= 4; i++) {
      const value = Math.round((max * i) / 4);
      const y = PAD.t + plotH - (plotH * i) / 4;
      svg.append(svgEl("line", { x1: PAD.l, x2: W - PAD.r, y1: y, y2: y, class: "grid" }));
      svg.append(svgEl("text", { x: PAD.l - 6, y: y + 4, "text-anchor": "end", class: "tick" }, String(value)));
    }
    const step = Math.max(1, Math.ceil(minutes.length / 8));
    minutes.forEach((m, i) => {
      if (i % step) return;
      const x = PAD.l + ((W - PAD.l - PAD.r) * (i + 0.5)) / minutes.length;
      svg.append(svgEl("text", { x: x, y: H - PAD.b + 16, "text-anchor": "middle", class: "tick" }, m.slice(11, 16)));
    });
    return svg;
  }

  function legend(items) {
    const ul = document.createElement("ul");
    ul.className = "legend";
    items.forEach(([name, colour]) => {
      const li = document.createElement("li");
      const swatch = document.createElement("span");
      swatch.className = "swatch";
      swatch.style.backgroundColor = colour;
      li.append(swatch, document.createTextNode(" " + name));
      ul.append(li);
    });
    return ul;
  }

  function bars(data) {
    const minutes = data.minutes;
    const platforms = Object.keys(data.posts);
    const totals = minutes.map((_, i) => platforms.reduce((s, p) => s + data.posts[p][i], 0));
    const max = niceMax(Math.max(0, ...totals));
    const svg = frame("Posts per minute by platform", max, minutes);
    const plotW = W - PAD.l - PAD.r, plotH = H - PAD.t - PAD.b;
    const bw = Math.min(40, Math.max(1, (plotW / Math.max(1, minutes.length)) * 0.8));
    minutes.forEach((m, i) => {
      let y = PAD.t + plotH;
      platforms.forEach((p) => {
        const n = data.posts[p][i];
        if (!n) return;
        const h = (plotH * n) / max;
        y -= h;
        const x = PAD.l + (plotW * i) / minutes.length + (plotW / minutes.length - bw) / 2;
        const rect = svgEl("rect", { x: x, y: y, width: bw, height: h, fill: COLOURS[p] || "#555" });
        rect.append(svgEl("title", {}, m.slice(11, 16) + " " + (NAMES[p] || p) + ": " + n));
        svg.append(rect);
      });
    });
    return [svg, legend(platforms.map((p) => [NAMES[p] || p, COLOURS[p] || "#555"]))];
  }

  function lines(data) {
    const minutes = data.minutes;
    const max = niceMax(Math.max(0, ...LINES.map(([k]) => Math.max(0, ...data[k]))));
    const svg = frame("Participants, first-timers and reposts, cumulative", max, minutes);
    const plotW = W - PAD.l - PAD.r, plotH = H - PAD.t - PAD.b;
    LINES.forEach(([key, , colour]) => {
      const points = data[key].map((v, i) => {
        const x = PAD.l + (plotW * (i + 0.5)) / Math.max(1, minutes.length);
        const y = PAD.t + plotH - (plotH * v) / max;
        return x.toFixed(1) + "," + y.toFixed(1);
      });
      svg.append(svgEl("polyline", { points: points.join(" "), fill: "none", stroke: colour, "stroke-width": 2.5 }));
      points.forEach((xy) => {
        const [cx, cy] = xy.split(",");
        svg.append(svgEl("circle", { cx: cx, cy: cy, r: 3.5, fill: colour }));
      });
    });
    return [svg, legend(LINES.map(([, name, colour]) => [name, colour]))];
  }

  function table(data) {
    const t = document.createElement("table");
    const platforms = Object.keys(data.posts);
    const head = ["Minute (UTC)", ...platforms.map((p) => "Posts on " + (NAMES[p] || p)), "Participants", "First-timers", "Reposts"];
    const thead = t.createTHead().insertRow();
    head.forEach((h) => { const th = document.createElement("th"); th.scope = "col"; th.textContent = h; thead.append(th); });
    const body = t.createTBody();
    data.minutes.forEach((m, i) => {
      const row = body.insertRow();
      [m.slice(11, 16), ...platforms.map((p) => data.posts[p][i]), data.participants[i], data.first_timers[i], data.reposts[i]]
        .forEach((v) => { row.insertCell().textContent = String(v); });
    });
    return t;
  }

  fetch("/dashboard/api/sessions/" + encodeURIComponent(session) + "/activity", { headers: { Accept: "application/json" } })
    .then((r) => r.json())
    .then((data) => {
      const posts = document.getElementById("chart-posts");
      const people = document.getElementById("chart-people");
      if (!data.minutes.length) {
        posts.textContent = "No posts in this session yet.";
        return;
      }
      posts.append(...bars(data));
      people.append(...lines(data));
      document.getElementById("chart-table").append(table(data));
    });
})();
