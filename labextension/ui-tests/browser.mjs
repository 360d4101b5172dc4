// What the browser tests share: Debian's Chromium through playwright-core (never a downloaded
// browser), with the flags this workplace needs, and JupyterLab opened on a clean workspace.

import assert from 'node:assert/strict';
import { connect, createServer } from 'node:net';

import { chromium } from 'playwright-core';

export const CHROMIUM_FLAGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run'
];

/** Chromium and a page of the size the screenshots in docs/ are taken at; page errors are collected. */
export async function launch() {
  const browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: CHROMIUM_FLAGS });
  const page = await browser.newPage({ viewport: { width: 1400, height: 860 } });
  page.setDefaultTimeout(30000);
  const pageErrors = [];
  page.on('pageerror', e => pageErrors.push(String(e)));
  return { browser, page, pageErrors };
}

/** Open JupyterLab (`?reset`: no saved workspace) and the Berth sidebar; the sidebar's locator. */
export async function openSidebar(page, urlBase, token, path = 'lab') {
  await page.goto(`${urlBase}/${path}?reset&token=${token}`);
  await page.locator('#jupyterlab-splash').waitFor({ state: 'detached', timeout: 60000 });
  await page.locator('.jp-SideBar .lm-TabBar-tab[data-id="jupyter-berth-sidebar"]').click();
  return page.locator('#jupyter-berth-sidebar');
}

/** A logger of the scenario's steps with the seconds since it began: `ui-test:   3.4 s  start a notebook`. */
export function stepper(name) {
  const started = Date.now();
  return text => console.log(`${name}: ${((Date.now() - started) / 1000).toFixed(1).padStart(5)} s  ${text}`);
}

/**
 * Run a scenario's body, then end the process: 0 when it passed with no uncaught error in the
 * page, 1 otherwise (with the error and a screenshot of the page at /tmp/berth-<name>-failure.png).
 */
export async function finish(name, { browser, page, pageErrors, step }, body) {
  let failed = false;
  try {
    await body();
    assert.deepEqual(pageErrors, [], 'no uncaught errors in the page');
    step('passed');
  } catch (error) {
    failed = true;
    console.error(error);
    const shot = `/tmp/berth-${name}-failure.png`;
    await page.screenshot({ path: shot }).catch(() => undefined);
    console.error(`${name}: a screenshot of the failure is in ${shot}`);
  } finally {
    await browser.close();
  }
  process.exit(failed ? 1 : 0);
}

/** A cell that prints the memory limit and CPU quota of the container the kernel runs in (cgroup v1 or v2). */
export const LIMITS_CELL =
  "import os; r = lambda *ps: next((open(p).read().split()[0] for p in ps if os.path.exists(p)), '?'); " +
  "print('LIMIT=' + r('/sys/fs/cgroup/memory.max', '/sys/fs/cgroup/memory/memory.limit_in_bytes'), " +
  "'CPU=' + r('/sys/fs/cgroup/cpu.max', '/sys/fs/cgroup/cpu/cpu.cfs_quota_us'))";

/** Run `cell` (holding LIMITS_CELL) and read what it printed once the limit reads `expectedLimit`. */
export async function readLimits(page, cell, expectedLimit, timeout = 60000) {
  await cell.locator('.cm-content').click();
  await page.keyboard.press('Control+Enter');
  const output = cell.locator('.jp-OutputArea-output');
  await output.filter({ hasText: `LIMIT=${expectedLimit}` }).waitFor({ timeout });
  const text = await output.innerText();
  const m = /LIMIT=(\d+)\s+CPU=(-?\d+)/.exec(text);
  assert.ok(m, `the cell printed ${JSON.stringify(text)}`);
  return { mem: Number(m[1]), cpuQuota: Number(m[2]) };
}

/** Type a value into one of the sidebar's number fields (`'CPU cores'`, `'Memory (MiB)'`) and commit it. */
export async function setField(sidebar, label, value) {
  const field = sidebar.getByLabel(label, { exact: true });
  await field.fill(String(value));
  await field.press('Enter');
}

/**
 * A loopback port that forwards every connection to the server's UNIX socket: `http://127.0.0.1:<port>`.
 *
 * For a browser run in a network namespace of its own (`unshare --net`, only loopback inside): the
 * engine's interface changes on the host (containers starting, other tests' networks) are then not
 * seen by Chromium, which otherwise aborts requests in flight with ERR_NETWORK_CHANGED.
 */
/** The server under test: `BERTH_UI_SOCKET` bridged (a browser in a network of its own), else `BERTH_UI_URL`. */
export async function serverUrl() {
  const socket = process.env.BERTH_UI_SOCKET;
  return socket ? await socketBridge(socket) : process.env.BERTH_UI_URL;
}

export async function socketBridge(socketPath) {
  const server = createServer(client => {
    const upstream = connect(socketPath);
    client.pipe(upstream).pipe(client);
    const close = () => {
      client.destroy();
      upstream.destroy();
    };
    client.on('error', close);
    upstream.on('error', close);
  });
  server.unref();
  await new Promise(resolve => server.listen(0, '127.0.0.1', resolve));
  return `http://127.0.0.1:${server.address().port}`;
}
