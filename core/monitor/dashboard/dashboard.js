// Starling's monitoring dashboard: polls the JSON endpoints once a second and renders them.
// Plain JavaScript, no library, no build step. Every URL is relative to the page, so the
// dashboard works under --http_base_path. Channel names, client IDs and connection names are
// chosen by clients: they reach the page as text (textContent), never as HTML.
"use strict";

(() => {
  const POLL_MS = 1000;
  const WINDOW_MS = 120 * 1000; // the chart's time span
  const GAP_MS = 2.5 * POLL_MS; // a longer silence breaks the chart's lines
  const TIMEOUT_MS = 5000;
  const CONNS_LIMIT = 100;
  const STAN_RECHECK = 30; // polls between two looks for streaming while it is off (404)

  const SERIES = [
    { key: "coreIn", label: "core in", cls: "s0", stan: false },
    { key: "coreOut", label: "core out", cls: "s1", stan: false },
    { key: "stanIn", label: "streaming in", cls: "s2", stan: true },
    { key: "stanOut", label: "streaming out", cls: "s3", stan: true },
  ];

  const state = {
    points: [], // {t: client ms, coreIn, coreOut, stanIn, stanOut}: messages per second, null unknown
    prevCore: null, // {t: server ms, in, out}: the counters at the previous poll
    prevStan: null,
    polls: 0, // successful polls
    stanOff: false, // the streaming endpoints answered 404
    sinceStanCheck: 0, // polls since they did
  };

  const $ = (sel) => document.querySelector(sel);

  // el builds an element: props are attributes ("class" included), kids are nodes or text.
  function el(tag, props, ...kids) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(props || {})) {
      if (v !== null && v !== undefined && v !== false) e.setAttribute(k, v);
    }
    for (const k of kids) {
      if (k !== null && k !== undefined) e.append(k instanceof Node ? k : String(k));
    }
    return e;
  }

  function svg(tag, props, text) {
    const e = document.createElementNS("http://www.w3.org/2000/svg", tag);
    for (const [k, v] of Object.entries(props || {})) e.setAttribute(k, v);
    if (text !== undefined) e.textContent = text;
    return e;
  }

  const fmtInt = (n) => (n === null || n === undefined ? "–" : Number(n).toLocaleString("en-US"));

  function fmtRate(x) {
    if (x === null || x === undefined) return "–";
    if (x === 0) return "0";
    if (x < 10) return x.toFixed(1);
    return Math.round(x).toLocaleString("en-US");
  }

  function fmtBytes(n) {
    if (n === null || n === undefined) return "–";
    const units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let i = 0;
    while (n >= 1024 && i < units.length - 1) {
      n /= 1024;
      i++;
    }
    return (i === 0 ? String(n) : n.toFixed(n < 10 ? 1 : 0)) + " " + units[i];
  }

  // compact labels the chart's axis: 950, 1.2k, 34k, 1.5M.
  function compact(x) {
    for (const [d, s] of [[1e9, "G"], [1e6, "M"], [1e3, "k"]]) {
      if (x >= d) return (x / d).toFixed(x / d < 10 ? 1 : 0).replace(/\.0$/, "") + s;
    }
    return x < 10 && x % 1 ? x.toFixed(1) : String(Math.round(x));
  }

  // serverTime reads an RFC 3339 time with up to nine fractional digits as milliseconds.
  const serverTime = (s) => Date.parse(String(s).replace(/(\.\d{3})\d+/, "$1"));

  // get fetches one JSON endpoint: {data} on 200, {missing: true} on 404, throws otherwise.
  async function get(path) {
    const ctl = new AbortController();
    const timer = setTimeout(() => ctl.abort(), TIMEOUT_MS);
    try {
      const resp = await fetch(path, { signal: ctl.signal, cache: "no-store" });
      if (resp.status === 404) return { missing: true };
      if (!resp.ok) throw new Error(path + ": HTTP " + resp.status);
      return { data: await resp.json() };
    } catch (e) {
      throw new Error(ctl.signal.aborted ? path + ": no answer in " + TIMEOUT_MS / 1000 + "s" : e.message);
    } finally {
      clearTimeout(timer);
    }
  }

  // rates differences two readings of a pair of counters; null where unknown (the first
  // reading, or counters that went back: a restarted server).
  function rates(prev, cur) {
    if (!prev) return [null, null];
    const dt = (cur.t - prev.t) / 1000;
    const dIn = cur.in - prev.in;
    const dOut = cur.out - prev.out;
    if (!(dt > 0) || dIn < 0 || dOut < 0) return [null, null];
    return [dIn / dt, dOut / dt];
  }

  async function poll() {
    const started = Date.now();
    try {
      const checkStan = !state.stanOff || ++state.sinceStanCheck >= STAN_RECHECK;
      const off = Promise.resolve({ missing: true });
      const [varz, connz, routez, serverz, channelsz] = await Promise.all([
        get("varz"),
        get("connz?limit=" + CONNS_LIMIT),
        get("routez"),
        checkStan ? get("streaming/serverz") : off,
        checkStan ? get("streaming/channelsz?subs=1") : off,
      ]);
      for (const [name, r] of [["varz", varz], ["connz", connz], ["routez", routez]]) {
        if (r.missing) throw new Error(name + ": HTTP 404");
      }
      if (checkStan) {
        state.stanOff = Boolean(serverz.missing);
        state.sinceStanCheck = 0;
      }
      const stan = serverz.missing ? null : serverz.data;
      update(varz.data, stan);
      render({
        varz: varz.data,
        connz: connz.data,
        routez: routez.data,
        serverz: stan,
        channelsz: stan && !channelsz.missing ? channelsz.data : null,
      });
      state.polls++;
      document.body.dataset.polls = state.polls;
      setStatus(true, "live · " + new Date().toLocaleTimeString("en-GB"));
    } catch (e) {
      setStatus(false, "unreachable: " + e.message);
    }
    setTimeout(poll, Math.max(0, POLL_MS - (Date.now() - started)));
  }

  // update adds a point to the chart from the counters of /varz and /streaming/serverz.
  function update(varz, serverz) {
    const core = { t: serverTime(varz.now), in: varz.in_msgs, out: varz.out_msgs };
    const [coreIn, coreOut] = rates(state.prevCore, core);
    state.prevCore = core;
    let stanIn = null;
    let stanOut = null;
    if (serverz) {
      const stan = { t: serverTime(serverz.now), in: serverz.in_msgs, out: serverz.out_msgs };
      [stanIn, stanOut] = rates(state.prevStan, stan);
      state.prevStan = stan;
    }
    const now = Date.now();
    state.points.push({ t: now, coreIn, coreOut, stanIn, stanOut });
    while (state.points.length && state.points[0].t < now - WINDOW_MS) state.points.shift();
  }

  function setStatus(ok, text) {
    const s = $("#status");
    s.textContent = text;
    s.className = "status " + (ok ? "ok" : "err");
  }

  function render(d) {
    const streaming = d.serverz !== null;
    document.body.classList.toggle("no-streaming", !streaming);
    $("#stan-links").hidden = !streaming;
    $("#streaming-off").hidden = streaming;
    $("#version").textContent = d.varz.version ? "v" + d.varz.version : "";
    $("#server").textContent = d.varz.server_name || d.varz.server_id;
    renderChart(streaming);
    renderTiles(d.varz, d.serverz);
    renderNodes(d.varz, d.routez, d.serverz);
    renderChannels(d.channelsz);
    renderConns(d.connz);
  }

  function renderChart(streaming) {
    const chart = $("#chart");
    const w = Math.max(chart.clientWidth, 300);
    const h = Math.max(chart.clientHeight, 120);
    const m = { l: 48, r: 10, t: 10, b: 20 };
    const pw = w - m.l - m.r;
    const ph = h - m.t - m.b;
    chart.setAttribute("viewBox", `0 0 ${w} ${h}`);
    const series = SERIES.filter((s) => streaming || !s.stan);
    let max = 0;
    for (const p of state.points) for (const s of series) max = Math.max(max, p[s.key] || 0);
    const top = niceCeil(max);
    const now = Date.now();
    const x = (t) => m.l + ((t - (now - WINDOW_MS)) / WINDOW_MS) * pw;
    const y = (v) => m.t + ph - (v / top) * ph;

    const kids = [];
    for (let i = 0; i <= 4; i++) {
      const v = (top * i) / 4;
      kids.push(svg("line", { x1: m.l, x2: w - m.r, y1: y(v), y2: y(v), class: "grid" }));
      kids.push(svg("text", { x: m.l - 6, y: y(v) + 4, class: "axis", "text-anchor": "end" }, compact(v)));
    }
    for (let s = 0; s <= WINDOW_MS / 1000; s += 30) {
      const tx = x(now - s * 1000);
      kids.push(svg("text", { x: tx, y: h - 4, class: "axis", "text-anchor": s === 0 ? "end" : "middle" },
        s === 0 ? "now" : "-" + s + "s"));
    }
    for (const s of series) {
      let seg = [];
      let last = null;
      const flush = () => {
        if (seg.length > 1) kids.push(svg("polyline", { points: seg.join(" "), class: "line " + s.cls }));
        if (seg.length === 1) {
          const [cx, cy] = seg[0].split(",");
          kids.push(svg("circle", { cx, cy, r: 2, class: "dot " + s.cls }));
        }
        seg = [];
      };
      for (const p of state.points) {
        const v = p[s.key];
        if (v === null || (last !== null && p.t - last > GAP_MS)) flush();
        if (v !== null) seg.push(x(p.t).toFixed(1) + "," + y(v).toFixed(1));
        last = p.t;
      }
      flush();
    }
    chart.replaceChildren(...kids);

    const legend = [];
    for (const s of series) {
      const vals = state.points.map((p) => p[s.key]).filter((v) => v !== null);
      const cur = vals.length ? vals[vals.length - 1] : null;
      const peak = vals.length ? Math.max(...vals) : null;
      legend.push(el("span", { class: "item", "data-series": s.key },
        el("i", { class: "swatch " + s.cls }), s.label + " ",
        el("b", { class: "cur" }, fmtRate(cur)), "/s ",
        el("span", { class: "peak muted" }, "peak " + fmtRate(peak))));
    }
    $("#legend").replaceChildren(...legend);
  }

  // niceCeil rounds up to 1, 2 or 5 times a power of ten (at least 1).
  function niceCeil(v) {
    if (!(v > 1)) return 1;
    const p = Math.pow(10, Math.floor(Math.log10(v)));
    for (const f of [1, 2, 5, 10]) if (v <= f * p) return f * p;
    return 10 * p;
  }

  function renderTiles(varz, serverz) {
    const tile = (key, value, label, title) =>
      el("div", { class: "tile", "data-tile": key, title }, el("span", { class: "v" }, value), el("span", { class: "k" }, label));
    const tiles = [
      tile("connections", fmtInt(varz.connections), "connections", fmtInt(varz.total_connections) + " since start"),
      tile("subscriptions", fmtInt(varz.subscriptions), "subscriptions"),
      tile("routes", fmtInt(varz.routes), "routes"),
      tile("slow_consumers", fmtInt(varz.slow_consumers), "slow consumers"),
      tile("uptime", varz.uptime, "uptime"),
      tile("mem", fmtBytes(varz.mem), "memory"),
      tile("cpu", (varz.cpu || 0).toFixed(1) + "%", "CPU"),
    ];
    if (serverz) {
      tiles.push(
        tile("stan_clients", fmtInt(serverz.clients), "streaming clients"),
        tile("stan_channels", fmtInt(serverz.channels), "channels"),
        tile("stan_subscriptions", fmtInt(serverz.subscriptions), "streaming subscriptions"),
        tile("stan_msgs", fmtInt(serverz.total_msgs), "stored messages"),
        tile("stan_bytes", fmtBytes(serverz.total_bytes), "stored bytes"),
      );
    }
    $("#summary").replaceChildren(...tiles);
  }

  function renderNodes(varz, routez, serverz) {
    const role = serverz && serverz.role ? serverz.role : "standalone";
    const name = el("td", null, el("b", null, varz.server_name || varz.server_id), " ", el("span", { class: "tag" }, "this server"));
    if (serverz && serverz.node_id) name.append(el("div", { class: "muted small" }, "node " + serverz.node_id));
    if (serverz && serverz.raft && serverz.raft.voters) {
      // Each node of the raft group with its role as this node sees it.
      const group = serverz.raft.voters.map((id) =>
        el("span", { class: "badge role-" + (id === serverz.leader ? "leader" : "follower"), "data-raft-node": id },
          id + (id === serverz.leader ? " leader" : "")));
      name.append(el("div", { class: "small raft-group" }, "raft group ", ...group));
    }
    const rows = [
      el("tr", { class: "self", "data-node": varz.server_id }, name,
        el("td", null, varz.host + ":" + varz.port),
        el("td", null, serverz ? serverz.state : "off"),
        el("td", { class: "role" }, el("span", { class: "badge role-" + role.toLowerCase() }, role)),
        el("td", null, "–"), el("td", { class: "num" }, fmtInt(varz.in_msgs)),
        el("td", { class: "num" }, fmtInt(varz.out_msgs)), el("td", { class: "num" }, "–")),
    ];
    for (const r of routez.routes || []) {
      rows.push(el("tr", { class: "route", "data-node": r.remote_id },
        el("td", null, r.remote_name || r.remote_id, r.remote_name ? el("div", { class: "muted small" }, r.remote_id) : null),
        el("td", null, r.ip + ":" + r.port),
        el("td", { class: "muted" }, "–"),
        el("td", { class: "role" }, el("span", { class: "badge" }, r.did_solicit ? "route (dialled)" : "route (accepted)")),
        el("td", null, r.rtt || "–"),
        el("td", { class: "num" }, fmtInt(r.in_msgs)), el("td", { class: "num" }, fmtInt(r.out_msgs)),
        el("td", { class: "num" }, fmtBytes(r.pending_size))));
    }
    $("#nodes tbody").replaceChildren(...rows);
  }

  // lag is how many messages the channel holds past the subscription's last sent one, as
  // the starling_streaming_subscription_lag_messages metric counts them.
  function lag(ch, sub) {
    if (!ch.first_seq) return 0;
    const from = Math.max(sub.last_sent, ch.first_seq - 1);
    return Math.max(0, ch.last_seq - from);
  }

  function renderChannels(channelsz) {
    const body = $("#channels-table tbody");
    if (!channelsz) {
      $("#channels-count").textContent = "";
      body.replaceChildren();
      return;
    }
    const channels = channelsz.channels || [];
    $("#channels-count").textContent = channelsz.total > channels.length
      ? `(${channels.length} of ${channelsz.total})` : `(${channelsz.total})`;
    const rows = [];
    for (const ch of channels) {
      const subs = ch.subscriptions || [];
      rows.push(el("tr", { class: "channel", "data-channel": ch.name },
        el("td", { class: "name" }, ch.name),
        el("td", { class: "num msgs" }, fmtInt(ch.msgs)),
        el("td", { class: "num bytes" }, fmtBytes(ch.bytes)),
        el("td", { class: "num first" }, fmtInt(ch.first_seq)),
        el("td", { class: "num last" }, fmtInt(ch.last_seq)),
        el("td"), el("td"), el("td"),
        el("td", { class: "muted" }, ch.subs_count === 1 ? "1 subscriber" : fmtInt(ch.subs_count) + " subscribers")));
      for (const sub of subs) {
        const n = lag(ch, sub);
        let kind = "";
        if (sub.queue_name) kind = "queue " + sub.queue_name;
        else if (sub.durable_name) kind = "durable " + sub.durable_name;
        let st = "ok";
        if (sub.is_offline) st = "offline";
        else if (sub.is_stalled) st = "stalled";
        rows.push(el("tr", { class: "sub", "data-channel": ch.name, "data-client": sub.client_id, title: sub.inbox },
          el("td", { class: "name" }, el("span", { class: "client" }, sub.client_id),
            kind ? el("span", { class: "kind muted" }, " · " + kind) : null),
          el("td"), el("td"), el("td"), el("td"),
          el("td", { class: "num last-sent" }, fmtInt(sub.last_sent)),
          el("td", { class: "num lag" + (n > 0 ? " behind" : "") }, fmtInt(n)),
          el("td", { class: "num pending" }, fmtInt(sub.pending_count) + " / " + fmtInt(sub.max_inflight)),
          el("td", { class: "state" }, el("span", { class: "badge state-" + st }, st))));
      }
    }
    if (!rows.length) rows.push(el("tr", null, el("td", { colspan: 9, class: "muted" }, "No channels yet.")));
    body.replaceChildren(...rows);
  }

  function renderConns(connz) {
    const conns = connz.connections || [];
    $("#conns-count").textContent = connz.total > conns.length ? `(${conns.length} of ${connz.total})` : `(${connz.total})`;
    const rows = conns.map((c) =>
      el("tr", { "data-cid": c.cid },
        el("td", { class: "num" }, c.cid),
        el("td", null, c.name || ""),
        el("td", null, c.ip + ":" + c.port),
        el("td", { class: "muted" }, [c.lang, c.version].filter(Boolean).join(" ")),
        el("td", { class: "num" }, fmtInt(c.subscriptions)),
        el("td", { class: "num" }, fmtInt(c.in_msgs)),
        el("td", { class: "num" }, fmtInt(c.out_msgs)),
        el("td", { class: "num" }, fmtBytes(c.in_bytes)),
        el("td", { class: "num" }, fmtBytes(c.out_bytes)),
        el("td", { class: "num" }, fmtBytes(c.pending_bytes)),
        el("td", null, c.uptime),
        el("td", null, c.idle)));
    if (!rows.length) rows.push(el("tr", null, el("td", { colspan: 12, class: "muted" }, "No connections.")));
    $("#conns tbody").replaceChildren(...rows);
  }

  poll();
})();
