// payguard ops console: the browser side.
//
// Plain ES2020, no framework, no build step. Served by bin/console at
// /static/app.js under a strict Content-Security-Policy (no inline script or
// style, no eval), so the DOM is built with createElement and every piece of
// data from the API goes in through textContent: a case whose text holds
// "<script>" shows those characters and runs nothing.
//
// The approver's token lives in sessionStorage only; every API call sends it
// as "Authorization: Bearer"; any 401 forgets it and shows the sign-in form.
// Every POST also sends the CSRF token that GET /api/session gave.
//
// Routes (every one of them serves index.html; this file routes on
// location.pathname): /  /?q=<id>  /case/<case_id>  /case/<case_id>?view=print
// /ops  /audit  /pipeline (pipeline.js)  /signin
//
// Times are shown in the viewer's time zone, each with its UTC time in a
// title (on hover); the print view and the export say UTC.
'use strict';

(() => {
  const TOKEN_KEY = 'payguard.token';
  const STATES = [
    'rejected', 'validated', 'triaged', 'awaiting_approval', 'approved', 'denied',
    'expired', 'executing', 'executed', 'ops_review', 'already_consistent', 'closed',
  ];
  const LIST_REFRESH_MS = 5000;
  const CASE_REFRESH_MS = 2000;
  const VERIFY_POLL_MS = 1000;
  const NAV_REFRESH_MS = 10000; // the ops-review count in the navigation
  const FIND_LIMIT = 50;
  const ADVISORY_LABEL = 'Advisory \u2014 AI advice only; people and policy decide';

  let session = null; // {name, roles, csrf} from GET /api/session
  let current = null; // the page being shown: {alive, timers}
  let signinShown = false;

  // ---------------------------------------------------------------- DOM helpers

  // el('tag', {id, className, href, dataset, ...}, child, ...): strings become
  // text nodes, never markup.
  const PROPS = new Set(['className', 'textContent', 'value', 'disabled', 'hidden', 'open', 'htmlFor']);
  function el(tag, props, ...kids) {
    const e = document.createElement(tag);
    if (props) {
      for (const [k, v] of Object.entries(props)) {
        if (v === undefined || v === null || v === false) continue;
        if (k === 'dataset') Object.assign(e.dataset, v);
        else if (PROPS.has(k)) e[k] = v;
        else e.setAttribute(k, v === true ? '' : String(v));
      }
    }
    add(e, kids);
    return e;
  }
  function add(parent, kids) {
    for (const k of kids) {
      if (k === undefined || k === null || k === false) continue;
      if (Array.isArray(k)) add(parent, k);
      else if (k instanceof Node) parent.appendChild(k);
      else parent.appendChild(document.createTextNode(String(k)));
    }
    return parent;
  }
  function fill(parent, ...kids) {
    parent.replaceChildren();
    return add(parent, kids);
  }
  function say(node, text) {
    node.textContent = text || '';
    node.hidden = !text;
  }
  // Attach `node` under `parent` (before `before` if given) or take it out,
  // keeping the element (and what was typed into it) for later.
  function place(node, show, parent, before) {
    if (show) {
      if (node.parentNode !== parent) parent.insertBefore(node, before && before.parentNode === parent ? before : null);
    } else if (node.parentNode) {
      node.parentNode.removeChild(node);
    }
  }
  function cls(s) {
    return String(s == null ? '' : s).toLowerCase().replace(/[^a-z0-9_-]/g, '_') || 'unknown';
  }
  function badge(state, id) {
    return el('span', { id, className: 'badge state-' + cls(state) }, state == null ? '' : String(state));
  }
  function caseHref(id) {
    return '/case/' + encodeURIComponent(id);
  }
  function caseLink(id) {
    return el('a', { href: caseHref(id), className: 'case-link' }, id);
  }
  function dl(rows, props) {
    const d = el('dl', Object.assign({ className: 'facts' }, props || {}));
    for (const [k, v] of rows) {
      if (v === undefined) continue;
      add(d, [el('dt', null, k), el('dd', null, v === null || v === '' ? '\u2014' : v)]);
    }
    return d;
  }
  function jsonText(v) {
    try {
      return JSON.stringify(v, null, 2);
    } catch (e) {
      return String(v);
    }
  }
  function jsonDetails(label, value, key) {
    const d = el('details', { className: 'json', dataset: key ? { key } : undefined },
      el('summary', null, label), el('pre', null, jsonText(value)));
    return d;
  }
  function text(v) {
    if (v === undefined || v === null || v === '') return '\u2014';
    if (typeof v === 'object') return JSON.stringify(v);
    return String(v);
  }

  // ---------------------------------------------------------------- formatting

  function pad(n, w) {
    return String(n).padStart(w || 2, '0');
  }
  function toDate(v) {
    if (v === undefined || v === null || v === '') return null;
    const d = v instanceof Date ? v : new Date(typeof v === 'number' ? v : String(v));
    return Number.isNaN(d.getTime()) ? null : d;
  }
  // "2026-11-21 10:00:00 UTC" (with milliseconds when ms is set): hovers,
  // the print view, the export.
  function fmtUtc(v, ms) {
    const d = toDate(v);
    if (!d) return v === undefined || v === null || v === '' ? '\u2014' : String(v);
    let s = d.getUTCFullYear() + '-' + pad(d.getUTCMonth() + 1) + '-' + pad(d.getUTCDate()) + ' ' +
      pad(d.getUTCHours()) + ':' + pad(d.getUTCMinutes()) + ':' + pad(d.getUTCSeconds());
    if (ms) s += '.' + pad(d.getUTCMilliseconds(), 3);
    return s + ' UTC';
  }
  const zoneFormat = (() => {
    try {
      return new Intl.DateTimeFormat(undefined, { timeZoneName: 'short' });
    } catch (e) {
      return null;
    }
  })();
  // The viewer's zone at d, as "CET", "GMT+2", "UTC" (empty if unknown).
  function zoneName(d) {
    try {
      const part = zoneFormat ? zoneFormat.formatToParts(d).find((x) => x.type === 'timeZoneName') : null;
      return part ? part.value : '';
    } catch (e) {
      return '';
    }
  }
  // "2026-11-21 11:00:00 CET": in the viewer's time zone.
  function fmtTime(v, ms) {
    const d = toDate(v);
    if (!d) return v === undefined || v === null || v === '' ? '\u2014' : String(v);
    let s = d.getFullYear() + '-' + pad(d.getMonth() + 1) + '-' + pad(d.getDate()) + ' ' +
      pad(d.getHours()) + ':' + pad(d.getMinutes()) + ':' + pad(d.getSeconds());
    if (ms) s += '.' + pad(d.getMilliseconds(), 3);
    const z = zoneName(d);
    return z ? s + ' ' + z : s;
  }
  // "11:00:05": the viewer's clock.
  function fmtClock(v) {
    const d = toDate(v) || new Date();
    return pad(d.getHours()) + ':' + pad(d.getMinutes()) + ':' + pad(d.getSeconds());
  }
  // <time> in the viewer's zone, its UTC time on hover.
  function timeEl(v, ms, props) {
    const d = toDate(v);
    if (!d) return el('span', props, fmtTime(v, ms));
    return el('time', Object.assign({ datetime: d.toISOString(), title: fmtUtc(d, ms) }, props || {}), fmtTime(d, ms));
  }
  // A hover for an age: the time in the viewer's zone and in UTC.
  function bothTimes(v) {
    return toDate(v) ? fmtTime(v, true) + ' (' + fmtUtc(v, true) + ')' : null;
  }
  function fmtAge(v) {
    const t = Date.parse(v);
    if (Number.isNaN(t)) return '\u2014';
    const s = Math.max(0, Math.floor((Date.now() - t) / 1000));
    if (s < 60) return s + ' s ago';
    if (s < 3600) return Math.floor(s / 60) + ' min ago';
    if (s < 86400) return Math.floor(s / 3600) + ' h ago';
    return Math.floor(s / 86400) + ' d ago';
  }
  function plural(n, word) {
    return n + ' ' + word + (n === 1 ? '' : 's');
  }
  function countsText(c) {
    const r = Number.isInteger(c.receipts) ? c.receipts : null;
    const d = Number.isInteger(c.duplicates) ? c.duplicates : null;
    if (r === null && d === null) return '\u2014';
    return [r === null ? null : plural(r, 'receipt'), d === null ? null : plural(d, 'duplicate')]
      .filter(Boolean).join(', ');
  }

  const knownCurrencies = (() => {
    try {
      return typeof Intl.supportedValuesOf === 'function' ? new Set(Intl.supportedValuesOf('currency')) : null;
    } catch (e) {
      return null;
    }
  })();
  const formatters = new Map();
  function currencyFormat(cur) {
    if (typeof cur !== 'string' || !/^[A-Z]{3}$/.test(cur)) return null;
    if (knownCurrencies && !knownCurrencies.has(cur)) return null;
    if (!formatters.has(cur)) {
      let f = null;
      try {
        f = new Intl.NumberFormat(undefined, { style: 'currency', currency: cur });
      } catch (e) {
        f = null;
      }
      formatters.set(cur, f);
    }
    return formatters.get(cur);
  }
  // Integer minor units in the currency's own format: the number of decimals
  // is the one Intl uses for the currency (JPY 0, USD 2, KWD 3). The amount
  // goes to Intl as an exact decimal string, so no float rounding.
  function fmtAmount(amount, currency, amountText) {
    const f = currencyFormat(currency);
    if (f && Number.isSafeInteger(amount)) {
      const digits = f.resolvedOptions().maximumFractionDigits;
      const neg = amount < 0;
      let s = String(Math.abs(amount));
      if (digits > 0) {
        s = s.padStart(digits + 1, '0');
        s = s.slice(0, -digits) + '.' + s.slice(-digits);
      }
      try {
        return f.format((neg ? '-' : '') + s);
      } catch (e) {
        /* fall through */
      }
    }
    if (amountText) return String(amountText);
    if (amount === undefined || amount === null) return '\u2014';
    return String(amount) + (currency ? ' ' + currency + ' (minor units)' : '');
  }

  // ---------------------------------------------------------------- token, API

  function getToken() {
    try {
      return sessionStorage.getItem(TOKEN_KEY) || '';
    } catch (e) {
      return '';
    }
  }
  function setToken(t) {
    try {
      sessionStorage.setItem(TOKEN_KEY, t);
    } catch (e) {
      /* nothing to do: the session lasts as long as the page */
    }
  }
  function clearToken() {
    try {
      sessionStorage.removeItem(TOKEN_KEY);
    } catch (e) {
      /* ignore */
    }
  }

  class ApiError extends Error {
    constructor(status, message, data) {
      super(message);
      this.status = status;
      this.data = data;
    }
  }
  class AuthError extends ApiError {}

  async function request(method, path, body, token) {
    const headers = { Accept: 'application/json' };
    if (token) headers.Authorization = 'Bearer ' + token;
    const init = { method, headers, cache: 'no-store', credentials: 'omit', redirect: 'error' };
    if (method !== 'GET') {
      headers['Content-Type'] = 'application/json';
      headers['X-CSRF-Token'] = (session && session.csrf) || '';
      init.body = JSON.stringify(body || {});
    }
    let res;
    try {
      res = await fetch(path, init);
    } catch (e) {
      throw new ApiError(0, 'Cannot reach the console (' + (e && e.message ? e.message : 'network error') + ')');
    }
    let data = null;
    let raw = '';
    try {
      raw = await res.text();
    } catch (e) {
      raw = '';
    }
    if (raw) {
      try {
        data = JSON.parse(raw);
      } catch (e) {
        data = null;
      }
    }
    if (!res.ok) {
      let msg = data && typeof data.error === 'string' && data.error ? data.error : '';
      if (!msg) msg = res.status === 401 ? 'Unknown token' : ('HTTP ' + res.status + ' ' + (res.statusText || '')).trim();
      throw new ApiError(res.status, msg, data);
    }
    if (data === null || typeof data !== 'object') {
      throw new ApiError(res.status, 'The console answered HTTP ' + res.status + ' without a JSON object');
    }
    return { status: res.status, data };
  }

  // One call with the stored token; a 401 signs out.
  async function call(method, path, body) {
    const token = getToken();
    if (!token) {
      expire('');
      throw new AuthError(401, 'Not signed in');
    }
    try {
      return await request(method, path, body, token);
    } catch (e) {
      if (e instanceof ApiError && e.status === 401) {
        expire(e.message);
        throw new AuthError(401, e.message, e.data);
      }
      throw e;
    }
  }

  // A call of the API. A POST answered 403 "csrf..." fetches the session again
  // (a new CSRF token) and is tried once more.
  async function api(method, path, body) {
    try {
      return await call(method, path, body);
    } catch (e) {
      if (method !== 'GET' && e instanceof ApiError && !(e instanceof AuthError) &&
          e.status === 403 && /^csrf/i.test(e.message)) {
        const s = await call('GET', '/api/session');
        session = normSession(s.data);
        showHeader();
        return call(method, path, body);
      }
      throw e;
    }
  }

  function normSession(d) {
    return {
      name: typeof d.name === 'string' ? d.name : '',
      roles: Array.isArray(d.roles) ? d.roles.map(String) : [],
      csrf: typeof d.csrf === 'string' ? d.csrf : '',
    };
  }

  // The token is unknown (or gone): forget it and ask for one. The URL stays,
  // so signing in again comes back to the same page.
  function expire(message) {
    clearToken();
    session = null;
    if (signinShown) {
      // Already asking: just show the newest message.
      const err = document.getElementById('signin-error');
      if (err && message) say(err, message);
      return;
    }
    renderSignin(message === '' ? '' : (message || 'Unknown token'), false);
  }

  // ---------------------------------------------------------------- pages, routing

  function startPage(title) {
    stopPage();
    signinShown = false;
    current = { alive: true, timers: new Set() };
    document.title = title + ' \u2014 payguard';
    window.scrollTo(0, 0);
    return current;
  }
  function stopPage() {
    if (current) {
      current.alive = false;
      for (const t of current.timers) clearTimeout(t);
      current.timers.clear();
    }
    current = null;
  }
  function later(p, fn, ms) {
    if (!p.alive) return;
    const t = setTimeout(() => {
      p.timers.delete(t);
      if (p.alive) fn();
    }, ms);
    p.timers.add(t);
  }
  // Run load() now and then every `ms` after each run ends.
  function every(p, ms, load) {
    const tick = async () => {
      if (!p.alive) return;
      try {
        await load();
      } catch (e) {
        if (e instanceof AuthError) return;
        /* the page's load shows its own errors */
      }
      later(p, tick, ms);
    };
    tick();
  }
  function main() {
    return document.getElementById('main');
  }

  function navigate(href, replace) {
    if (replace) history.replaceState(null, '', href);
    else history.pushState(null, '', href);
    route();
  }

  function route() {
    stopPage();
    const path = location.pathname;
    if (!session) {
      const token = getToken();
      if (!token) {
        renderSignin('', false);
        return;
      }
      bootSession(token);
      return;
    }
    signinShown = false;
    showHeader();
    if (path === '/signin') {
      navigate('/', true);
      return;
    }
    if (path === '/' || path === '/index.html') return pageCases();
    if (path === '/ops') return pageOps();
    if (path === '/audit') return pageAudit();
    if (path === '/pipeline') return pagePipeline();
    const m = /^\/case\/([^/]+)\/?$/.exec(path);
    if (m) {
      let id = null;
      try {
        id = decodeURIComponent(m[1]);
      } catch (e) {
        id = null;
      }
      if (id && new URLSearchParams(location.search).get('view') === 'print') return pagePrint(id);
      if (id) return pageCase(id);
    }
    return pageNotFound();
  }

  async function bootSession(token) {
    const p = startPage('Loading');
    hideHeader();
    fill(main(), el('p', { className: 'muted' }, 'Loading\u2026'));
    try {
      const r = await request('GET', '/api/session', null, token);
      if (!p.alive) return;
      session = normSession(r.data);
      route();
    } catch (e) {
      if (!p.alive) return;
      if (e instanceof ApiError && e.status === 401) {
        clearToken();
        renderSignin(e.message || 'Unknown token', false);
        return;
      }
      const retry = el('button', { type: 'button', id: 'retry-session' }, 'Try again');
      retry.addEventListener('click', () => route());
      fill(main(), el('section', { className: 'box' },
        el('h1', null, 'Cannot load your session'),
        el('p', { className: 'error', role: 'alert' }, e.message),
        retry));
    }
  }

  function hideHeader() {
    document.getElementById('top').hidden = true;
    document.getElementById('whoami').textContent = '';
  }
  function showHeader() {
    const top = document.getElementById('top');
    top.hidden = false;
    if (session) {
      const who = document.getElementById('whoami');
      fill(who, el('span', { className: 'who-name' }, session.name),
        el('span', { className: 'who-roles' }, session.roles.length ? session.roles.join(', ') : 'no roles'));
    }
    const section = location.pathname === '/ops' ? 'ops'
      : location.pathname === '/audit' ? 'audit'
        : location.pathname === '/pipeline' ? 'pipeline'
          : 'cases';
    for (const a of top.querySelectorAll('nav a')) {
      const on = a.dataset.nav === section;
      a.classList.toggle('current', on);
      if (on) a.setAttribute('aria-current', 'page');
      else a.removeAttribute('aria-current');
    }
    startNav();
  }

  // ---------------------------------------------------------------- navigation: count, find

  // The ops-review count: cases in ops review and approvals expired
  // unanswered (what the Ops review page lists), every NAV_REFRESH_MS.
  let navTimer = null;
  function startNav() {
    if (navTimer !== null) return;
    const tick = async () => {
      if (session) await refreshOpsCount().catch(() => {});
      navTimer = session ? setTimeout(tick, NAV_REFRESH_MS) : null;
    };
    navTimer = setTimeout(tick, 0);
  }
  function showOpsCount(n) {
    const b = document.getElementById('nav-ops-count');
    if (!b) return;
    b.hidden = !Number.isInteger(n);
    b.textContent = Number.isInteger(n) ? String(n) : '';
    b.classList.toggle('zero', n === 0);
    b.setAttribute('aria-label', Number.isInteger(n) ? plural(n, 'case') + ' waiting' : '');
  }
  async function refreshOpsCount() {
    const [cr, ar] = await Promise.allSettled([
      call('GET', '/api/cases?state=ops_review&limit=1000'),
      call('GET', '/api/approvals?status=expired'),
    ]);
    if (!session) return;
    if (cr.status === 'rejected' && ar.status === 'rejected') {
      showOpsCount(null);
      return;
    }
    const ids = new Set();
    for (const r of [cr, ar]) {
      const d = r.status === 'fulfilled' ? r.value.data : {};
      for (const x of [].concat(d.cases || [], d.approvals || [])) if (x && x.case_id != null) ids.add(String(x.case_id));
    }
    showOpsCount(ids.size);
  }

  function setFindValue(v) {
    const input = document.getElementById('find');
    if (input && document.activeElement !== input) input.value = v || '';
  }
  // The search box: one case opens it, several (or none) are listed on
  // /?q=, which says so.
  async function findCase(raw) {
    const q = String(raw || '').trim();
    const input = document.getElementById('find');
    if (!q) {
      input.focus();
      return;
    }
    input.setAttribute('aria-busy', 'true');
    let one = null;
    try {
      const r = await api('GET', '/api/cases?limit=' + FIND_LIMIT + '&q=' + encodeURIComponent(q));
      const cases = Array.isArray(r.data.cases) ? r.data.cases.filter((c) => c && c.case_id != null) : [];
      if (cases.length === 1) one = String(cases[0].case_id);
    } catch (e) {
      if (e instanceof AuthError) return;
      /* the list page shows why (a bad query's 400 says what is wrong) */
    } finally {
      input.removeAttribute('aria-busy');
    }
    input.blur();
    if (one) {
      input.value = '';
      navigate(caseHref(one), false);
    } else {
      navigate('/?q=' + encodeURIComponent(q), false);
    }
  }

  // ---------------------------------------------------------------- sign-in

  function renderSignin(message, signedOut) {
    stopPage();
    hideHeader();
    signinShown = true;
    document.title = 'Sign in \u2014 payguard';
    const input = el('input', {
      id: 'token', name: 'token', type: 'password', autocomplete: 'off',
      spellcheck: 'false', autocapitalize: 'off', required: true,
    });
    const button = el('button', { id: 'signin', type: 'submit' }, 'Sign in');
    const err = el('p', { id: 'signin-error', className: 'error', role: 'alert', hidden: true });
    const note = el('p', { id: 'signin-note', className: 'note', hidden: true });
    say(err, message);
    if (signedOut) say(note, 'Signed out.');
    const form = el('form', { id: 'signin-form', className: 'signin', method: 'post', action: '/signin', autocomplete: 'off' },
      el('h1', null, 'payguard ops console'),
      el('p', { className: 'muted' }, 'Sign in with your own approver token. It is kept in this tab only and forgotten when you sign out or close the tab.'),
      el('label', { htmlFor: 'token' }, 'Token'),
      input,
      button,
      note,
      err);
    form.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      const token = input.value.trim();
      say(note, '');
      if (!token) {
        say(err, 'Enter your token');
        return;
      }
      button.disabled = true;
      try {
        const r = await request('GET', '/api/session', null, token);
        if (!signinShown || !form.isConnected) return;
        setToken(token);
        session = normSession(r.data);
        signinShown = false;
        if (location.pathname === '/signin') navigate('/', true);
        else route();
      } catch (e) {
        if (!form.isConnected) return;
        say(err, e instanceof ApiError && e.status === 401 ? (e.message || 'Unknown token') : e.message);
        input.select();
      } finally {
        button.disabled = false;
      }
    });
    fill(main(), form);
    input.focus();
  }

  function signOut() {
    clearToken();
    session = null;
    showOpsCount(null);
    setFindValue('');
    history.pushState(null, '', '/signin');
    renderSignin('', true);
  }

  function pageNotFound() {
    startPage('Not found');
    fill(main(), el('section', { className: 'box' },
      el('h1', null, 'Not found'),
      el('p', { className: 'error', role: 'alert' }, 'No page at ' + location.pathname),
      el('p', null, el('a', { href: '/' }, 'Back to the cases'))));
  }

  // ---------------------------------------------------------------- plain words

  // What a runbook step is, and what it did once done.
  const STEP_WORDS = {
    hold_payout: ['payout hold', 'Payout held'],
    hold_beneficiary: ['beneficiary hold', 'Beneficiary held'],
    ledger_payout_reversal: ['ledger reversal', 'Ledger reversal posted'],
    ledger_refund_succeeded: ['ledger refund entry', 'Ledger refund entry posted'],
    ledger_refund_failed: ['ledger refund-failed entry', 'Ledger refund-failed entry posted'],
    ledger_refund_reversal: ['ledger refund reversal', 'Ledger refund reversal posted'],
    block_comms: ['comms block', 'Customer comms blocked'],
    open_ticket: ['ticket', 'Ticket opened'],
    failure_ticket: ['failure ticket', 'Failure ticket opened'],
    ticket_comment: ['ticket comment', 'Ticket comment added'],
    notify_teams: ['Teams notice', 'Teams notice sent'],
    teams_notice: ['Teams notice', 'Teams notice sent'],
    release_hold: ['hold release', 'Hold released'],
  };
  const ID_FIELDS = {
    case_id: 'case id', payout_id: 'payout id', refund_id: 'refund id', payment_id: 'payment id', ref: 'reference',
    psp_event_id: 'PSP event id', webhook_id: 'webhook id', psp_reference: 'PSP reference',
    idempotency_key: 'idempotency key', receipt_id: 'receipt id', ticket_key: 'ticket key',
  };
  function capital(t) {
    const s = String(t || '');
    return s.charAt(0).toUpperCase() + s.slice(1);
  }
  function human(id) {
    return String(id).replace(/_/g, ' ');
  }
  function andList(items) {
    const a = items.map(human);
    return a.length < 2 ? a.join('') : a.slice(0, -1).join(', ') + ' and ' + a[a.length - 1];
  }
  function stepName(step) {
    return STEP_WORDS[step] ? STEP_WORDS[step][0] : human(step);
  }

  // caseidx_summary's step line: "step NAME STATUS[: SYSTEM METHOD PATH]
  // [-> HTTP N after K attempt(s)][: EFFECT]", in words.
  function stepWords(summary) {
    const m = /^step (\S+) (\S+)(?:: (\S+) (\S+) (\S+))?(?: -> HTTP (\d+) after (\d+) attempt\(s\))?(?:: (.*))?$/.exec(summary);
    if (!m) return capital(summary);
    const [, step, status, system, , , http, attempts, effect] = m;
    const tk = effect ? /^(created|found existing) ticket (\S+)/.exec(effect) : null;
    if (status === 'done' && tk) return 'Ticket ' + tk[2] + (tk[1] === 'created' ? ' opened' : ' found (already open)');
    if (status === 'done') return STEP_WORDS[step] ? STEP_WORDS[step][1] : capital(stepName(step)) + ' done';
    if (status === 'failed') {
      return capital(system || stepName(step)) + ' step failed' +
        (http ? ': ' + http + (attempts ? ' \u00d7' + attempts : '') : effect ? ': ' + effect : '');
    }
    if (status === 'started') return capital(stepName(step)) + ': calling ' + (system || 'out') + '\u2026';
    return capital(stepName(step)) + ' ' + status;
  }

  // "to ops review: step NAME failed: ERROR"
  function reviewWords(summary) {
    const m = /^to ops review: step (\S+) failed: ?(.*)$/.exec(summary || '');
    if (!m) return capital(summary || 'a runbook step failed');
    const h = /^HTTP (\d+) after (\d+) attempt\(s\)/.exec(m[2]);
    return capital(stepName(m[1])) + ' step failed: ' + (h ? h[1] + ' \u00d7' + h[2] : m[2] || 'no reason given');
  }

  // A timeline entry {type, summary} in plain words.
  function eventWords(ev) {
    const t = String(ev.type || '');
    const sum = ev.summary == null ? '' : String(ev.summary);
    let m;
    switch (t) {
      case 'receipt': return 'Webhook received';
      case 'validated': return 'Webhook checked and accepted';
      case 'duplicate':
        m = /seen (\d+) times/.exec(sum);
        return 'Same webhook again' + (m ? ' (seen ' + m[1] + ' times)' : '') + ': not acted on';
      case 'out_of_order': return 'Older event arrived late: changes nothing';
      case 'ignored': return 'Event type payguard does not handle: ignored';
      case 'rejected':
        m = /^rejected at the (\S+) gate \([^)]*\): (.*)$/.exec(sum);
        return m ? 'Rejected at the ' + m[1] + ' check: ' + m[2] : capital(sum);
      case 'triaged':
        m = /recommends (\S+)/.exec(sum);
        return 'AI advice (advisory): ' + (m ? human(m[1].replace(/,$/, '')) : 'recorded');
      case 'routed':
        m = /^routed \([^)]*\): (.*)$/.exec(sum);
        return 'Routed' + (m && m[1] ? ': ' + m[1] : '');
      case 'decision':
        m = /^(\S+) \(([^)]*)\) decided (\S+)/.exec(sum);
        return m ? m[1] + (m[3] === 'approve' ? ' approved' : m[3] === 'deny' ? ' denied' : ' decided ' + m[3]) : capital(sum);
      case 'approved': return sum === 'approved by policy' ? 'Auto-approved by policy' : capital(sum);
      case 'escalated': return 'Nobody decided in time: escalated to the next tier';
      case 'expired': return 'Approval expired unanswered';
      case 'runbook': return 'Runbook started';
      case 'step': return stepWords(sum);
      case 'review': return reviewWords(sum) + ' \u2014 to ops review';
      case 'executed':
        m = /^runbook finished: (\S+)/.exec(sum);
        return !m ? capital(sum) : m[1] === 'done' ? 'Runbook finished' : m[1] === 'nothing_to_do'
          ? 'Nothing to do: records already agree' : m[1] === 'ops_review' ? 'Runbook stopped' : 'Runbook ' + human(m[1]);
      case 'notice':
        m = /^Teams card queued: (.*)$/.exec(sum);
        return 'Teams card sent' + (m ? ': ' + m[1] : '');
      case 'decision_refused':
      case 'access_denied':
        m = /^(\S*) refused \((\d+)\): (.*)$/.exec(sum);
        return m ? 'Refused ' + (m[1] ? m[1] + '\u2019s request ' : '') + '(' + m[2] + '): ' + m[3] : capital(sum);
      default: return capital(sum || human(t));
    }
  }

  // The list's "Last" column: what happened, or what the case waits for.
  // missing: the roles approve still needs (pending approvals), if known.
  function lastWords(c, missing) {
    const last = c.last && typeof c.last === 'object' ? c.last : null;
    if (c.state === 'awaiting_approval') {
      return Array.isArray(missing) && missing.length ? 'Waiting for ' + andList(missing) : 'Waiting for approval';
    }
    if (c.state === 'ops_review') {
      const why = c.review && c.review.summary ? reviewWords(String(c.review.summary)) : last ? eventWords(last) : 'A runbook step failed';
      return why + ' \u2014 in ops review';
    }
    if (c.state === 'executing' && last && last.type !== 'step') return 'Runbook running';
    if (c.state === 'denied' && last && (last.type === 'executed' || last.type === 'step' || last.type === 'runbook')) {
      return 'Denied: the denial notice ' + (last.type === 'executed' ? 'was sent' : 'is on its way');
    }
    const ended = ['closed', 'executed', 'denied', 'expired', 'already_consistent'].includes(c.state);
    if (ended && last && (last.type === 'decision_refused' || last.type === 'access_denied')) {
      return capital(human(c.state)) + ' (since then: ' + eventWords(last) + ')'; // a refusal changes nothing
    }
    return last ? eventWords(last) : '\u2014';
  }

  // ---------------------------------------------------------------- cases list

  const FILTERS = [
    { id: 'f-state', param: 'state', label: 'State', options: [['', 'all']].concat(STATES.map((s) => [s, s])) },
    { id: 'f-kind', param: 'kind', label: 'Kind', options: [['', 'all'], ['payout', 'payout'], ['refund', 'refund']] },
    { id: 'f-tier', param: 'tier', label: 'Tier', options: [['', 'all'], ['1', '1'], ['2', '2'], ['3', '3']] },
    {
      id: 'f-age', param: 'max_age_s', label: 'Age',
      options: [['', 'any'], ['3600', 'last hour'], ['86400', 'last day'], ['604800', 'last week']],
    },
  ];

  function pageCases() {
    const params = new URLSearchParams(location.search);
    const query = (params.get('q') || '').trim();
    const p = startPage(query ? 'Find ' + query : 'Cases');
    setFindValue(query);
    const selects = [];
    const bar = el('form', { className: 'filters', id: 'filters', role: 'search' });
    bar.addEventListener('submit', (ev) => ev.preventDefault());
    function wanted() {
      const q = new URLSearchParams();
      if (query) q.set('q', query);
      for (const [f, s] of selects) if (s.value) q.set(f.param, s.value);
      return q.toString();
    }
    for (const f of FILTERS) {
      const sel = el('select', { id: f.id, name: f.param });
      const want = params.get(f.param) || '';
      const opts = f.options.slice();
      if (want && !opts.some(([v]) => v === want)) opts.push([want, want]);
      for (const [v, label] of opts) add(sel, [el('option', { value: v }, label)]);
      sel.value = want;
      sel.addEventListener('change', () => {
        const qs = wanted();
        history.replaceState(null, '', '/' + (qs ? '?' + qs : ''));
        reload();
      });
      selects.push([f, sel]);
      add(bar, [el('label', { className: 'filter' }, el('span', null, f.label), sel)]);
    }
    const status = el('span', { id: 'cases-status', className: 'muted status-line' });
    add(bar, [status]);

    const err = el('p', { id: 'cases-error', className: 'error', role: 'alert', hidden: true });
    const findStatus = el('p', { id: 'find-status', className: 'find-status', role: 'status', hidden: !query });
    const tbody = el('tbody');
    const opt = new Set(['Kind', 'Ref', 'Tier', 'Age', 'Receipts / dups']); // left out on a phone
    const table = el('table', { id: 'cases', className: 'grid' },
      el('thead', null, el('tr', null,
        ['Case', 'Kind', 'State', 'Ref', 'Amount', 'Tier', 'Age', 'Receipts / dups', 'Last'].map((h) =>
          el('th', { scope: 'col', className: opt.has(h) ? 'opt' : null }, h)))),
      tbody);
    const title = query ? el('h1', null, 'Find ', el('span', { className: 'mono' }, query)) : el('h1', null, 'Cases');
    fill(main(), title, findStatus, bar, err, el('div', { className: 'table-wrap' }, table));

    let seq = 0;
    let shown = 0;
    async function load() {
      const my = ++seq;
      const qs = wanted();
      const [cr, ar] = await Promise.allSettled([
        api('GET', '/api/cases' + (qs ? '?' + qs : '')),
        api('GET', '/api/approvals?status=pending'),
      ]);
      if (!p.alive || my < shown) return;
      if (cr.status === 'rejected') {
        if (cr.reason instanceof AuthError) throw cr.reason;
        shown = my;
        say(err, cr.reason.message);
        return;
      }
      shown = my;
      say(err, '');
      const missing = new Map(); // case id -> the roles approve still needs
      const approvals = ar.status === 'fulfilled' && Array.isArray(ar.value.data.approvals) ? ar.value.data.approvals : [];
      for (const a of approvals) if (a && a.case_id != null) missing.set(String(a.case_id), a.missing_roles);
      const cases = Array.isArray(cr.value.data.cases) ? cr.value.data.cases : [];
      renderRows(cases, missing);
      if (query) {
        const how = cr.value.data.match === 'prefix' ? 'ids beginning with' : 'the id';
        say(findStatus, cases.length ? plural(cases.length, 'case') + ' found by ' + how + ' \u201c' + query + '\u201d'
          : 'No case matches \u201c' + query + '\u201d: try a case, payout, refund, payment, PSP event, webhook or receipt id, a ticket key, or its first characters.');
      }
      status.textContent = plural(cases.length, 'case') + ' \u00b7 updated ' + fmtClock();
    }
    function matchedLine(c) {
      const m = Array.isArray(c.matched) ? c.matched.filter((x) => x && x.field && x.field !== 'case_id') : [];
      if (!m.length) return null;
      return el('div', { className: 'matched muted' }, 'by ' + (ID_FIELDS[m[0].field] || human(m[0].field)) + ' ',
        el('span', { className: 'mono' }, String(m[0].id)));
    }
    function renderRows(cases, missing) {
      const rows = cases.filter((c) => c && c.case_id != null).map((c) => {
        const id = String(c.case_id);
        const last = c.last && typeof c.last === 'object' ? c.last : null;
        return el('tr', { dataset: { caseId: id } },
          el('td', { className: 'mono' }, caseLink(id), matchedLine(c)),
          el('td', { className: 'opt' }, text(c.kind)),
          el('td', null, badge(c.state)),
          el('td', { className: 'mono opt' }, text(c.ref)),
          el('td', { className: 'num' }, fmtAmount(c.amount, c.currency, c.amount_text)),
          el('td', { className: 'num opt' }, text(c.tier)),
          el('td', { className: 'opt', title: bothTimes(c.created_at) }, fmtAge(c.created_at)),
          el('td', { className: 'num opt' }, text(c.receipts) + ' / ' + text(c.duplicates)),
          el('td', { className: 'last', title: last ? text(last.type) + ': ' + text(last.summary) : null },
            el('span', { className: 'last-words' }, lastWords(c, missing.get(id))),
            last && last.at ? [' ', el('span', { className: 'when muted', title: bothTimes(last.at) }, fmtAge(last.at))] : null));
      });
      if (!rows.length) rows.push(el('tr', { className: 'empty' }, el('td', { colspan: '9' }, query ? 'No case matches.' : 'No cases match.')));
      fill(tbody, rows);
    }
    const reload = () => load().catch(() => {});
    every(p, LIST_REFRESH_MS, load);
  }

  // ---------------------------------------------------------------- case page

  function pageCase(caseId) {
    const p = startPage('Case ' + caseId);
    const enc = encodeURIComponent(caseId);

    // The skeleton is built once; refreshes only replace the contents of the
    // data sections, so a typed comment and a shown refusal stay.
    const stateBadge = el('span', { id: 'case-state', className: 'badge' });
    const head = el('div', { className: 'case-head' },
      el('h1', null, el('span', { className: 'muted' }, 'Case '), el('span', { id: 'case-id', className: 'mono' }, caseId), ' ', stateBadge));
    const caseErr = el('p', { id: 'case-error', className: 'error', role: 'alert', hidden: true });
    const facts = el('div', { id: 'case-facts' });
    const exportBtn = el('button', { id: 'export-json', type: 'button', className: 'secondary' }, 'Export JSON');
    const exportErr = el('p', { id: 'export-error', className: 'error', role: 'alert', hidden: true });
    const tools = el('div', { className: 'case-tools no-print' }, exportBtn,
      el('a', { id: 'print-view', className: 'button-link', href: caseHref(caseId) + '?view=print' }, 'Printable record'));
    exportBtn.addEventListener('click', async () => {
      exportBtn.disabled = true;
      say(exportErr, '');
      try {
        const [cr, vr] = await Promise.allSettled([api('GET', '/api/cases/' + enc), api('GET', '/api/audit/verify')]);
        if (cr.status === 'rejected') throw cr.reason;
        const doc = exportDoc(cr.value.data, vr.status === 'fulfilled' ? vr.value.data : null);
        download('payguard-case-' + caseId.replace(/[^A-Za-z0-9._-]/g, '_') + '.json', JSON.stringify(doc, null, 2) + '\n');
      } catch (e) {
        if (!(e instanceof AuthError) && p.alive) say(exportErr, 'Export failed: ' + e.message);
      } finally {
        exportBtn.disabled = false;
      }
    });

    const adviceBody = el('div', { id: 'advice-body' });
    const advice = el('section', { id: 'advice', className: 'box advice' },
      el('h2', null, 'AI recommendation'),
      el('p', { className: 'advisory' }, ADVISORY_LABEL),
      adviceBody);

    // Approval (only when approve has one for the case).
    const approvalFacts = el('div');
    const requiredList = el('ul', { id: 'required-roles', className: 'roles' });
    const missingList = el('ul', { id: 'missing-roles', className: 'roles' });
    const approvalErr = el('p', { id: 'approval-error', className: 'error', role: 'alert', hidden: true });
    const approvalBox = el('section', { id: 'approval', className: 'box' },
      el('h2', null, 'Approval'),
      approvalErr,
      approvalFacts,
      el('div', { className: 'cols' },
        el('div', null, el('h3', null, 'Required roles'), requiredList),
        el('div', null, el('h3', null, 'Missing roles'), missingList)));

    const decisionsList = el('ul', { id: 'decisions', className: 'decisions' });
    const decisionsTitle = el('h2', null, 'Decisions');
    const comment = el('textarea', { id: 'comment', name: 'comment', rows: '3', placeholder: 'Why (recorded with your decision)' });
    const approveBtn = el('button', { id: 'approve', type: 'button', className: 'approve' }, 'Approve');
    const denyBtn = el('button', { id: 'deny', type: 'button', className: 'deny' }, 'Deny');
    const decide = el('div', { id: 'decide', className: 'decide' },
      el('label', { htmlFor: 'comment' }, 'Your decision'),
      comment,
      el('div', { className: 'buttons' }, approveBtn, denyBtn));
    const decideResult = el('p', { id: 'decide-result', className: 'result', role: 'status', hidden: true });
    const decideError = el('p', { id: 'decide-error', className: 'error refusal', role: 'alert', hidden: true });
    const decisionsBox = el('section', { id: 'decisions-box', className: 'box' },
      decisionsTitle, decisionsList, decideResult, decideError);

    const plan = el('section', { id: 'plan', className: 'box' });
    const actions = el('section', { id: 'actions', className: 'box' });

    const reviewComment = el('textarea', { id: 'review-comment', name: 'review-comment', rows: '3', placeholder: 'Why (recorded with the retry or close)' });
    const retryBtn = el('button', { id: 'retry', type: 'button' }, 'Retry');
    const closeBtn = el('button', { id: 'close', type: 'button', className: 'secondary' }, 'Close');
    const reviewPanel = el('div', { className: 'decide' },
      el('label', { htmlFor: 'review-comment' }, 'Comment'), reviewComment,
      el('div', { className: 'buttons' }, retryBtn, closeBtn));
    const reviewResult = el('p', { id: 'review-result', className: 'result', role: 'status', hidden: true });
    const reviewError = el('p', { id: 'review-error', className: 'error refusal', role: 'alert', hidden: true });
    const review = el('section', { id: 'review', className: 'box review' },
      el('h2', null, 'Ops review'),
      el('p', { className: 'muted' }, 'A runbook step failed for good. Retry re-runs the failed plan from the failed step after a new approval round; Close ends the case.'),
      reviewPanel, reviewResult, reviewError);

    const timeline = el('ol', { id: 'timeline', className: 'timeline' });
    const timelineBox = el('section', { id: 'timeline-box', className: 'box' }, el('h2', null, 'Timeline'), timeline);

    const body = el('div', { id: 'case-body' });
    fill(main(), el('p', { className: 'crumbs' }, el('a', { href: '/' }, '\u2190 Cases')), head, tools, exportErr, caseErr, body);
    // The order of the sections; place() puts optional ones back in place.
    const order = [facts, advice, approvalBox, decisionsBox, plan, actions, review, timelineBox];
    function show(node, on) {
      const i = order.indexOf(node);
      let before = null;
      for (let j = i + 1; j < order.length; j++) {
        if (order[j].parentNode === body) {
          before = order[j];
          break;
        }
      }
      place(node, on, body, before);
    }

    let seq = 0;
    let shown = 0;
    let lastCase = null;
    let lastApproval = null;
    const memo = {};
    // Render a section only when its data changed (keeps <details> open).
    function changed(key, value) {
      const s = jsonText(value);
      if (memo[key] === s) return false;
      memo[key] = s;
      return true;
    }

    async function load() {
      const my = ++seq;
      const [cr, ar] = await Promise.allSettled([
        api('GET', '/api/cases/' + enc),
        api('GET', '/api/approvals/' + enc),
      ]);
      if (!p.alive || my < shown) return;
      if ((cr.status === 'rejected' && cr.reason instanceof AuthError) ||
          (ar.status === 'rejected' && ar.reason instanceof AuthError)) return;
      shown = my;

      let c = lastCase;
      if (cr.status === 'fulfilled') {
        c = cr.value.data;
        say(caseErr, '');
      } else if (cr.reason instanceof ApiError && cr.reason.status === 404) {
        c = null;
        say(caseErr, 'No such case');
      } else {
        say(caseErr, cr.reason && cr.reason.message ? cr.reason.message : String(cr.reason));
      }
      lastCase = c;

      let a = lastApproval;
      if (ar.status === 'fulfilled') {
        a = ar.value.data;
        say(approvalErr, '');
      } else if (ar.reason instanceof ApiError && ar.reason.status === 404) {
        a = null;
      } else {
        say(approvalErr, 'Could not read the approval: ' + (ar.reason && ar.reason.message ? ar.reason.message : String(ar.reason)));
      }
      lastApproval = a;
      render(c, a);
    }

    function render(c, a) {
      if (!c && !a) {
        stateBadge.textContent = '';
        stateBadge.className = 'badge';
        stateBadge.hidden = true;
        for (const s of order) show(s, false);
        return;
      }
      const state = c ? c.state : undefined;
      stateBadge.hidden = state == null;
      stateBadge.textContent = state == null ? '' : String(state);
      stateBadge.className = 'badge state-' + cls(state);
      document.title = 'Case ' + caseId + (state ? ' (' + state + ')' : '') + ' \u2014 payguard';

      const f = c || a || {};
      if (changed('facts', [f.kind, f.ref, f.provider, f.amount, f.currency, f.amount_text, f.tier,
        c && c.created_at, c && c.updated_at, c && c.receipts, c && c.duplicates, c && c.idempotency_keys])) {
        renderFacts(c, f);
      }
      show(facts, true);

      const rec = (c && c.recommendation) || (a && a.recommendation) || null;
      if (changed('advice', rec)) renderAdvice(rec);
      show(advice, true);

      show(approvalBox, !!a);
      if (a && changed('approval', [a, session && session.roles])) renderApproval(a);

      const decisions = a ? a.decisions : (c && c.decisions);
      decisionsTitle.textContent = a ? 'Decisions (this approval round)' : 'Decisions';
      if (changed('decisions', decisions)) renderDecisions(decisions);
      const mine = session ? session.roles : [];
      const canDecide = !!a && a.state === 'pending' && Array.isArray(a.missing_roles) &&
        a.missing_roles.some((r) => mine.includes(r));
      place(decide, canDecide, decisionsBox, decideResult);
      show(decisionsBox, !!a || (Array.isArray(decisions) && decisions.length > 0) ||
        !decideResult.hidden || !decideError.hidden);

      const pr = a && a.state === 'pending' ? a.planned_runbook : null;
      if (changed('plan', pr)) renderPlan(pr);
      show(plan, !!pr);

      const acts = c && Array.isArray(c.actions) ? c.actions : [];
      if (changed('actions', acts)) renderActions(acts);
      show(actions, true);

      show(review, state === 'ops_review' || !reviewResult.hidden || !reviewError.hidden);
      place(reviewPanel, state === 'ops_review', review, reviewResult);

      const tl = c && Array.isArray(c.timeline) ? c.timeline : [];
      if (changed('timeline', tl)) renderTimeline(tl);
      show(timelineBox, true);
    }

    function renderFacts(c, f) {
      const keys = c && Array.isArray(c.idempotency_keys) ? c.idempotency_keys : [];
      fill(facts, dl([
        ['Kind', text(f.kind)],
        ['Ref', el('span', { className: 'mono' }, text(f.ref))],
        ['Provider', f.provider === undefined ? undefined : text(f.provider)],
        ['Amount', fmtAmount(f.amount, f.currency, f.amount_text)],
        ['Tier', text(f.tier)],
        ['Created', c ? timeEl(c.created_at, true) : undefined],
        ['Updated', c ? timeEl(c.updated_at, true) : undefined],
        ['Receipts', c ? el('span', { id: 'case-counts' }, countsText(c)) : undefined],
        ['Idempotency keys', keys.length
          ? el('ul', { id: 'idempotency-keys', className: 'keys' }, keys.map((k) => el('li', { className: 'mono' }, text(k))))
          : '\u2014'],
      ], { className: 'facts case-facts' }));
    }

    function renderAdvice(rec) {
      if (!rec || typeof rec !== 'object') {
        fill(adviceBody, el('p', { className: 'muted' }, 'No AI advice for this case.'));
        return;
      }
      // The usual fields first, then any other plain field the advice has.
      const first = ['root_cause', 'next_step', 'confidence', 'confidence_permille', 'classification', 'source'];
      const keys = first.filter((k) => k in rec)
        .concat(Object.keys(rec).filter((k) => !first.includes(k)))
        .filter((k) => k !== 'summary' && k !== 'advisory');
      const rows = [];
      for (const k of keys) {
        const v = rec[k];
        if (v === undefined || v === null || typeof v === 'object') continue;
        if (k === 'confidence_permille') {
          if ('confidence' in rec) continue;
          const pm = Number(v);
          rows.push(['Confidence', Number.isFinite(pm) ? (pm / 10) + '%' : text(v)]);
        } else {
          const label = k.replace(/_/g, ' ');
          rows.push([label.charAt(0).toUpperCase() + label.slice(1), text(v)]);
        }
      }
      fill(adviceBody,
        el('p', { className: 'summary' }, rec.summary ? String(rec.summary) : '(no summary)'),
        rows.length ? dl(rows) : null,
        jsonDetails('All fields', rec));
    }

    function renderApproval(a) {
      const required = Array.isArray(a.required_roles) ? a.required_roles.map(String) : [];
      const missing = Array.isArray(a.missing_roles) ? a.missing_roles.map(String) : [];
      const decisions = Array.isArray(a.decisions) ? a.decisions : [];
      fill(approvalFacts, dl([
        ['State', badge(a.state, 'approval-state')],
        ['Action', a.action === undefined ? undefined : text(a.action)],
        ['Rule', a.rule === undefined ? undefined : text(a.rule)],
        ['Raised by', a.raised_by === undefined ? undefined : text(a.raised_by)],
        ['Expires at', timeEl(a.expires_at, false, { id: 'expires-at' })],
      ]));
      fill(requiredList, required.length ? required.map((r) => {
        const by = decisions.find((d) => d && d.role === r && d.decision === 'approve');
        const covered = !missing.includes(r);
        return el('li', { className: covered ? 'covered' : 'missing', dataset: { role: r } },
          el('span', { className: 'role' }, r), ' ',
          el('span', { className: 'mark' }, covered ? ('covered' + (by && by.approver ? ' by ' + by.approver : '')) : 'missing'));
      }) : el('li', { className: 'none' }, 'none'));
      fill(missingList, missing.length
        ? missing.map((r) => el('li', { className: 'missing' }, r))
        : el('li', { className: 'none' }, 'none'));
    }

    function renderDecisions(decisions) {
      const list = Array.isArray(decisions) ? decisions.filter((d) => d && typeof d === 'object') : [];
      fill(decisionsList, list.length ? list.map((d) => el('li', { className: 'decision decision-' + cls(d.decision) },
        el('span', { className: 'approver' }, text(d.approver)),
        d.role ? el('span', { className: 'role' }, ' (' + d.role + ')') : null,
        ' ',
        el('span', { className: 'verdict verdict-' + cls(d.decision) }, text(d.decision)),
        d.comment ? [' \u2014 ', el('q', { className: 'comment' }, String(d.comment))] : null,
        ' ',
        timeEl(d.at, false, { className: 'when muted' }))) : el('li', { className: 'none muted' }, 'No decisions yet.'));
    }

    function renderPlan(pr) {
      if (!pr) {
        plan.replaceChildren();
        return;
      }
      const steps = Array.isArray(pr.steps) ? pr.steps : [];
      const notes = Array.isArray(pr.notes) ? pr.notes : [];
      fill(plan,
        el('h2', null, 'Planned runbook', pr.runbook ? [': ', el('span', { className: 'mono' }, String(pr.runbook))] : null),
        el('p', { className: 'muted' }, 'What execute will do once the case is approved.'),
        el('ol', { className: 'steps' }, steps.map((s, i) => el('li', { className: 'step' },
          el('div', { className: 'step-head' },
            el('strong', null, text(s.name)), ' ',
            el('span', { className: 'method' }, text(s.method)), ' ',
            el('span', { className: 'system' }, text(s.system)), ' ',
            el('span', { className: 'mono path' }, text(s.path)),
            s.customer_facing ? [' ', el('span', { className: 'tag customer' }, 'customer-facing')] : null),
          el('div', { className: 'muted' }, 'Idempotency-Key: ', el('span', { className: 'mono' }, text(s.idempotency_key))),
          s.lookup ? el('div', { className: 'muted' }, 'Searches first, creates only if nothing is found: GET ',
            el('span', { className: 'mono' }, text(s.lookup))) : null,
          s.body !== undefined ? jsonDetails('Body', s.body, 'plan-' + i) : null))),
        notes.length ? [el('h3', null, 'Notes'), el('ul', { className: 'notes' }, notes.map((n) => el('li', null, text(n))))] : null);
    }

    function renderActions(acts) {
      const open = openKeys(actions);
      if (!acts.length) {
        fill(actions, el('h2', null, 'Actions'), el('p', { className: 'muted' }, 'No runbook step has run.'));
        return;
      }
      fill(actions, el('h2', null, 'Actions'), el('div', { className: 'table-wrap' }, el('table', { className: 'grid' },
        el('thead', null, el('tr', null, ['Step', 'Status', 'HTTP', 'Idempotency-Key', 'Response'].map((h) => el('th', { scope: 'col' }, h)))),
        el('tbody', null, acts.map((s, i) => el('tr', { className: 'action' },
          el('td', null, text(s.step)),
          el('td', null, el('span', { className: 'badge st-' + cls(s.status) }, text(s.status))),
          el('td', { className: 'num' }, text(s.http_status)),
          el('td', { className: 'mono' }, text(s.idempotency_key)),
          el('td', null, s.response === undefined || s.response === null ? '\u2014' : jsonDetails('Response', s.response, 'act-' + i))))))));
      reopen(actions, open);
    }

    function renderTimeline(tl) {
      const open = openKeys(timeline);
      fill(timeline, tl.length ? tl.map((ev, i) => {
        if (!ev || typeof ev !== 'object') return null;
        const type = ev.type == null ? 'unknown' : String(ev.type);
        const advisory = ev.advisory === true || type === 'triaged';
        const key = 'ev-' + (ev.event_id ? String(ev.event_id) : i);
        return el('li', { className: 'ev ev-' + cls(type) + (advisory ? ' is-advisory' : '') },
          el('div', { className: 'ev-head' },
            timeEl(Number.isFinite(ev.time_ms) ? ev.time_ms : ev.at, true, { className: 'when mono' }),
            ' ',
            el('span', { className: 'ev-type' }, type),
            ev.stage ? [' ', el('span', { className: 'ev-stage muted' }, String(ev.stage))] : null,
            advisory ? [' ', el('span', { className: 'advisory-label' }, 'Advisory')] : null),
          el('div', { className: 'ev-summary' }, ev.summary == null ? '' : String(ev.summary)),
          el('details', { className: 'json', dataset: { key } },
            el('summary', null, 'Detail'),
            dl([
              ['Event', ev.event_id === undefined ? undefined : el('span', { className: 'mono' }, text(ev.event_id))],
              ['Cause', ev.cause === undefined ? undefined : el('span', { className: 'mono' }, text(ev.cause))],
            ]),
            el('pre', null, jsonText(ev.detail === undefined ? null : ev.detail))));
      }) : el('li', { className: 'muted none' }, 'No events yet.'));
      reopen(timeline, open);
    }

    function openKeys(root) {
      const s = new Set();
      for (const d of root.querySelectorAll('details[open]')) if (d.dataset.key) s.add(d.dataset.key);
      return s;
    }
    function reopen(root, keys) {
      if (!keys.size) return;
      for (const d of root.querySelectorAll('details')) if (d.dataset.key && keys.has(d.dataset.key)) d.open = true;
    }

    // A decision: 200 "Recorded: <state>"; a refusal (403 segregation of
    // duties, 409, 404) stays shown until the next decision is tried.
    async function submitDecision(decision) {
      approveBtn.disabled = true;
      denyBtn.disabled = true;
      say(decideResult, '');
      say(decideError, '');
      try {
        const r = await api('POST', '/api/approvals/' + enc + '/decisions', { decision, comment: comment.value });
        if (!p.alive) return;
        say(decideResult, 'Recorded: ' + text(r.data.state));
        comment.value = '';
      } catch (e) {
        if (e instanceof AuthError || !p.alive) return;
        say(decideError, e.message);
      } finally {
        approveBtn.disabled = false;
        denyBtn.disabled = false;
      }
      if (p.alive) load().catch(() => {});
    }
    approveBtn.addEventListener('click', () => submitDecision('approve'));
    denyBtn.addEventListener('click', () => submitDecision('deny'));

    async function submitReview(what) {
      retryBtn.disabled = true;
      closeBtn.disabled = true;
      say(reviewResult, '');
      say(reviewError, '');
      try {
        const r = await api('POST', '/api/reviews/' + enc + '/' + what, { comment: reviewComment.value });
        if (!p.alive) return;
        const st = r.data && r.data.state ? ': ' + r.data.state : '';
        say(reviewResult, (what === 'retry' ? 'Retry requested' : 'Closed') + st);
        reviewComment.value = '';
      } catch (e) {
        if (e instanceof AuthError || !p.alive) return;
        say(reviewError, e.message);
      } finally {
        retryBtn.disabled = false;
        closeBtn.disabled = false;
      }
      if (p.alive) load().catch(() => {});
    }
    retryBtn.addEventListener('click', () => submitReview('retry'));
    closeBtn.addEventListener('click', () => submitReview('close'));

    every(p, CASE_REFRESH_MS, load);
  }

  // ---------------------------------------------------------------- export, print view

  // The export: the case as audit answers GET /cases/{id} (its facts,
  // decisions, actions and whole timeline, each entry with the trail's
  // detail), and the last chain verification, with who exported it when.
  function exportDoc(c, verify) {
    return {
      export: {
        format: 'payguard-case-export/1',
        exported_at: new Date().toISOString(),
        exported_by: session ? session.name : '',
        source: 'GET /cases/' + (c && c.case_id) + ' (audit\u2019s cases API, through the ops console)',
        times: 'UTC (ISO 8601)',
      },
      case: c,
      chain_verification: verify,
    };
  }
  function download(name, content) {
    const url = URL.createObjectURL(new Blob([content], { type: 'application/json' }));
    const a = el('a', { href: url, download: name, hidden: true });
    document.body.appendChild(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 60000);
  }
  function verifyWords(v) {
    if (!v || typeof v !== 'object' || v.state === 'never') return 'Never run (run it on the Audit page).';
    if (v.state === 'running') return 'Running since ' + fmtUtc(v.started_at) + '.';
    if (v.state === 'done' && v.ok === true) {
      return 'OK: ' + plural(Number(v.records) || 0, 'record') + ' and ' + plural(Number(v.checkpoints) || 0, 'signed checkpoint') +
        ' verified at ' + fmtUtc(v.finished_at) + (v.by ? ' (run by ' + v.by + ')' : '') + '.';
    }
    return 'FAILED: ' + (v.problem ? String(v.problem) : 'no reason given') + (v.finished_at ? ' (' + fmtUtc(v.finished_at) + ')' : '');
  }
  function gridOf(id, heads, rows, empty) {
    return el('table', { id, className: 'grid print-grid' },
      el('thead', null, el('tr', null, heads.map((h) => el('th', { scope: 'col' }, h)))),
      el('tbody', null, rows.length ? rows.map((r) => el('tr', null, r.map((v) => el('td', null, v))))
        : el('tr', { className: 'empty' }, el('td', { colspan: String(heads.length) }, empty))));
  }

  // /case/<id>?view=print: what an auditor asks for, on paper: the case's
  // facts, decisions, actions and timeline, all times in UTC, and the last
  // chain verification.
  function pagePrint(caseId) {
    const p = startPage('Case ' + caseId + ' \u2014 printable record');
    const enc = encodeURIComponent(caseId);
    const body = el('div', { id: 'print-body', className: 'print' }, el('p', { className: 'muted' }, 'Loading\u2026'));
    const printBtn = el('button', { id: 'print', type: 'button' }, 'Print');
    printBtn.addEventListener('click', () => window.print());
    fill(main(), el('p', { className: 'crumbs no-print' }, el('a', { href: caseHref(caseId) }, '\u2190 Case ' + caseId), ' ', printBtn), body);
    (async () => {
      const [cr, vr] = await Promise.allSettled([api('GET', '/api/cases/' + enc), api('GET', '/api/audit/verify')]);
      if (!p.alive || (cr.status === 'rejected' && cr.reason instanceof AuthError)) return;
      if (cr.status === 'rejected') {
        fill(body, el('p', { id: 'print-error', className: 'error', role: 'alert' },
          cr.reason.status === 404 ? 'No such case' : cr.reason.message));
        return;
      }
      renderPrint(body, cr.value.data, vr.status === 'fulfilled' ? vr.value.data : null);
    })();
  }
  function renderPrint(body, c, v) {
    const decisions = Array.isArray(c.decisions) ? c.decisions.filter((d) => d && typeof d === 'object') : [];
    const acts = Array.isArray(c.actions) ? c.actions.filter((a) => a && typeof a === 'object') : [];
    const tl = Array.isArray(c.timeline) ? c.timeline.filter((e) => e && typeof e === 'object') : [];
    fill(body,
      el('h1', null, 'Case ', el('span', { id: 'print-case-id', className: 'mono' }, text(c.case_id)), ' ', badge(c.state, 'print-state')),
      el('p', { className: 'muted' }, 'From payguard\u2019s audit trail (case index), printed ' + fmtUtc(Date.now()) +
        (session ? ' by ' + session.name : '') + '. All times are UTC.'),
      el('h2', null, 'Facts'),
      dl([
        ['Kind', text(c.kind)], ['Ref', text(c.ref)], ['Provider', text(c.provider)],
        ['Amount', fmtAmount(c.amount, c.currency, c.amount_text)], ['Tier', text(c.tier)],
        ['Created', fmtUtc(c.created_at, true)], ['Updated', fmtUtc(c.updated_at, true)], ['Receipts', countsText(c)],
        ['Idempotency keys', Array.isArray(c.idempotency_keys) && c.idempotency_keys.length ? c.idempotency_keys.join(', ') : '\u2014'],
      ], { id: 'print-facts', className: 'facts' }),
      el('h2', null, 'Decisions'),
      gridOf('print-decisions', ['Time (UTC)', 'Approver', 'Role', 'Decision', 'Comment'],
        decisions.map((d) => [fmtUtc(d.at), text(d.approver), text(d.role), text(d.decision), d.comment ? String(d.comment) : '\u2014']),
        'No decisions.'),
      el('h2', null, 'Actions'),
      gridOf('print-actions', ['Step', 'Status', 'HTTP', 'Idempotency-Key'],
        acts.map((a) => [text(a.step), text(a.status), text(a.http_status), text(a.idempotency_key)]), 'No runbook step ran.'),
      el('h2', null, 'Timeline'),
      gridOf('print-timeline', ['Time (UTC)', 'Event', 'Stage', 'What happened', 'Event id'],
        tl.map((e) => [fmtUtc(Number.isFinite(e.time_ms) ? e.time_ms : e.at, true), text(e.type) + (e.advisory ? ' (advisory)' : ''), text(e.stage),
          text(e.summary), el('span', { className: 'mono' }, text(e.event_id))]), 'No events.'),
      el('h2', null, 'Chain verification'),
      el('p', { id: 'print-chain' }, verifyWords(v)));
  }

  // ---------------------------------------------------------------- ops review

  function pageOps() {
    const p = startPage('Ops review');
    const err = el('p', { id: 'ops-error', className: 'error', role: 'alert', hidden: true });
    const status = el('p', { id: 'ops-status', className: 'muted' });
    const tbody = el('tbody');
    const table = el('table', { id: 'ops', className: 'grid' },
      el('thead', null, el('tr', null,
        ['Case', 'Queue', 'State', 'Kind', 'Ref', 'Amount', 'Why', 'Since'].map((h) =>
          el('th', { scope: 'col', className: h === 'Kind' || h === 'Ref' ? 'opt' : '' }, h)))),
      tbody);
    fill(main(), el('h1', null, 'Ops review'),
      el('p', { className: 'muted' }, 'Cases whose runbook failed (retry or close them on the case page) and approvals that expired unanswered.'),
      status, err, el('div', { className: 'table-wrap' }, table));

    let seq = 0;
    let shown = 0;
    async function load() {
      const my = ++seq;
      const [cr, ar] = await Promise.allSettled([
        api('GET', '/api/cases?state=ops_review'),
        api('GET', '/api/approvals?status=expired'),
      ]);
      if (!p.alive || my < shown) return;
      if ((cr.status === 'rejected' && cr.reason instanceof AuthError) ||
          (ar.status === 'rejected' && ar.reason instanceof AuthError)) return;
      shown = my;
      const problems = [];
      if (cr.status === 'rejected') problems.push('Cases in ops review: ' + cr.reason.message);
      if (ar.status === 'rejected') problems.push('Expired approvals: ' + ar.reason.message);
      say(err, problems.join('; '));

      const rows = new Map();
      const cases = cr.status === 'fulfilled' && Array.isArray(cr.value.data.cases) ? cr.value.data.cases : [];
      for (const c of cases) {
        if (!c || c.case_id == null) continue;
        const last = c.last && typeof c.last === 'object' ? c.last : null;
        rows.set(String(c.case_id), {
          id: String(c.case_id), queues: ['ops review'], state: c.state, kind: c.kind, ref: c.ref,
          amount: fmtAmount(c.amount, c.currency, c.amount_text),
          why: [last && last.summary ? String(last.summary) : 'in ops review'],
          since: (last && last.at) || c.updated_at || c.created_at,
        });
      }
      const approvals = ar.status === 'fulfilled' && Array.isArray(ar.value.data.approvals) ? ar.value.data.approvals : [];
      for (const a of approvals) {
        if (!a || a.case_id == null) continue;
        const id = String(a.case_id);
        const reason = a.reason || a.rule;
        const why = 'approval expired' + (a.expires_at ? ' at ' + fmtTime(a.expires_at) : '') +
          (reason ? ' (' + (a.reason ? '' : 'rule: ') + reason + ')' : '') +
          (Array.isArray(a.missing_roles) && a.missing_roles.length ? '; missing ' + a.missing_roles.join(', ') : '');
        const row = rows.get(id);
        if (row) {
          row.queues.push('expired approval');
          row.why.push(why);
        } else {
          rows.set(id, {
            id, queues: ['expired approval'], state: a.state, kind: a.kind, ref: a.ref,
            amount: fmtAmount(a.amount, a.currency, a.amount_text), why: [why], since: a.expires_at,
          });
        }
      }
      const list = Array.from(rows.values());
      if (cr.status === 'fulfilled' && ar.status === 'fulfilled') showOpsCount(list.length);
      fill(tbody, list.length ? list.map((r) => el('tr', { dataset: { caseId: r.id } },
        el('td', { className: 'mono' }, caseLink(r.id)),
        el('td', null, r.queues.join(', ')),
        el('td', null, badge(r.state)),
        el('td', { className: 'opt' }, text(r.kind)),
        el('td', { className: 'mono opt' }, text(r.ref)),
        el('td', { className: 'num' }, r.amount),
        el('td', { className: 'why' }, r.why.join('; ')),
        el('td', { title: bothTimes(r.since) }, fmtAge(r.since)))) : el('tr', { className: 'empty' }, el('td', { colspan: '8' }, 'Nothing waits for ops review.')));
      status.textContent = plural(list.length, 'case') + ' \u00b7 updated ' + fmtClock();
    }
    every(p, LIST_REFRESH_MS, load);
  }

  // ---------------------------------------------------------------- audit

  function pageAudit() {
    const p = startPage('Audit');
    const statusEl = el('p', { id: 'verify-status', className: 'verify-status' }, '\u2026');
    const detail = el('div', { id: 'verify-detail' });
    const btn = el('button', { id: 'verify', type: 'button' }, 'Verify the chain now');
    const err = el('p', { id: 'verify-error', className: 'error', role: 'alert', hidden: true });
    fill(main(), el('h1', null, 'Audit trail'),
      el('section', { className: 'box' },
        el('h2', null, 'Last verification of the chain'),
        el('p', { className: 'muted' }, 'Recomputes the hash chain of every trail record and checks every signed checkpoint.'),
        statusEl, detail, el('div', { className: 'buttons' }, btn), err));

    let polling = false;
    function show(v) {
      const st = v.state;
      let t;
      let c = '';
      if (st === 'never') t = 'never run';
      else if (st === 'running') t = 'running\u2026';
      else if (st === 'done' && v.ok === true) {
        t = 'OK: ' + plural(Number(v.records) || 0, 'record') + ', ' + plural(Number(v.checkpoints) || 0, 'checkpoint') +
          ', verified at ' + fmtTime(v.finished_at, true);
        c = 'ok';
      } else if (st === 'done') {
        t = 'FAILED: ' + (v.problem ? String(v.problem) : 'no reason given');
        c = 'bad';
      } else t = 'unknown state: ' + text(st);
      statusEl.textContent = t;
      statusEl.className = 'verify-status' + (c ? ' ' + c : '') + (st === 'running' ? ' running' : '');
      fill(detail, st === 'never' ? null : dl([
        ['Started', timeEl(v.started_at, true)],
        ['Finished', st === 'running' ? '\u2014' : timeEl(v.finished_at, true)],
        ['Records', text(v.records)],
        ['Checkpoints', text(v.checkpoints)],
        ['Last checkpoint seq', text(v.last_checkpoint_seq)],
        ['Records after the last checkpoint', text(v.unsealed)],
        ['Problem', v.problem ? String(v.problem) : '\u2014'],
        ['Run by', text(v.by)],
      ]));
      btn.disabled = st === 'running';
    }
    async function poll() {
      if (polling || !p.alive) return;
      polling = true;
      try {
        for (;;) {
          let r;
          try {
            r = await api('GET', '/api/audit/verify');
          } catch (e) {
            if (e instanceof AuthError || !p.alive) return;
            say(err, e.message);
            btn.disabled = false;
            return;
          }
          if (!p.alive) return;
          say(err, '');
          show(r.data);
          if (r.data.state !== 'running') return;
          await new Promise((res) => later(p, res, VERIFY_POLL_MS));
          if (!p.alive) return;
        }
      } finally {
        polling = false;
      }
    }
    btn.addEventListener('click', async () => {
      btn.disabled = true;
      say(err, '');
      try {
        const r = await api('POST', '/api/audit/verify', {});
        if (!p.alive) return;
        show(Object.assign({ state: 'running' }, r.data));
      } catch (e) {
        if (e instanceof AuthError || !p.alive) return;
        say(err, e.message);
        btn.disabled = false;
        return;
      }
      later(p, poll, VERIFY_POLL_MS);
    });
    poll();
  }

  // ---------------------------------------------------------------- pipeline

  // The Pipeline page is pipeline.js's (window.payguardPipeline), loaded with
  // its stylesheet the first time it is shown; it gets this page's lifecycle
  // and the helpers it shares.
  let pipelineLoad = null;
  function loadPipeline() {
    if (!pipelineLoad) {
      pipelineLoad = new Promise((resolve) => {
        document.head.appendChild(el('link', { rel: 'stylesheet', href: '/static/pipeline.css' }));
        const s = el('script', { src: '/static/pipeline.js' });
        s.addEventListener('load', () => resolve(typeof window.payguardPipeline === 'function'));
        s.addEventListener('error', () => resolve(false));
        document.head.appendChild(s);
      });
    }
    return pipelineLoad;
  }
  async function pagePipeline() {
    const p = startPage('Pipeline');
    fill(main(), el('p', { className: 'muted' }, 'Loading\u2026'));
    const loaded = await loadPipeline();
    if (!p.alive) return;
    if (!loaded) {
      pipelineLoad = null; // the next visit tries again
      fill(main(), el('p', { className: 'error', role: 'alert' }, 'The Pipeline page did not load (/static/pipeline.js).'));
      return;
    }
    window.payguardPipeline({ page: p, main: main(), el, fill, api, every, AuthError });
  }

  // ---------------------------------------------------------------- start

  function start() {
    document.addEventListener('click', (ev) => {
      if (ev.defaultPrevented || ev.button !== 0 || ev.metaKey || ev.ctrlKey || ev.shiftKey || ev.altKey) return;
      const a = ev.target instanceof Element ? ev.target.closest('a[href]') : null;
      if (!a || a.target || a.hasAttribute('download')) return;
      const url = new URL(a.href, location.href);
      if (url.origin !== location.origin || url.pathname.startsWith('/static/') || url.pathname.startsWith('/api/')) return;
      ev.preventDefault();
      navigate(url.pathname + url.search, false);
    });
    window.addEventListener('popstate', () => route());
    document.getElementById('signout').addEventListener('click', signOut);
    document.getElementById('find-form').addEventListener('submit', (ev) => {
      ev.preventDefault();
      findCase(document.getElementById('find').value);
    });
    route();
  }

  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', start);
  else start();
})();
