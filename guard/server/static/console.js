// guard console: polls /console/state and renders it. Every value from the server is set as
// text (textContent), never parsed as markup. No external assets, no build step.
"use strict";
(function () {
  const POLL_MS = 1000;
  const WINDOW_MS = 5 * 60 * 1000; // throttles "over the last minutes": deltas over this window
  const KEY = "guard.console.token";
  const $ = (id) => document.getElementById(id);
  let ns = new URLSearchParams(location.search).get("ns") || "";
  let role = null;
  let timer = null;
  const history = []; // [{t, counters}] of this tab's polls, for the window deltas

  function el(tag, attrs, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === "class") e.className = v;
      else if (k.startsWith("data-")) e.setAttribute(k, v);
      else e[k] = v;
    }
    for (const c of children) {
      if (c === null || c === undefined) continue;
      e.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return e;
  }

  function token() { return sessionStorage.getItem(KEY) || ""; }

  async function api(method, path, body) {
    const headers = { Accept: "application/json" };
    if (token()) headers.Authorization = "Bearer " + token();
    if (body !== undefined) headers["Content-Type"] = "application/json";
    const r = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body),
                                  cache: "no-store", credentials: "omit" });
    let doc = null;
    if (r.status !== 204) { try { doc = await r.json(); } catch (e) { doc = null; } }
    if (!r.ok) {
      const err = new Error((doc && (doc.detail || doc.title)) || ("HTTP " + r.status));
      err.status = r.status;
      throw err;
    }
    return doc;
  }

  function lim(v) { return v === null || v === undefined ? "∞" : String(v); }

  function duration(s) {
    s = Math.max(0, Math.round(s));
    const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), sec = s % 60;
    return (h ? h + "h " : "") + (h || m ? m + "m " : "") + sec + "s";
  }

  function bar(inUse, max, override) {
    const eff = override ? override.max_concurrency : max;
    const pct = eff === null || eff === undefined ? 0 : eff === 0 ? 100 : Math.min(100, (100 * inUse) / eff);
    const fill = el("div", { class: "fill" + (pct >= 100 ? " hot" : pct >= 80 ? " warm" : "") });
    fill.style.width = pct + "%";
    const label = el("span", { class: "label", "data-field": "in-use-max" },
      el("span", { "data-field": "in-use" }, inUse), " / ", el("span", { "data-field": "max" }, lim(eff)));
    return el("div", { class: "bar" }, fill, label);
  }

  // Sum of a counter kind for a level, now and WINDOW_MS ago (or the oldest sample we hold).
  function windowDelta(kind, match) {
    const sum = (c) => Object.entries(c[kind] || {}).reduce((a, [k, v]) => a + (match(k) ? v : 0), 0);
    const now = history[history.length - 1];
    const old = history[0];
    return { total: sum(now.counters), recent: sum(now.counters) - sum(old.counters) };
  }

  function countCell(kind, match) {
    const d = windowDelta(kind, match);
    return el("td", { class: "num" + (d.recent > 0 ? " hot-count" : ""), "data-field": kind,
                      title: d.total + " in total" }, d.recent);
  }

  function levelPath(kind, name) {
    return "/v1/namespaces/" + encodeURIComponent(ns) + "/" + kind + "s/" + encodeURIComponent(name);
  }

  // Row buttons only; the forms above the table hold what is typed (rows re-render each poll).
  function actionCell(level, name) {
    if (role !== "admin") return null; // a client token gets no controls at all
    if (level === "account") return el("td", { class: "admin-only" });
    const edit = el("button", { type: "button", "data-action": "edit" }, "edit");
    edit.onclick = () => {
      for (const p of ["mx", "ov"]) { $(p + "-kind").value = level; $(p + "-name").value = name; }
      $("mx-max").focus();
    };
    const pause = el("button", { type: "button", "data-action": "pause" }, "pause 1h");
    pause.onclick = () => act(() => api("PUT", levelPath(level, name) + "/override",
      { max_concurrency: 0, seconds: 3600, reason: "paused from the console" }));
    const resume = el("button", { type: "button", "data-action": "resume" }, "resume");
    resume.onclick = () => act(() => api("DELETE", levelPath(level, name) + "/override"));
    return el("td", { class: "actions admin-only" }, edit, " ", pause, " ", resume);
  }

  async function act(fn) {
    $("action-error").textContent = "";
    try { await fn(); } catch (e) { $("action-error").textContent = e.message; }
    refresh();
  }

  function row(level, name, v, match) {
    const o = v.override || null;
    const ovCell = el("td", { class: o ? "override" : "", "data-field": "override" },
      o ? "max " + o.max_concurrency + " for " + duration(o.seconds_left) : "");
    return el("tr", { "data-level": level, "data-name": name },
      el("td", {}, level), el("td", {}, name),
      el("td", {}, bar(v.in_use, v.max_concurrency, o)),
      el("td", { class: "num", "data-field": "reserved",
                 title: "reserved slots of the account max; free: held back from other groups" },
        v.reserved === undefined || v.reserved === 0 ? (v.reserved === 0 ? "0" : "") :
          v.reserved + " (" + Math.max(0, v.reserved - v.in_use) + " free)"),
      ovCell,
      countCell("throttles", match), countCell("shadow", match),
      countCell("expired", (k) => level === "function" && k === name),
      countCell("fail_open", (k) => level === "function" && k === name),
      actionCell(level, name));
  }

  // What an audit entry changed, compactly: "group:etl max_concurrency 10 → 7".
  function summary(before, after) {
    if (!before || !after || before.truncated || after.truncated) return JSON.stringify(after);
    const parts = [];
    for (const k of Object.keys(Object.assign({}, before, after))) {
      const b = before[k], a = after[k];
      if (b === null || b === undefined) { parts.push(k + " created " + JSON.stringify(a)); continue; }
      if (a === null || a === undefined) { parts.push(k + " removed"); continue; }
      const fields = Object.keys(Object.assign({}, b, a)).filter((f) => JSON.stringify(b[f]) !== JSON.stringify(a[f]));
      parts.push(k + " " + fields.map((f) => f + " " + JSON.stringify(b[f]) + " → " + JSON.stringify(a[f])).join(", "));
    }
    return parts.join("; ");
  }

  function render(s) {
    const u = s.usage;
    const rows = [row("account", s.namespace, u.account, (k) => k.endsWith("|account"))];
    for (const [n, v] of Object.entries(u.groups)) rows.push(row("group", n, v, (k) => k.endsWith("|group:" + n)));
    for (const [n, v] of Object.entries(u.functions)) rows.push(row("function", n, v, (k) => k.startsWith(n + "|")));
    $("levels").tBodies[0].replaceChildren(...rows);

    $("overrides").tBodies[0].replaceChildren(...s.overrides.map((o) => {
      const clear = role === "admin" ? el("td", { class: "admin-only" }) : null;
      if (clear) {
        const b = el("button", { type: "button", "data-action": "clear" }, "clear");
        b.onclick = () => act(() => api("DELETE", levelPath(o.kind, o.name) + "/override"));
        clear.append(b);
      }
      return el("tr", { "data-kind": o.kind, "data-name": o.name },
        el("td", {}, o.kind + " " + o.name), el("td", { class: "num" }, o.max_concurrency),
        el("td", {}, duration(o.seconds_left)), el("td", {}, o.reason), el("td", {}, o.actor), clear);
    }));

    if (s.audit) {
      $("audit").tBodies[0].replaceChildren(...s.audit.map((e) => el("tr", {},
        el("td", {}, new Date(e.time * 1000).toLocaleTimeString()), el("td", {}, e.actor),
        el("td", {}, e.action), el("td", {}, e.target),
        el("td", { class: "change", title: JSON.stringify(e.after) }, summary(e.before, e.after)))));
    }
  }

  function setNamespaces(names, current) {
    const sel = $("ns");
    const have = Array.from(sel.options).map((o) => o.value).join(",");
    const list = names.includes(current) ? names : [current, ...names];
    if (have !== list.join(",")) sel.replaceChildren(...list.map((n) => el("option", { value: n }, n)));
    sel.value = current;
  }

  function setRole(s) {
    if (role === s.whoami.role) return;
    role = s.whoami.role;
    document.body.classList.toggle("is-admin", role === "admin");
    if (role !== "admin") document.querySelectorAll(".admin-only").forEach((e) => e.remove());
    $("who").textContent = (s.whoami.open_mode ? "open loopback mode" : s.whoami.name) + " (" + role + ")";
    $("logout").hidden = s.whoami.open_mode;
  }

  async function refresh() {
    try {
      const s = await api("GET", "/console/state" + (ns ? "?ns=" + encodeURIComponent(ns) : ""));
      if (s.namespace !== ns) { ns = s.namespace; history.length = 0; }
      const t = Date.now();
      history.push({ t, counters: s.counters });
      while (history.length > 2 && t - history[1].t >= WINDOW_MS) history.shift();
      $("window").textContent = duration(Math.min(WINDOW_MS, t - history[0].t) / 1000) + " (max 5m)";
      setRole(s);
      setNamespaces(s.namespaces, s.namespace);
      render(s);
      $("login").hidden = true;
      $("main").hidden = false;
      $("status").textContent = "updated " + new Date(t).toLocaleTimeString();
      document.body.dataset.ready = "1";
    } catch (e) {
      if (e.status === 401) {
        stop();
        $("main").hidden = true;
        $("login").hidden = false;
        $("login-error").textContent = token() ? "token refused: " + e.message : "";
        sessionStorage.removeItem(KEY);
        return;
      }
      $("status").textContent = "error: " + e.message;
    }
  }

  function start() { stop(); refresh(); timer = setInterval(refresh, POLL_MS); }
  function stop() { if (timer) clearInterval(timer); timer = null; }

  document.addEventListener("DOMContentLoaded", () => {
    $("login-go").onclick = () => { sessionStorage.setItem(KEY, $("token").value.trim()); role = null; start(); };
    $("token").addEventListener("keydown", (e) => { if (e.key === "Enter") $("login-go").click(); });
    $("logout").onclick = () => { sessionStorage.removeItem(KEY); location.reload(); };
    $("ns").onchange = () => { ns = $("ns").value; history.length = 0; refresh(); };
    $("max-form").addEventListener("submit", (ev) => {
      ev.preventDefault();
      const kind = $("mx-kind").value, path = levelPath(kind, $("mx-name").value.trim());
      const v = $("mx-max").value === "" ? null : Number($("mx-max").value);
      act(async () => {
        try { await api("PATCH", path, { max_concurrency: v }); }
        catch (e) { if (e.status === 404 && kind === "function") await api("PUT", path, { max_concurrency: v }); else throw e; }
      });
    });
    $("override-form").addEventListener("submit", (ev) => {
      ev.preventDefault();
      const kind = $("ov-kind").value, name = $("ov-name").value.trim();
      act(() => api("PUT", levelPath(kind, name) + "/override", { max_concurrency: Number($("ov-max").value),
        seconds: Number($("ov-minutes").value) * 60, reason: $("ov-reason").value }));
    });
    start();
  });
})();
