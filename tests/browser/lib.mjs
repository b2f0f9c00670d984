// lib.mjs - what every browser test here shares: checks counted and
// printed TAP-style ("ok - ...", "not ok - ...: why"), a step that ends its
// scenario when it fails (check), a scenario in a fresh browser context
// whose page errors and CSP violations fail a check of their own, and the
// closing "N passed, N failed" line.
import { chromium } from 'playwright-core';
import { mkdirSync } from 'node:fs';
import path from 'node:path';

export const STEP_MS = 15_000;
export const ARTIFACTS = process.env.ARTIFACTS || path.resolve('tests/artifacts');

let passed = 0;
let failed = 0;

export function ok(what) {
  passed++;
  console.log(`ok - ${what}`);
}

export function notOk(what, why) {
  failed++;
  const line = String(why && why.message ? why.message : why).split('\n')[0];
  console.log(`not ok - ${what}: ${line}`);
}

export class Abort extends Error {}

// A step: run fn; on failure print "not ok" and end the scenario.
export async function check(what, fn) {
  try {
    const r = await fn();
    ok(what);
    return r;
  } catch (e) {
    notOk(what, e);
    throw new Abort(what);
  }
}

export function assert(cond, why) {
  if (!cond) throw new Error(why);
}

// A full-page screenshot into ARTIFACTS.
export async function screenshot(page, name) {
  await page.screenshot({ path: path.join(ARTIFACTS, name), fullPage: true });
}

// One scenario in its own browser context (options: playwright's, a
// 1280x900 viewport by default); page errors and CSP violations reported by
// the browser fail a check of their own at the end.
export async function scenario(browser, name, fn, options) {
  let context;
  const problems = [];
  try {
    context = await browser.newContext(Object.assign({ viewport: { width: 1280, height: 900 } }, options || {}));
    context.setDefaultTimeout(STEP_MS);
    const page = await context.newPage();
    page.on('pageerror', (e) => problems.push('page error: ' + (e && e.message ? e.message : String(e))));
    page.on('console', (m) => {
      if (m.type() === 'error' && /content security policy/i.test(m.text())) problems.push('CSP: ' + m.text());
    });
    await fn(page, context);
  } catch (e) {
    if (!(e instanceof Abort)) notOk(`${name}: scenario`, e);
  } finally {
    if (problems.length) notOk(`${name}: no page errors or CSP violations`, `${problems.length}: ${problems[0]}`);
    else ok(`${name}: no page errors or CSP violations`);
    if (context) await context.close().catch(() => {});
  }
}

// The browser, once the environment names everything in need (a check
// each: the environment, chromium starting); null if it cannot start
export async function start(need) {
  const missing = need.filter((k) => !process.env[k]);
  if (missing.length) {
    notOk('environment', 'missing ' + missing.join(', '));
    return null;
  }
  mkdirSync(ARTIFACTS, { recursive: true });
  try {
    const browser = await chromium.launch({
      executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
      args: ['--no-sandbox'],
      headless: true,
    });
    ok('chromium starts');
    return browser;
  } catch (e) {
    notOk('chromium starts', e);
    return null;
  }
}

// The closing line; the exit status says whether any check failed.
export function finish() {
  console.log(`${passed} passed, ${failed} failed`);
  process.exit(failed ? 1 : 0);
}
