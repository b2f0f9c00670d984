// The ops console in a real browser (headless Chromium through playwright-core).
//
// Environment (set by the shell script that starts the group):
//   CONSOLE_URL   e.g. http://127.0.0.1:8083
//   TOKEN_FIN     fin_mgr (finance_manager)
//   TOKEN_COMP    compliance_officer (compliance)
//   TOKEN_RISK    risk_lead (finance_manager and compliance)
//   CASE_APPROVE, CASE_DENY, CASE_TWICE, CASE_XSS
//                 tier-2 payout cases awaiting approval (finance_manager + compliance)
//   CASE_REFUND   refund-rf_123 (executed), found by REFUND_ID, PAYMENT_ID, WEBHOOK_ID
//   PSP_EVENT_ID  a Stripe event id of CASE_TWICE
//   RECEIPT_ID    a receipt id of CASE_APPROVE
//   TICKET_KEY    the ticket key of CASE_TICKET (a failed runbook's ticket)
//   ARTIFACTS     where screenshots go
//   CHROMIUM      the browser (default /usr/bin/chromium)
//
// Prints "ok - <what>" or "not ok - <what>: <why>" per check and ends with
// "N passed, N failed"; exits 1 if any check failed. Each scenario runs in a
// fresh browser context (clean sessionStorage); a failed step ends its
// scenario, the next one still runs.
import { readFileSync } from 'node:fs';
import { STEP_MS, assert, check, finish, notOk, scenario, screenshot, start } from './lib.mjs';

const EXECUTED_MS = 90_000;
const DENIED_MS = 30_000;
const VERIFY_MS = 30_000;

const env = process.env;
const BASE = (env.CONSOLE_URL || '').replace(/\/+$/, '');

function url(p) {
  return BASE + p;
}
function casePath(id) {
  return '/case/' + encodeURIComponent(id);
}
// A CSS attribute value in double quotes.
function cssString(s) {
  return '"' + String(s).replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\a ') + '"';
}

async function texts(page, selector) {
  return page.$$eval(selector, (els) => els.map((e) => e.textContent.trim()));
}

// Wait until the <li>s of a list satisfy pred (checked in the page).
async function waitForList(page, selector, want, timeout = STEP_MS) {
  try {
    await page.waitForFunction(({ selector, want }) => {
      const items = Array.from(document.querySelectorAll(selector)).map((e) => e.textContent.trim());
      return want.has.every((x) => items.includes(x)) && want.not.every((x) => !items.includes(x));
    }, { selector, want }, { timeout });
  } catch (e) {
    const items = await texts(page, selector).catch(() => []);
    throw new Error(`${selector} is [${items.join(', ')}], wanted ${JSON.stringify(want)}`);
  }
}

async function waitForText(page, selector, wanted, timeout) {
  try {
    await page.waitForFunction(({ selector, wanted }) => {
      const e = document.querySelector(selector);
      return !!e && e.textContent.trim() === wanted;
    }, { selector, wanted }, { timeout });
  } catch (e) {
    const got = await page.textContent(selector, { timeout: 1000 }).catch(() => null);
    throw new Error(`${selector} is ${JSON.stringify(got && got.trim())} after ${timeout / 1000} s, wanted ${JSON.stringify(wanted)}`);
  }
}

async function signIn(page, token) {
  await page.waitForSelector('#token', { state: 'visible' });
  await page.fill('#token', token);
  await page.click('#signin');
  await page.waitForSelector('#whoami', { state: 'visible' });
  await page.waitForFunction(() => document.getElementById('whoami').textContent.trim() !== '');
  return (await page.textContent('#whoami')).trim();
}

async function openCase(page, id) {
  await page.goto(url(casePath(id)));
  await page.waitForFunction((id) => {
    const e = document.getElementById('case-id');
    return !!e && e.textContent.trim() === id;
  }, id);
}

async function main() {
  const need = ['CONSOLE_URL', 'TOKEN_FIN', 'TOKEN_COMP', 'TOKEN_RISK', 'CASE_APPROVE', 'CASE_DENY', 'CASE_TWICE', 'CASE_XSS',
    'CASE_REFUND', 'REFUND_ID', 'PAYMENT_ID', 'WEBHOOK_ID', 'PSP_EVENT_ID', 'RECEIPT_ID', 'TICKET_KEY', 'CASE_TICKET'];
  const browser = await start(need);
  if (!browser) return;

  try {
    // 1. A bogus token is refused; the form stays.
    await scenario(browser, 'sign-in refusal', async (page) => {
      await check('sign-in page loads with the token form', async () => {
        await page.goto(url('/signin'));
        await page.waitForSelector('#token', { state: 'visible' });
        await page.waitForSelector('#signin', { state: 'visible' });
        const type = await page.getAttribute('#token', 'type');
        assert(type === 'password', `#token is type ${type}`);
      });
      await check('a bogus token is refused with a visible error', async () => {
        await page.fill('#token', 'bogus-' + Date.now());
        await page.click('#signin');
        const err = page.locator('.error[role="alert"]').filter({ hasText: /\S/ }).first();
        await err.waitFor({ state: 'visible' });
        const t = (await err.textContent()).trim();
        assert(t.length > 0, 'empty error');
      });
      await check('the sign-in form stays and nobody is signed in', async () => {
        assert(await page.isVisible('#token'), '#token is gone');
        assert(!(await page.isVisible('#whoami')), '#whoami is visible');
        const stored = await page.evaluate(() => [sessionStorage.length, localStorage.length, document.cookie]);
        assert(stored[0] === 0 && stored[1] === 0 && stored[2] === '', `storage holds something: ${JSON.stringify(stored)}`);
      });
    });

    // 2. Two approvals (finance_manager, then compliance) and the case executes.
    await scenario(browser, 'approve path', async (page) => {
      const id = env.CASE_APPROVE;
      const row = `#cases tr[data-case-id=${cssString(id)}]`;
      await check('fin_mgr signs in', async () => {
        await page.goto(url('/'));
        const who = await signIn(page, env.TOKEN_FIN);
        assert(who.includes('fin_mgr'), `#whoami is ${JSON.stringify(who)}`);
        assert(who.includes('finance_manager'), `#whoami has no role: ${JSON.stringify(who)}`);
      });
      await check('the token is in sessionStorage only', async () => {
        const s = await page.evaluate(() => ({
          session: Object.keys(sessionStorage).map((k) => sessionStorage.getItem(k)),
          local: localStorage.length,
          cookie: document.cookie,
          href: location.href,
        }));
        assert(s.session.includes(env.TOKEN_FIN), 'not in sessionStorage');
        assert(s.local === 0, 'localStorage is used');
        assert(s.cookie === '', 'a cookie is set');
        assert(!s.href.includes(env.TOKEN_FIN), 'the token is in the URL');
      });
      await check('the list filtered on awaiting_approval shows the case', async () => {
        await page.waitForSelector('#cases');
        await page.selectOption('#f-state', 'awaiting_approval');
        await page.waitForURL((u) => u.searchParams.get('state') === 'awaiting_approval');
        await page.waitForSelector(row);
        // the unfiltered rows stay on the page until the filtered list arrives: wait for it
        await page.waitForFunction(() => [...document.querySelectorAll('#cases tr[data-case-id] .badge')]
          .every((b) => b.textContent.trim() === 'awaiting_approval'), null, { timeout: 5000 }).catch(() => {});
        const states = await page.$$eval('#cases tr[data-case-id]', (trs) =>
          trs.map((tr) => tr.querySelector('.badge') && tr.querySelector('.badge').textContent.trim()));
        assert(states.length > 0 && states.every((s) => s === 'awaiting_approval'), `rows in other states: ${states.join(', ')}`);
      });
      await check('screenshot console-list.png', () => screenshot(page, 'console-list.png'));
      await check('the case link opens the case page', async () => {
        await page.click(`${row} a`);
        await page.waitForURL((u) => u.pathname === casePath(id));
        await waitForText(page, '#case-id', id, STEP_MS);
        await waitForText(page, '#case-state', 'awaiting_approval', STEP_MS);
      });
      await check('missing roles are finance_manager and compliance', () =>
        waitForList(page, '#missing-roles li', { has: ['finance_manager', 'compliance'], not: [] }));
      await check('the planned runbook is shown', async () => {
        await page.waitForSelector('#plan li');
        const n = await page.$$eval('#plan li', (l) => l.length);
        assert(n > 0, 'no step');
      });
      await check('the advice is labelled advisory', async () => {
        const t = await page.textContent('#advice .advisory');
        assert(/Advisory/.test(t), `label is ${JSON.stringify(t)}`);
      });
      await check('fin_mgr approves: Recorded', async () => {
        await page.waitForSelector('#decide', { state: 'visible' });
        await page.fill('#comment', 'amounts match the ledger (browser test)');
        await page.click('#approve');
        await page.waitForSelector('#decide-result', { state: 'visible' });
        const t = (await page.textContent('#decide-result')).trim();
        assert(t.startsWith('Recorded:'), `#decide-result is ${JSON.stringify(t)}`);
      });
      await check('missing roles are now compliance only', () =>
        waitForList(page, '#missing-roles li', { has: ['compliance'], not: ['finance_manager'] }));
      await check('the decision panel is gone for fin_mgr', () => page.waitForSelector('#decide', { state: 'hidden' }));
      await check('decisions list fin_mgr approve', async () => {
        await page.waitForFunction(() => Array.from(document.querySelectorAll('#decisions li'))
          .some((li) => li.textContent.includes('fin_mgr') && li.textContent.includes('approve')));
      });
      await check('screenshot console-case.png', () => screenshot(page, 'console-case.png'));
      await check('sign out clears the token', async () => {
        await page.click('#signout');
        await page.waitForSelector('#token', { state: 'visible' });
        const n = await page.evaluate(() => sessionStorage.length);
        assert(n === 0, 'sessionStorage still holds the token');
      });
      await check('compliance_officer signs in', async () => {
        const who = await signIn(page, env.TOKEN_COMP);
        assert(who.includes('compliance_officer'), `#whoami is ${JSON.stringify(who)}`);
      });
      await check('compliance_officer approves: Recorded', async () => {
        await openCase(page, id);
        await page.waitForSelector('#decide', { state: 'visible' });
        await page.fill('#comment', 'compliance checks pass (browser test)');
        await page.click('#approve');
        await page.waitForSelector('#decide-result', { state: 'visible' });
        const t = (await page.textContent('#decide-result')).trim();
        assert(t.startsWith('Recorded:'), `#decide-result is ${JSON.stringify(t)}`);
      });
      await check('the case reaches executed', () => waitForText(page, '#case-state', 'executed', EXECUTED_MS));
      await check('screenshot console-case-executed.png', () => screenshot(page, 'console-case-executed.png'));
    });

    // 3. A deny denies.
    await scenario(browser, 'deny path', async (page) => {
      const id = env.CASE_DENY;
      await check('compliance_officer signs in on the case page', async () => {
        await page.goto(url(casePath(id)));
        await signIn(page, env.TOKEN_COMP);
        await waitForText(page, '#case-id', id, STEP_MS);
      });
      await check('compliance_officer denies: Recorded', async () => {
        await page.waitForSelector('#decide', { state: 'visible' });
        await page.fill('#comment', 'beneficiary fails screening (browser test)');
        await page.click('#deny');
        await page.waitForSelector('#decide-result', { state: 'visible' });
      });
      await check('the case becomes denied', () => waitForText(page, '#case-state', 'denied', DENIED_MS));
      await check('decisions list compliance_officer deny', async () => {
        try {
          await page.waitForFunction(() => Array.from(document.querySelectorAll('#decisions li'))
            .some((li) => li.textContent.includes('compliance_officer') && li.textContent.includes('deny')));
        } catch (e) {
          throw new Error(`#decisions is [${(await texts(page, '#decisions li')).join(' | ')}]`);
        }
      });
    });

    // 4. One person holding two roles approves once; a second approval is refused.
    await scenario(browser, 'refused second approval', async (page) => {
      const id = env.CASE_TWICE;
      await check('risk_lead signs in', async () => {
        await page.goto(url('/'));
        const who = await signIn(page, env.TOKEN_RISK);
        assert(who.includes('risk_lead'), `#whoami is ${JSON.stringify(who)}`);
      });
      await check('risk_lead approves once: Recorded', async () => {
        await openCase(page, id);
        await page.waitForSelector('#decide', { state: 'visible' });
        await page.fill('#comment', 'first approval (browser test)');
        await page.click('#approve');
        await page.waitForSelector('#decide-result', { state: 'visible' });
        const t = (await page.textContent('#decide-result')).trim();
        assert(t.startsWith('Recorded:'), `#decide-result is ${JSON.stringify(t)}`);
      });
      await check('one role is still missing and the panel is still shown', async () => {
        await page.waitForFunction(() => document.querySelectorAll('#missing-roles li:not(.none)').length === 1);
        await page.waitForSelector('#decide', { state: 'visible' });
      });
      await check('a second approval is refused with the reason shown', async () => {
        await page.fill('#comment', 'second approval (browser test)');
        await page.click('#approve');
        await page.waitForSelector('#decide-error', { state: 'visible' });
        const t = (await page.textContent('#decide-error')).trim();
        assert(/already/i.test(t), `#decide-error is ${JSON.stringify(t)}`);
        const c = await page.getAttribute('#decide-error', 'class');
        assert(/\brefusal\b/.test(c || ''), `#decide-error class is ${JSON.stringify(c)}`);
      });
      await check('the refusal stays through an auto-refresh', async () => {
        await page.waitForTimeout(2500);
        assert(await page.isVisible('#decide-error'), 'the refusal is gone');
        assert(/already/i.test(await page.textContent('#decide-error')), 'the refusal text changed');
      });
      await check('the case is still awaiting_approval', () => waitForText(page, '#case-state', 'awaiting_approval', STEP_MS));
    });

    // 5. Text from a webhook is text.
    await scenario(browser, 'xss', async (page) => {
      const id = env.CASE_XSS;
      await check('fin_mgr opens the case', async () => {
        await page.goto(url(casePath(id)));
        await signIn(page, env.TOKEN_FIN);
        await waitForText(page, '#case-id', id, STEP_MS);
        await page.waitForSelector('#timeline li');
      });
      await check('the timeline shows the literal text <script>', async () => {
        try {
          await page.waitForFunction(() => {
            const t = document.getElementById('timeline');
            return !!t && t.textContent.includes('<script>');
          });
        } catch (e) {
          throw new Error('no "<script>" text in #timeline');
        }
      });
      await check('the payload did not run', async () => {
        await page.waitForTimeout(500);
        const v = await page.evaluate(() => typeof window.__pgxss);
        assert(v === 'undefined', `window.__pgxss is ${v}`);
      });
      await check('the only <script> is /static/app.js', async () => {
        const srcs = await page.$$eval('script', (s) => s.map((e) => e.getAttribute('src') || '(inline)'));
        assert(srcs.length === 1 && srcs[0] === '/static/app.js', `scripts: ${srcs.join(', ')}`);
      });
    });

    // 6. The audit chain verifies.
    await scenario(browser, 'audit', async (page) => {
      let before = '';
      await check('the audit page shows the last verification', async () => {
        await page.goto(url('/audit'));
        await signIn(page, env.TOKEN_FIN);
        await page.waitForSelector('#verify-status');
        await page.waitForFunction(() => {
          const e = document.getElementById('verify-status');
          return !!e && /^(never run|running|OK|FAILED)/.test(e.textContent.trim());
        });
        before = (await page.textContent('#verify-status')).trim();
      });
      await check('verify: the chain is OK', async () => {
        await page.waitForSelector('#verify:not([disabled])');
        await page.click('#verify');
        try {
          await page.waitForFunction((before) => {
            const e = document.getElementById('verify-status');
            if (!e || !e.classList.contains('ok')) return false;
            const t = e.textContent.trim();
            return t.startsWith('OK') && t !== before;
          }, before, { timeout: VERIFY_MS });
        } catch (e) {
          const t = await page.textContent('#verify-status').catch(() => '?');
          const err = await page.textContent('#verify-error').catch(() => '');
          throw new Error(`#verify-status is ${JSON.stringify(t && t.trim())}${err ? ' (' + err.trim() + ')' : ''}`);
        }
      });
    });

    // 7. The search box finds a case by each kind of id it is known by.
    await scenario(browser, 'find', async (page) => {
      await check('fin_mgr signs in; the search box is in the navigation', async () => {
        await page.goto(url('/'));
        await signIn(page, env.TOKEN_FIN);
        await page.waitForSelector('#find', { state: 'visible' });
      });
      const finds = [
        ['case id', env.CASE_DENY, env.CASE_DENY],
        ['payout id', env.CASE_XSS.replace(/^payout-/, ''), env.CASE_XSS],
        ['refund id', env.REFUND_ID, env.CASE_REFUND],
        ['payment id', env.PAYMENT_ID, env.CASE_REFUND],
        ['PSP event id', env.PSP_EVENT_ID, env.CASE_TWICE],
        ['webhook id', env.WEBHOOK_ID, env.CASE_REFUND],
        ['receipt id', env.RECEIPT_ID, env.CASE_APPROVE],
        ['ticket key', env.TICKET_KEY, env.CASE_TICKET],
      ];
      for (const [kind, q, id] of finds) {
        await check(`find by ${kind} (${q}) opens ${id}`, async () => {
          await page.fill('#find', q);
          await page.press('#find', 'Enter');
          await page.waitForURL((u) => u.pathname === casePath(id));
          await waitForText(page, '#case-id', id, STEP_MS);
        });
      }
      await check('several matches are listed, each with what it matched', async () => {
        await page.fill('#find', 'evt_P-');
        await page.press('#find', 'Enter');
        await page.waitForURL((u) => u.pathname === '/' && u.searchParams.get('q') === 'evt_P-');
        await page.waitForFunction(() => document.querySelectorAll('#cases tr[data-case-id]').length >= 5);
        const m = await texts(page, '#cases tr[data-case-id] .matched');
        assert(m.length >= 5 && m.every((t) => t.startsWith('by PSP event id evt_P-')), `matched: ${m.join(' | ')}`);
        await page.waitForFunction(() => /found by ids beginning with/.test(document.getElementById('find-status').textContent));
      });
      await check('none says so', async () => {
        await page.fill('#find', 'evt_no_such_event');
        await page.press('#find', 'Enter');
        await page.waitForFunction(() => /^No case matches/.test(document.getElementById('find-status').textContent.trim()));
      });
      await check('screenshot console-find.png', () => screenshot(page, 'console-find.png'));
    });

    // 8. Readable lists, the ops-review count, times in the viewer's zone
    // (here Asia/Tokyo, UTC+9) with UTC on hover.
    await scenario(browser, 'readable lists', async (page) => {
      await check('the list loads', async () => {
        await page.goto(url('/'));
        await signIn(page, env.TOKEN_FIN);
        await page.waitForSelector(`#cases tr[data-case-id=${cssString(env.CASE_XSS)}]`);
      });
      await check('the Last column is in plain words', async () => {
        const row = (id) => `#cases tr[data-case-id=${cssString(id)}] .last-words`;
        await waitForText(page, row(env.CASE_XSS), 'Waiting for finance manager and compliance', STEP_MS);
        const all = await texts(page, '#cases tr[data-case-id] .last-words');
        const raw = all.filter((t) => /^step |->|attempt\(s\)|^[a-z_]+$/.test(t));
        assert(all.length > 0 && raw.length === 0, `not plain: ${raw.join(' | ')}`);
        const closed = (await page.textContent(row(env.CASE_TICKET))).trim();
        assert(/^Closed\b/.test(closed), `${env.CASE_TICKET}: ${JSON.stringify(closed)}`);
      });
      await check('the navigation shows the ops-review count', async () => {
        await page.waitForSelector('#nav-ops-count', { state: 'visible' });
        const n = (await page.textContent('#nav-ops-count')).trim();
        assert(/^\d+$/.test(n), `#nav-ops-count is ${JSON.stringify(n)}`);
      });
      await check('times in the viewer\u2019s zone, UTC on hover', async () => {
        await openCase(page, env.CASE_APPROVE);
        await page.waitForSelector('#timeline time');
        const t = await page.$eval('#timeline time', (e) => ({ text: e.textContent.trim(), title: e.title, iso: e.getAttribute('datetime') }));
        assert(/ UTC$/.test(t.title) && !/UTC$/.test(t.text), JSON.stringify(t));
        const local = new Date(new Date(t.iso).getTime() + 9 * 3600e3).toISOString().replace('T', ' ').slice(0, 19);
        assert(t.text.startsWith(local), `${t.text} is not ${local} (UTC+9)`);
      });
    }, { timezoneId: 'Asia/Tokyo' });

    // 9. A phone-sized screen: no sideways scrolling, the search box there.
    await scenario(browser, 'phone', async (page) => {
      const fits = async (what) => {
        const w = await page.evaluate(() => document.documentElement.scrollWidth);
        assert(w <= 376, `${what} is ${w} px wide`);
      };
      await check('the list fits 375 px, the search box shown', async () => {
        await page.goto(url('/'));
        await signIn(page, env.TOKEN_FIN);
        await page.waitForSelector('#cases tr[data-case-id]');
        await page.waitForSelector('#find', { state: 'visible' });
        await fits('the list');
      });
      await check('screenshot console-phone-list.png', () => screenshot(page, 'console-phone-list.png'));
      await check('a case page fits 375 px', async () => {
        await openCase(page, env.CASE_APPROVE);
        await page.waitForSelector('#timeline li');
        await fits('the case page');
      });
      await check('screenshot console-phone-case.png', () => screenshot(page, 'console-phone-case.png'));
      await check('the ops-review list fits 375 px without scrolling sideways', async () => {
        await page.click('a[href="/ops"]');
        await page.waitForFunction(() => /updated/.test(document.querySelector('#ops-status')?.textContent || ''));
        await fits('the ops-review page');
        const t = await page.$eval('#ops', (e) => ({ w: e.scrollWidth, room: e.parentElement.clientWidth }));
        assert(t.w <= t.room, `the ops table is ${t.w} px in ${t.room}`);
      });
    }, { viewport: { width: 375, height: 740 }, isMobile: true, hasTouch: true });

    // 10. Export: the case as JSON, and its printable record.
    await scenario(browser, 'export', async (page) => {
      const id = env.CASE_APPROVE;
      await check('fin_mgr opens an executed case', async () => {
        await page.goto(url(casePath(id)));
        await signIn(page, env.TOKEN_FIN);
        await waitForText(page, '#case-state', 'executed', STEP_MS);
      });
      await check('Export JSON downloads the timeline and the decisions', async () => {
        const [dl] = await Promise.all([page.waitForEvent('download'), page.click('#export-json')]);
        assert(/^payguard-case-.*\.json$/.test(dl.suggestedFilename()), dl.suggestedFilename());
        const doc = JSON.parse(readFileSync(await dl.path(), 'utf8'));
        assert(doc.case && doc.case.case_id === id, 'case_id ' + (doc.case && doc.case.case_id));
        const who = (doc.case.decisions || []).map((d) => d.approver + ':' + d.decision);
        assert(who.includes('fin_mgr:approve') && who.includes('compliance_officer:approve'), 'decisions ' + who.join(', '));
        assert(Array.isArray(doc.case.timeline) && doc.case.timeline.some((e) => e.type === 'executed'), 'no executed entry');
        assert(doc.export && doc.export.exported_by === 'fin_mgr' && doc.chain_verification, JSON.stringify(doc.export));
      });
      await check('the printable record: facts, decisions, timeline in UTC, the chain', async () => {
        await page.click('#print-view');
        await page.waitForURL((u) => u.pathname === casePath(id) && u.searchParams.get('view') === 'print');
        await waitForText(page, '#print-case-id', id, STEP_MS);
        const dec = await texts(page, '#print-decisions tbody tr');
        assert(dec.some((t) => t.includes('fin_mgr')) && dec.some((t) => t.includes('compliance_officer')), dec.join(' | '));
        const times = await page.$$eval('#print-timeline tbody tr td:first-child', (tds) => tds.map((t) => t.textContent));
        assert(times.length > 3 && times.every((t) => / UTC$/.test(t)), times.slice(0, 3).join(' | '));
        const chain = (await page.textContent('#print-chain')).trim();
        assert(/^OK: /.test(chain), chain);
      });
      await check('printed, it shows no navigation or buttons', async () => {
        await page.emulateMedia({ media: 'print' });
        assert(!(await page.isVisible('#top')) && !(await page.isVisible('#print')), 'navigation or button shown');
        await screenshot(page, 'console-print.png');
      });
    });
  } finally {
    await browser.close().catch(() => {});
  }
}

try {
  await main();
} catch (e) {
  notOk('browser test', e);
}
finish();
