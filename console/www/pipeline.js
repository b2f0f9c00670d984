// payguard ops console: the Pipeline page (/pipeline).
//
// Is payguard healthy, and what is it waiting on: every stage instance (up or
// down, uptime, restarts, events in and out per second, unacknowledged
// events per link and the oldest one's age, journal size and retention),
// every outside system (calls per second, error rate, p50/p99 latency,
// circuit breaker, calls in flight), and the end-to-end picture (webhooks
// per second, cases waiting for people, in ops review, the oldest
// unacknowledged event), with charts of the last hour.
//
// The numbers come from GET /api/pipeline: the console samples the group's
// own files every console/pipeline_sample_s and keeps pipeline_samples of
// them (console/pipeline.h). This page fetches them every few seconds and
// redraws in place, never reloading. Charts are drawn by uPlot, served by the
// console itself as /static/uplot.min.js when it was installed (npm ci in
// console/vendor, scripts/install-deps.sh); without it the page says charts
// are unavailable and still shows every number as tables.
//
// app.js loads this file (and pipeline.css) the first time /pipeline is shown
// and calls window.payguardPipeline(kit) with its page
// lifecycle and helpers (kit.page, kit.main, kit.el, kit.fill, kit.api,
// kit.every, kit.AuthError). Like app.js, every value goes in as text.
'use strict';

(() => {
  const REFRESH_MS = 3000;
  const CHART_HEIGHT = 170;
  const COLORS = ['#1f5fbf', '#b3261e', '#1e7a3c', '#8a5a00', '#6b3fa0', '#00838f', '#5f6b76', '#d81b60'];
  const STAGES = ['ingest', 'validate', 'triage', 'approve', 'execute', 'audit'];
  let uplotLoad = null; // the one load of /static/uplot.min.js: a promise of true (loaded) or false

  // ---------------------------------------------------------------- formatting

  function num(v, digits) {
    if (typeof v !== 'number' || !Number.isFinite(v)) return '\u2014';
    const d = digits === undefined ? (Math.abs(v) >= 100 ? 0 : Math.abs(v) >= 10 ? 1 : 2) : digits;
    return v.toFixed(d);
  }
  function int(v) {
    return typeof v === 'number' && Number.isFinite(v) ? String(Math.round(v)) : '\u2014';
  }
  function ms(v) {
    if (typeof v !== 'number' || !Number.isFinite(v)) return '\u2014';
    return v >= 1000 ? num(v / 1000) + ' s' : num(v) + ' ms';
  }
  function pct(v) {
    return typeof v === 'number' && Number.isFinite(v) ? num(v * 100, v === 0 ? 0 : 1) + ' %' : '\u2014';
  }
  function duration(s) {
    if (typeof s !== 'number' || !Number.isFinite(s)) return '\u2014';
    s = Math.max(0, Math.round(s));
    if (s < 60) return s + ' s';
    if (s < 3600) return Math.floor(s / 60) + ' min ' + (s % 60) + ' s';
    if (s < 86400) return Math.floor(s / 3600) + ' h ' + Math.floor((s % 3600) / 60) + ' min';
    return Math.floor(s / 86400) + ' d ' + Math.floor((s % 86400) / 3600) + ' h';
  }
  function bytes(b) {
    if (typeof b !== 'number' || !Number.isFinite(b)) return '\u2014';
    const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
    let i = 0;
    while (b >= 1024 && i < units.length - 1) {
      b /= 1024;
      i++;
    }
    return (i ? num(b, 1) : String(Math.round(b))) + ' ' + units[i];
  }
  function clock(msUnix) {
    const d = new Date(msUnix);
    const p = (n) => String(n).padStart(2, '0');
    return p(d.getUTCHours()) + ':' + p(d.getUTCMinutes()) + ':' + p(d.getUTCSeconds()) + ' UTC';
  }
  function stateClass(state) {
    return state === 'up' ? 'ok' : state === 'not ready' || state === 'starting' ? 'warn' : 'bad';
  }

  // ---------------------------------------------------------------- uPlot

  // Load uPlot once (a script of this origin: the CSP allows it); false when
  // the console has none or it fails to load.
  function loadUplot(available) {
    if (!available) return Promise.resolve(false);
    if (window.uPlot) return Promise.resolve(true);
    if (!uplotLoad) {
      uplotLoad = new Promise((resolve) => {
        const css = document.createElement('link');
        css.rel = 'stylesheet';
        css.href = '/static/uplot.min.css';
        document.head.appendChild(css);
        const s = document.createElement('script');
        s.src = '/static/uplot.min.js';
        s.onload = () => resolve(typeof window.uPlot === 'function');
        s.onerror = () => resolve(false);
        document.head.appendChild(s);
      });
    }
    return uplotLoad;
  }

  // One chart: its series are the history's names that start with prefix
  // (each labelled by the rest of the name), drawn over the history's times.
  function makeChart(kit, title, prefix, unit) {
    const box = kit.el('div', { className: 'pl-chart', dataset: { chart: prefix } },
      kit.el('h3', null, title + (unit ? ' (' + unit + ')' : '')));
    const plot = kit.el('div', { className: 'pl-plot' });
    box.appendChild(plot);
    let u = null;
    let names = '';
    function width() {
      return Math.max(240, Math.floor(plot.getBoundingClientRect().width || box.clientWidth || 300));
    }
    function update(history) {
      if (!window.uPlot || !history || !Array.isArray(history.t)) return;
      const keys = Object.keys(history.series || {}).filter((k) => k.startsWith(prefix + '.')).sort((a, b) => {
        const ia = STAGES.indexOf(a.slice(prefix.length + 1));
        const ib = STAGES.indexOf(b.slice(prefix.length + 1));
        return ia !== ib ? (ia < 0 ? 99 : ia) - (ib < 0 ? 99 : ib) : a < b ? -1 : 1;
      });
      const data = [history.t.map((t) => t / 1000)].concat(keys.map((k) => history.series[k]));
      if (u && names === keys.join('|')) {
        u.setData(data);
        return;
      }
      if (u) u.destroy();
      names = keys.join('|');
      const series = [{}].concat(keys.map((k, i) => ({
        label: k.slice(prefix.length + 1), stroke: COLORS[i % COLORS.length], width: 1.5, spanGaps: false,
        value: (self, v) => (v == null ? '\u2014' : num(v)),
      })));
      u = new window.uPlot({
        width: width(), height: CHART_HEIGHT, series,
        tzDate: (ts) => window.uPlot.tzDate(new Date(ts * 1e3), 'Etc/UTC'), // UTC, as the rest of the console
        scales: { x: { time: true }, y: { range: (self, lo, hi) => [0, hi > 0 ? hi * 1.1 : 1] } },
        axes: [{}, { size: 50 }],
        legend: { live: false },
        cursor: { drag: { x: false, y: false } },
      }, data, plot);
    }
    function resize() {
      if (u) u.setSize({ width: width(), height: CHART_HEIGHT });
    }
    function destroy() {
      if (u) u.destroy(); // its window listeners go with it
      u = null;
    }
    return { box, update, resize, destroy };
  }

  // ---------------------------------------------------------------- the page

  window.payguardPipeline = function payguardPipeline(kit) {
    const { el, fill, page } = kit;
    const health = el('div', { id: 'pl-health', className: 'pl-health', role: 'status' }, 'Loading\u2026');
    const status = el('p', { id: 'pl-status', className: 'muted' });
    const err = el('p', { id: 'pl-error', className: 'error', role: 'alert', hidden: true });
    const chartsNote = el('p', { id: 'pl-charts-note', className: 'note', hidden: true });
    const e2eCards = el('div', { id: 'pl-e2e', className: 'pl-cards' });
    const stageBody = el('tbody');
    const sysBody = el('tbody');
    const charts = {
      e2e: [makeChart(kit, 'Webhooks per second', 'e2e', ''), makeChart(kit, 'Cases waiting', 'e2e_cases', ''),
        makeChart(kit, 'Oldest unacknowledged event', 'e2e_age', 's')],
      stages: [makeChart(kit, 'Events in per second', 'in_per_s', ''), makeChart(kit, 'Unacknowledged events', 'unacked', '')],
      systems: [makeChart(kit, 'p99 latency', 'p99_ms', 'ms'), makeChart(kit, 'Calls per second', 'calls_per_s', '')],
    };
    const chartRow = (list) => el('div', { className: 'pl-charts' }, list.map((c) => c.box));
    const th = (list) => el('thead', null, el('tr', null, list.map((h) => el('th', { scope: 'col' }, h))));
    fill(kit.main,
      el('h1', null, 'Pipeline'),
      status, health, err, chartsNote,
      el('section', { className: 'box', id: 'pl-end-to-end' },
        el('h2', null, 'End to end'), e2eCards, chartRow(charts.e2e)),
      el('section', { className: 'box', id: 'pl-stages' },
        el('h2', null, 'Stages'),
        el('div', { className: 'table-wrap' }, el('table', { id: 'pl-instances', className: 'grid' },
          th(['Instance', 'State', 'Uptime', 'Restarts', 'In/s', 'Out/s', 'Unacked (next / audit)', 'Oldest unacked',
            'Journal', 'Retention']), stageBody)),
        chartRow(charts.stages)),
      el('section', { className: 'box', id: 'pl-outside' },
        el('h2', null, 'Outside systems'),
        el('div', { className: 'table-wrap' }, el('table', { id: 'pl-systems', className: 'grid' },
          th(['System', 'Breaker', 'Calls/s', 'Errors', 'p50', 'p99', 'In flight', 'Queued']), sysBody)),
        chartRow(charts.systems)));
    const all = [].concat(charts.e2e, charts.stages, charts.systems);
    const onResize = () => all.forEach((c) => c.resize());
    window.addEventListener('resize', onResize);

    function card(id, label, value, bad) {
      return el('div', { className: 'pl-card' + (bad ? ' bad' : ''), dataset: { key: id } },
        el('div', { className: 'pl-card-label' }, label), el('div', { className: 'pl-card-value' }, value));
    }

    function renderHealth(now) {
      const problems = [];
      for (const i of now.instances || []) {
        if (i.state !== 'up') problems.push(i.instance + ' ' + i.state + (i.why ? ': ' + i.why : ''));
      }
      for (const s of now.systems || []) {
        if (s.breaker !== 'closed') problems.push(s.system + ' circuit breaker ' + s.breaker);
        else if (typeof s.error_rate === 'number' && s.error_rate >= 0.05) problems.push(s.system + ' errors ' + pct(s.error_rate));
      }
      const e = now.end_to_end || {};
      if (typeof e.oldest_unacked_s === 'number' && e.oldest_unacked_s >= 60) {
        problems.push('an event has waited ' + duration(e.oldest_unacked_s) + ' for its acknowledgement');
      }
      health.className = 'pl-health ' + (problems.length ? 'bad' : 'ok');
      fill(health, problems.length
        ? [el('strong', null, problems.length === 1 ? '1 problem' : problems.length + ' problems'),
          el('ul', null, problems.map((t) => el('li', null, t)))]
        : el('strong', null, 'Healthy: every process is up, every breaker closed'));
    }

    function renderInstances(list) {
      fill(stageBody, list.length ? list.map((i) => {
        const stage = i.in_total !== undefined;
        const retention = !stage ? '\u2014' : i.retention_s > 0 ? 'retires after ' + duration(i.retention_s) +
          (i.retired_segments ? ' (' + int(i.retired_segments) + ' retired)' : '') : 'kept whole';
        return el('tr', { dataset: { instance: String(i.instance), state: String(i.state) } },
          el('td', { className: 'mono' }, String(i.instance)),
          el('td', null, el('span', { className: 'badge pl-' + stateClass(i.state), title: i.why || null }, String(i.state)),
            i.why ? el('div', { className: 'muted pl-why' }, String(i.why)) : null),
          el('td', { className: 'num' }, duration(i.uptime_s)),
          el('td', { className: 'num' }, int(i.restarts)),
          el('td', { className: 'num' }, stage ? num(i.in_per_s) : '\u2014'),
          el('td', { className: 'num' }, stage ? num(i.out_per_s) : '\u2014'),
          el('td', { className: 'num' }, stage ? int(i.unacked_next) + ' / ' + int(i.unacked_audit) : '\u2014'),
          el('td', { className: 'num' }, stage ? duration(Math.max(i.oldest_next_s || 0, i.oldest_audit_s || 0)) : '\u2014'),
          el('td', { className: 'num' }, stage ? bytes(i.journal_bytes) + ', ' + int(i.journal_segments) + ' seg.' : '\u2014'),
          el('td', null, retention));
      }) : el('tr', { className: 'empty' }, el('td', { colspan: '10' }, 'No instance: is the master running here?')));
    }

    function renderSystems(list) {
      fill(sysBody, list.length ? list.map((s) => el('tr', { dataset: { system: String(s.system), breaker: String(s.breaker) } },
        el('td', { className: 'mono' }, String(s.system)),
        el('td', null, el('span', { className: 'badge pl-' + (s.breaker === 'closed' ? 'ok' : s.breaker === 'open' ? 'bad' : 'warn') }, String(s.breaker))),
        el('td', { className: 'num' }, num(s.calls_per_s)),
        el('td', { className: 'num' }, pct(s.error_rate)),
        el('td', { className: 'num', dataset: { ms: String(s.p50_ms) } }, ms(s.p50_ms)),
        el('td', { className: 'num pl-p99', dataset: { ms: String(s.p99_ms) } }, ms(s.p99_ms)),
        el('td', { className: 'num' }, int(s.inflight)),
        el('td', { className: 'num' }, int(s.queued))))
        : el('tr', { className: 'empty' }, el('td', { colspan: '8' }, 'No outside call yet.')));
    }

    function renderE2e(e) {
      fill(e2eCards,
        card('webhooks_per_s', 'Webhooks per second', num(e.webhooks_per_s)),
        card('awaiting_people', 'Cases waiting for people', int(e.awaiting_people)),
        card('ops_review', 'Cases in ops review', int(e.ops_review), e.ops_review > 0),
        card('oldest_unacked_s', 'Oldest unacknowledged event', duration(e.oldest_unacked_s), e.oldest_unacked_s >= 60));
    }

    // The history with the end-to-end series renamed for their charts (one
    // scale each: a rate, and an age).
    function chartHistory(h) {
      const s = Object.assign({}, h.series || {});
      s['e2e_age.oldest unacked'] = s['e2e.oldest_unacked_s'];
      s['e2e_cases.for people'] = s['e2e.awaiting_people'];
      s['e2e_cases.in ops review'] = s['e2e.ops_review'];
      const out = {};
      for (const [k, v] of Object.entries(s)) {
        if (k === 'e2e.oldest_unacked_s' || k === 'e2e.awaiting_people' || k === 'e2e.ops_review' || !v) continue;
        out[k === 'e2e.webhooks_per_s' ? 'e2e.webhooks' : k] = v;
      }
      return { t: h.t || [], series: out };
    }

    // The history as far as this page has it: each answer brings only the
    // samples after the last one held (?since=), at most d.samples kept.
    const held = { t: [], series: {} };
    function merge(h, keep) {
      const t = Array.isArray(h.t) ? h.t : [];
      for (const k of Object.keys(h.series || {})) {
        if (!held.series[k]) held.series[k] = held.t.map(() => null);
      }
      const last = held.t.length ? held.t[held.t.length - 1] : -1;
      t.forEach((at, i) => {
        if (at <= last) return;
        held.t.push(at);
        for (const [k, v] of Object.entries(held.series)) {
          const got = h.series && Array.isArray(h.series[k]) ? h.series[k][i] : null;
          v.push(got === undefined ? null : got);
        }
      });
      const over = held.t.length - Math.max(2, keep || 0);
      if (over > 0) {
        held.t.splice(0, over);
        for (const v of Object.values(held.series)) v.splice(0, over);
      }
    }

    let chartsOn = null;
    async function load() {
      let r;
      try {
        const since = held.t.length ? '?since=' + held.t[held.t.length - 1] : '';
        r = await kit.api('GET', '/api/pipeline' + since);
      } catch (e) {
        if (e instanceof kit.AuthError || !page.alive) throw e;
        err.textContent = e.message;
        err.hidden = false;
        return;
      }
      if (!page.alive) return;
      err.hidden = true;
      const d = r.data;
      const now = d.now;
      status.textContent = (now
        ? 'Sampled ' + clock(now.at_ms) + ' \u00b7 every ' + d.sample_s + ' s, the last ' +
          duration(d.sample_s * d.samples) + ' kept'
        : 'No sample yet: the first comes within ' + d.sample_s + ' s.') +
        (now && now.supervisor === 'systemd' ? ' \u00b7 no master here: uptime and restarts are systemd\'s ' +
          '(systemctl status \'payguard-*\')' : '') +
        (d.approve === 'not answering' ? ' \u00b7 approve is not answering: shown on your earlier sign-in; ' +
          'the other pages need approve' : '');
      if (now) {
        renderHealth(now);
        renderE2e(now.end_to_end || {});
        renderInstances(Array.isArray(now.instances) ? now.instances : []);
        renderSystems(Array.isArray(now.systems) ? now.systems : []);
      }
      const ok = await loadUplot(d.charts === true);
      if (!page.alive) return;
      if (ok !== chartsOn) {
        chartsOn = ok;
        chartsNote.textContent = ok ? '' : 'Charts are unavailable: uPlot is not installed on the console ' +
          '(sh scripts/install-deps.sh installs it). The numbers below are current.';
        chartsNote.hidden = ok;
        for (const c of all) c.box.hidden = !ok;
      }
      if (d.history) merge(d.history, d.samples);
      if (ok) {
        const h = chartHistory(held);
        for (const c of all) c.update(h);
      }
    }
    kit.every(page, REFRESH_MS, load);
    const stop = setInterval(() => { // app.js's pages have no end hook: look
      if (page.alive) return;
      window.removeEventListener('resize', onResize);
      all.forEach((c) => c.destroy());
      clearInterval(stop);
    }, 1000);
  };
})();
