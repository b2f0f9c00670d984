// The console's Pipeline page in a real browser (headless Chromium through
// playwright-core), against a group sampled every second under a steady load
// (tests/e2e/e2e_pipeline.sh starts it).
//
// Environment:
//   CONSOLE_URL     e.g. http://127.0.0.1:8083
//   TOKEN           a person's token (fin_mgr)
//   PIPELINE_BREAK  a shell command: triage.0 killed, its program gone (each restart fails)
//   PIPELINE_MEND   a shell command: its program back (the next restart works)
//   PIPELINE_SLOW   a shell command: every ledger answer held back 400 ms
//   ARTIFACTS       where screenshots go (console-pipeline*.png)
//   CHROMIUM        the browser (default /usr/bin/chromium)
//
// Prints "ok - <what>" or "not ok - <what>: <why>" per check and ends with
// "N passed, N failed"; exits 1 if any check failed. A failed step ends its
// scenario; the next one still runs.
import { execSync } from 'node:child_process';
import { assert, check, finish, notOk, scenario, screenshot, start } from './lib.mjs';

const RESTART_MS = 20_000;
const LATENCY_MS = 20_000;

const env = process.env;
const BASE = (env.CONSOLE_URL || '').replace(/\/+$/, '');

function run(cmd) {
  execSync(cmd, { stdio: 'ignore', shell: '/bin/bash', timeout: 10_000 });
}

// The state shown for an instance, or null.
function instState(page, inst) {
  return page.evaluate((inst) => {
    const tr = document.querySelector(`#pl-instances tr[data-instance="${inst}"]`);
    return tr ? tr.dataset.state : null;
  }, inst);
}
async function waitState(page, inst, want, timeout) {
  try {
    await page.waitForFunction(({ inst, want }) => {
      const tr = document.querySelector(`#pl-instances tr[data-instance="${inst}"]`);
      return !!tr && tr.dataset.state === want;
    }, { inst, want }, { timeout, polling: 200 });
  } catch (e) {
    throw new Error(`${inst} shows ${JSON.stringify(await instState(page, inst))} after ${timeout / 1000} s, wanted ${want}`);
  }
}
// The p99 the page shows for a system (ms), NaN when none.
function p99(page, system) {
  return page.evaluate((system) => {
    const td = document.querySelector(`#pl-systems tr[data-system="${system}"] td.pl-p99`);
    return td ? Number(td.dataset.ms) : NaN;
  }, system);
}

async function signIn(page) {
  await page.goto(BASE + '/pipeline');
  await page.waitForSelector('#token', { state: 'visible' });
  await page.fill('#token', env.TOKEN);
  await page.click('#signin');
  await page.waitForSelector('#pl-instances tbody tr[data-instance]');
}

async function desktop(page) {
  await check('the Pipeline page opens from its nav link, signed in', async () => {
    await signIn(page);
    const cur = await page.getAttribute('nav a[data-nav="pipeline"]', 'aria-current');
    assert(cur === 'page', `the nav link is not current: ${cur}`);
  });
  await check('every instance is up; stages, outside systems and end to end are shown', async () => {
    await page.waitForFunction(() => document.querySelectorAll('#pl-instances tr[data-state="up"]').length >= 9);
    await page.waitForSelector('#pl-systems tr[data-system="ledger"]');
    const cards = await page.$$eval('#pl-e2e .pl-card', (e) => e.map((c) => c.dataset.key));
    for (const k of ['webhooks_per_s', 'awaiting_people', 'ops_review', 'oldest_unacked_s']) assert(cards.includes(k), `no ${k} card`);
    const health = await page.textContent('#pl-health');
    assert(/Healthy/.test(health), `health says ${JSON.stringify(health)}`);
  });
  await check('webhooks per second is shown under the load', async () => {
    await page.waitForFunction(() => {
      const v = document.querySelector('#pl-e2e [data-key="webhooks_per_s"] .pl-card-value');
      return v && Number(v.textContent) > 0;
    });
  });
  await check('charts of the history are drawn with uPlot (no reload)', async () => {
    await page.waitForFunction(() => typeof window.uPlot === 'function' && document.querySelectorAll('.pl-plot canvas').length >= 6);
    await page.evaluate(() => { window.__plSame = 1; });
  });
  await check('screenshot console-pipeline.png', () => screenshot(page, 'console-pipeline.png'));

  let restarts = 0;
  await check('triage.0 killed (and its program gone): shown down', async () => {
    restarts = Number(await page.$eval('#pl-instances tr[data-instance="triage.0"] td:nth-child(4)', (e) => e.textContent));
    run(env.PIPELINE_BREAK);
    await waitState(page, 'triage.0', 'down', RESTART_MS);
    const health = await page.textContent('#pl-health');
    assert(/triage\.0 down/.test(health), `health says ${JSON.stringify(health)}`);
  });
  await check('...with its restarts counted', async () => {
    await page.waitForFunction((n) => Number(document.querySelector('#pl-instances tr[data-instance="triage.0"] td:nth-child(4)').textContent) > n, restarts);
  });
  await check('screenshot console-pipeline-down.png', () => screenshot(page, 'console-pipeline-down.png'));
  await check('its program back: up again after the master restarts it', async () => {
    run(env.PIPELINE_MEND);
    await waitState(page, 'triage.0', 'up', RESTART_MS);
  });

  let before = NaN;
  await check('the ledger answers fast before the fault (p99 under 250 ms)', async () => {
    await page.waitForFunction(() => {
      const td = document.querySelector('#pl-systems tr[data-system="ledger"] td.pl-p99');
      return td && Number.isFinite(Number(td.dataset.ms));
    }, null, { timeout: LATENCY_MS, polling: 250 });
    before = await p99(page, 'ledger');
    assert(before < 250, `p99 is ${before} ms already`);
  });
  await check('the ledger slowed by 400 ms: its p99 rises over 350 ms', async () => {
    run(env.PIPELINE_SLOW);
    try {
      await page.waitForFunction(() => {
        const td = document.querySelector('#pl-systems tr[data-system="ledger"] td.pl-p99');
        return td && Number(td.dataset.ms) > 350;
      }, null, { timeout: LATENCY_MS, polling: 250 });
    } catch (e) {
      throw new Error(`p99 is ${await p99(page, 'ledger')} ms (was ${before} ms)`);
    }
  });
  await check('the page was never reloaded', async () => {
    assert(await page.evaluate(() => window.__plSame === 1), 'window state is gone: the page reloaded');
  });
  await check('screenshot console-pipeline-slow.png', () => screenshot(page, 'console-pipeline-slow.png'));
}

async function phone(page) {
  await check('phone (375 px): the page opens', () => signIn(page));
  await check('phone: nothing wider than the screen but the tables, which scroll in their own box', async () => {
    await page.waitForFunction(() => document.querySelectorAll('.pl-plot canvas').length >= 6);
    const over = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    assert(over <= 0, `the page is ${over} px wider than the screen`);
    const wide = await page.evaluate(() => Array.from(document.querySelectorAll('.pl-chart, .pl-card, #pl-health'))
      .filter((e) => e.getBoundingClientRect().right > window.innerWidth + 1).length);
    assert(wide === 0, `${wide} charts or cards stick out`);
  });
  await check('screenshot console-pipeline-phone.png', () => screenshot(page, 'console-pipeline-phone.png'));
}

async function nocharts(page) {
  await page.route('**/static/uplot.min.js', (r) => r.abort());
  await check('without uPlot: the page says charts are unavailable', async () => {
    await signIn(page);
    await page.waitForSelector('#pl-charts-note:not([hidden])');
    const t = await page.textContent('#pl-charts-note');
    assert(/Charts are unavailable/.test(t), `the note says ${JSON.stringify(t)}`);
  });
  await check('...and still shows the numbers', async () => {
    await page.waitForSelector('#pl-systems tr[data-system="ledger"]');
    const n = await page.$$eval('#pl-instances tr[data-instance]', (e) => e.length);
    assert(n >= 9, `${n} instances`);
    const shown = await page.$$eval('.pl-chart', (e) => e.filter((c) => !c.hidden).length);
    assert(shown === 0, `${shown} empty chart boxes shown`);
  });
  await check('screenshot console-pipeline-nocharts.png', () => screenshot(page, 'console-pipeline-nocharts.png'));
}

async function main() {
  const browser = await start(['CONSOLE_URL', 'TOKEN', 'PIPELINE_BREAK', 'PIPELINE_MEND', 'PIPELINE_SLOW']);
  if (!browser) return;
  try {
    await scenario(browser, 'desktop', desktop);
    await scenario(browser, 'phone', phone, { viewport: { width: 375, height: 740 } });
    await scenario(browser, 'no charts', nocharts);
  } finally {
    await browser.close().catch(() => {});
  }
}

main()
  .catch((e) => notOk('unexpected', e))
  .finally(() => {
    finish();
  });
