// The sidebar in hub mode, as a hub user meets it: log in to JupyterHub, start a server from
// the spawn form, open the Berth sidebar in that server's JupyterLab (its calls go to the
// hub's Berth service with the user's token), start a notebook with ½ CPU and 512 MiB and
// read the kernel container's cgroup limits from the page; stop the kernel from the list.
// Started by tests/test_hub_sidebar.py.
//
// Environment: BERTH_UI_URL (the hub) or BERTH_UI_SOCKET (a UNIX socket forwarded to the hub, for a browser
// in a network namespace of its own: tests/browser_netns.py), BERTH_UI_USER, BERTH_UI_PASSWORD,
// BERTH_UI_SCREENSHOTS (optional).

import assert from 'node:assert/strict';
import { join } from 'node:path';

import { finish, launch, LIMITS_CELL, readLimits, serverUrl, setField, stepper } from './browser.mjs';

const HUB = await serverUrl();
const USER = process.env.BERTH_UI_USER;
const PASSWORD = process.env.BERTH_UI_PASSWORD;
const SHOTS = process.env.BERTH_UI_SCREENSHOTS || '';
assert.ok(HUB && USER && PASSWORD, 'BERTH_UI_URL, BERTH_UI_USER and BERTH_UI_PASSWORD must be set');

const MiB = 1024 ** 2;
const step = stepper('hub-mode');
const { browser, page, pageErrors } = await launch();

await finish('hub-mode', { browser, page, pageErrors, step }, async () => {
  step('log in to the hub');
  await page.goto(`${HUB}/hub/login`);
  await page.locator('#username_input').fill(USER);
  await page.locator('#password_input').fill(PASSWORD);
  await page.locator('#login_submit').click();

  step("start a server from the spawn form (the policy's defaults)");
  await page.locator('#spawn_form').waitFor();
  await page.locator('#spawn_form [type="submit"]').click();
  await page.waitForURL(/\/user\/[^/]+\/lab/, { timeout: 120000 });
  await page.locator('#jupyterlab-splash').waitFor({ state: 'detached', timeout: 120000 });

  step('open the Berth sidebar: hub mode, as the hub user');
  await page.locator('.jp-SideBar .lm-TabBar-tab[data-id="jupyter-berth-sidebar"]').click();
  const sidebar = page.locator('#jupyter-berth-sidebar');
  await sidebar.locator('.jp-BerthHeader-who', { hasText: `${USER} · hub` }).waitFor();
  const summary = sidebar.getByTestId('berth-summary');
  await summary.waitFor();

  step('choose ½ CPU and 512 MiB, start a notebook');
  await setField(sidebar, 'CPU cores', '0.5');
  await setField(sidebar, 'Memory (MiB)', '512');
  assert.match(await summary.innerText(), /^0\.5 CPU · 512 MiB/);
  if (SHOTS) {
    await sidebar.screenshot({ path: join(SHOTS, 'sidebar-hub.png'), animations: 'disabled' });
  }
  await sidebar.getByRole('button', { name: 'Start notebook' }).click();
  const notebook = page.locator('.jp-NotebookPanel:not(.lm-mod-hidden)');
  await page.getByTestId('berth-status').filter({ hasText: '0.5 CPU · 512 MiB' }).waitFor({ timeout: 90000 });
  const cell = notebook.locator('.jp-CodeCell').first();
  await cell.locator('.cm-content').click();
  await page.keyboard.insertText(LIMITS_CELL);
  const limits = await readLimits(page, cell, 512 * MiB, 90000);
  assert.equal(limits.mem, 512 * MiB);
  assert.equal(limits.cpuQuota, 50000); // ½ CPU of a 100 ms period
  step(`the kernel's container reads memory limit ${limits.mem}, CPU quota ${limits.cpuQuota}`);

  step('stop the kernel from the list');
  const listed = sidebar.getByTestId('berth-kernel');
  await listed.first().waitFor();
  await listed.first().getByRole('button', { name: /^Stop kernel/ }).click();
  await page.locator('.jp-Dialog').getByRole('button', { name: 'Stop kernel' }).click();
  await sidebar.getByText('No Berth kernel is running.').waitFor({ timeout: 60000 });
});
