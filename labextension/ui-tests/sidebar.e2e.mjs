// End-to-end test of the Berth sidebar against a real JupyterLab with real container
// kernels (started by scripts/ui-test.sh, which sets the environment below).
//
// As a person would: open the sidebar, choose 1 CPU, 512 MiB and 2 GiB of disk, start a notebook,
// run a cell that prints the kernel's cgroup limits and read them from the page (the service lists
// the disk limit); give the kernel 768 MiB (confirming that its state will be lost) and read them
// again; ask for more disk than the policy allows per kernel, and for more than is left of the
// quota, and see the server's own messages (nothing starts); stop the kernel from the list.
// Screenshots of the real sidebar go to $BERTH_UI_SCREENSHOTS (docs/images) when set.
//
// Environment: BERTH_UI_SOCKET (JupyterLab's UNIX socket: the browser in a network namespace of its
// own, bridged by browser.mjs serverUrl) or BERTH_UI_URL; BERTH_UI_TOKEN; BERTH_UI_SCREENSHOTS
// (optional directory).

import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { finish, launch, LIMITS_CELL, openSidebar, readLimits, serverUrl, setField, stepper } from './browser.mjs';

const URL_BASE = await serverUrl();
const TOKEN = process.env.BERTH_UI_TOKEN;
const SHOTS = process.env.BERTH_UI_SCREENSHOTS || '';
assert.ok(URL_BASE && TOKEN, 'BERTH_UI_URL and BERTH_UI_TOKEN must be set (run scripts/ui-test.sh)');

const MiB = 1024 ** 2;
const GiB = 1024 ** 3;
const step = stepper('ui-test');

async function api(method, path, body) {
  const response = await fetch(`${URL_BASE}/${path}`, {
    method,
    headers: { Authorization: `token ${TOKEN}`, 'Content-Type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body)
  });
  const text = await response.text();
  return { status: response.status, body: text ? JSON.parse(text) : null };
}

/** The same start straight to the server, which must refuse it (403): its message, for the sidebar's to match. */
async function refusedDirectly(image, resources) {
  const refused = await api('POST', 'berth/api/kernels', { image, resources, path: 'x.ipynb' });
  if (refused.status === 201) {
    await api('DELETE', `berth/api/kernels/${refused.body.id}`);
  }
  assert.equal(refused.status, 403, `the server refused with ${refused.status}: ${JSON.stringify(refused.body)}`);
  return refused.body.message;
}

const { browser, page, pageErrors } = await launch();
page.on('requestfailed', r => console.log(`ui-test: request failed: ${r.method()} ${r.url().replace(TOKEN, '…')}: ${r.failure()?.errorText}`));
page.on('console', m => m.type() === 'error' && console.log(`ui-test: console: ${m.text().slice(0, 300)}`));

async function shot(name, target = page) {
  if (!SHOTS) {
    return;
  }
  mkdirSync(SHOTS, { recursive: true });
  await target.screenshot({ path: join(SHOTS, name), animations: 'disabled' });
}

/** Wait until an input shows `value` (React updates it after the event). */
async function waitForValue(input, value, timeout = 30000) {
  const until = Date.now() + timeout;
  let seen;
  while ((seen = await input.inputValue()) !== value) {
    assert.ok(Date.now() < until, `the field shows ${seen}, not ${value}`);
    await page.waitForTimeout(50);
  }
}

/** Run the notebook's first cell (the limits cell) and return the LIMIT/CPU values it printed. */
const runLimitsCell = (notebook, expectedLimit) => readLimits(page, notebook.locator('.jp-CodeCell').first(), expectedLimit);

await finish('ui-test', { browser, page, pageErrors, step }, async () => {
  step('open JupyterLab and the Berth sidebar');
  const sidebar = await openSidebar(page, URL_BASE, TOKEN);
  const summary = sidebar.getByTestId('berth-summary');
  await summary.waitFor();

  step('choose 1 CPU and 512 MiB');
  await setField(sidebar, 'CPU cores', '1');
  await setField(sidebar, 'Memory (MiB)', '512');
  // Keyboard: the memory slider moves by its step with the arrow keys, and back.
  const memSlider = sidebar.getByLabel('Memory (MiB) slider');
  await memSlider.focus();
  await page.keyboard.press('ArrowRight');
  await waitForValue(sidebar.getByLabel('Memory (MiB)', { exact: true }), '640');
  await page.keyboard.press('ArrowLeft');
  await waitForValue(sidebar.getByLabel('Memory (MiB)', { exact: true }), '512');
  assert.match(await summary.innerText(), /^1 CPU · 512 MiB/);

  step('choose 2 GiB of disk; the field says how the limit holds here');
  const diskMode = (await api('GET', 'berth/api/info')).body.disk;
  assert.ok(['enforced', 'measured'].includes(diskMode.mode), `the engine bounds disk: ${JSON.stringify(diskMode)}`);
  const modeNote = sidebar.getByTestId('berth-disk-mode');
  assert.equal(await modeNote.getAttribute('data-mode'), diskMode.mode);
  assert.match(
    await modeNote.innerText(),
    diskMode.mode === 'enforced'
      ? /^Enforced by the engine: a write over the limit fails in the kernel\.$/
      : /^Not enforced by the engine: checked every minute; a kernel over it is warned, then stopped 1 min later unless it frees space\.$/
  );
  // The default size (10 GiB) kept within max_disk, as the server keeps a default.
  await sidebar.getByText('4 GiB · at most 4 GiB per kernel · 6 GiB left').waitFor();
  await setField(sidebar, 'Disk (GiB)', '2');
  await sidebar.getByText('2 GiB · at most 4 GiB per kernel · 6 GiB left').waitFor();
  assert.match(await summary.innerText(), /^1 CPU · 512 MiB · 2 GiB disk · /);

  step('the GPU share is offered in quanta up to the policy (a declared device, all of it free)');
  const gpu = sidebar.getByLabel('GPU share', { exact: true });
  assert.deepEqual(await gpu.locator('option').allInnerTexts(), ['no GPU', '¼ GPU', '½ GPU']);
  await sidebar.getByText(/at most ½ GPU per kernel · largest free share 1 GPU · 1 whole device free/).waitFor();
  await sidebar.getByTestId('berth-gpu-device').filter({ hasText: '0: Declared 16 GiB GPU · 16 GiB · declared' }).waitFor();
  await shot('sidebar.png', sidebar);

  step('start a notebook');
  await sidebar.getByRole('button', { name: 'Start notebook' }).click();
  const notebook = page.locator('.jp-NotebookPanel:not(.lm-mod-hidden)');
  await notebook.locator('.jp-CodeCell .cm-content').first().waitFor();
  // The notebook is on its Berth kernel when the status bar shows the kernel's limits.
  const status = page.getByTestId('berth-status');
  await status.filter({ hasText: '1 CPU · 512 MiB' }).waitFor();
  await notebook.locator('.jp-CodeCell .cm-content').first().click();
  await page.keyboard.insertText(LIMITS_CELL);
  const first = await runLimitsCell(notebook, 512 * MiB);
  step(`the kernel reads memory limit ${first.mem}, CPU quota ${first.cpuQuota}`);
  assert.equal(first.mem, 512 * MiB);
  assert.equal(first.cpuQuota, 100000); // 1 CPU of a 100 ms period
  const listed = sidebar.getByTestId('berth-kernel');
  await listed.first().waitFor();
  assert.equal(await listed.count(), 1);
  const [running] = (await api('GET', 'berth/api/kernels')).body.kernels;
  assert.equal(running.resources.disk, 2 * GiB, 'the service granted the disk size chosen in the sidebar');
  await listed.getByTestId('berth-kernel-limits').filter({ hasText: /^1 CPU · 512 MiB · 2 GiB disk · / }).waitFor();
  await sidebar.getByText('2 GiB · at most 4 GiB per kernel · 4 GiB left').waitFor(); // the total, less the kernel's

  step('give the kernel 768 MiB');
  await setField(sidebar, 'Memory (MiB)', '768');
  await sidebar.getByRole('button', { name: 'Apply to current kernel' }).click();
  const dialog = page.locator('.jp-Dialog');
  await dialog.waitFor();
  assert.match(await dialog.innerText(), /state will be lost/);
  await dialog.getByRole('button', { name: 'Restart with new resources' }).click();
  await status.filter({ hasText: '1 CPU · 768 MiB' }).waitFor({ timeout: 60000 });
  const second = await runLimitsCell(notebook, 768 * MiB);
  step(`the new kernel reads memory limit ${second.mem}, CPU quota ${second.cpuQuota}`);
  assert.equal(second.mem, 768 * MiB);
  assert.equal(second.cpuQuota, 100000);
  await sidebar.getByText(/now runs with 1 CPU · 768 MiB/).waitFor();
  await listed.filter({ hasText: '768 MiB' }).waitFor();
  assert.equal(await listed.count(), 1, 'the old kernel was shut down');
  await shot('sidebar-running.png');

  step('ask for more disk than the policy allows per kernel');
  const before = (await api('GET', 'api/contents')).body.content.map(f => f.name).sort();
  const image = (await api('GET', 'berth/api/kernels')).body.kernels[0].image;
  await setField(sidebar, 'Memory (MiB)', '128');
  await setField(sidebar, 'Disk (GiB)', '8');
  const problem = sidebar.getByTestId('berth-disk-problem');
  await problem.waitFor();
  assert.equal(
    (await problem.innerText()).trim(),
    '8 GiB of disk is more than your policy allows per kernel (at most 4 GiB, max_disk): the server will refuse it.'
  );
  assert.match(await summary.innerText(), /^1 CPU · 128 MiB · 8 GiB disk · /);
  await sidebar.getByRole('button', { name: 'Start notebook' }).click();
  const message = sidebar.locator('[data-testid="berth-message"].jp-mod-error');
  await message.waitFor();
  const diskShown = (await message.innerText()).trim();
  assert.equal(diskShown, await refusedDirectly(image, { cpu: 1, mem: 128 * MiB, gpu: 0, disk: 8 * GiB }));
  assert.match(diskShown, /^disk: you asked for 8 GiB per kernel but your policy allows at most 4 GiB .*max_disk/);
  step(`the sidebar shows the policy's message: "${diskShown}"`);
  assert.equal((await api('GET', 'berth/api/kernels')).body.kernels.length, 1, 'nothing started');
  assert.deepEqual((await api('GET', 'api/contents')).body.content.map(f => f.name).sort(), before, 'no notebook left behind');
  await problem.scrollIntoViewIfNeeded();
  await shot('sidebar-disk-over-policy.png', sidebar);
  await setField(sidebar, 'Disk (GiB)', '2');
  await problem.waitFor({ state: 'detached' });

  step('ask for more than is left of the quota');
  // 700 MiB is off the slider's 128 MiB steps: typed sizes are the user's to choose (the browser's own
  // step check must not block the start; the server decides).
  await setField(sidebar, 'Memory (MiB)', '700');
  await sidebar.getByTestId('berth-quota-warning').waitFor();
  await sidebar.getByRole('button', { name: 'Start notebook' }).click();
  await message.filter({ hasNotText: diskShown }).waitFor();
  const shown = (await message.innerText()).trim();
  assert.equal(shown, await refusedDirectly(image, { cpu: 1, mem: 700 * MiB, gpu: 0, disk: 2 * GiB }));
  assert.doesNotMatch(shown, /failed: 403|Forbidden/);
  step(`the sidebar shows the server's message: "${shown}"`);
  const after = (await api('GET', 'api/contents')).body.content.map(f => f.name).sort();
  assert.deepEqual(after, before, 'no empty notebook is left behind by a refused start');
  await message.scrollIntoViewIfNeeded();
  await shot('sidebar-over-quota.png', sidebar);

  step('save ½ CPU and 256 MiB as the default profile, start a console with it');
  await setField(sidebar, 'CPU cores', '0.5');
  await setField(sidebar, 'Memory (MiB)', '256');
  await sidebar.getByRole('button', { name: 'Save as default' }).click();
  await sidebar.getByText('Saved as your default: 0.5 CPU · 256 MiB').waitFor();
  const profile = (await api('GET', 'berth/api/profile')).body;
  assert.deepEqual(profile.request, { cpu: 0.5, mem: 256 * MiB, gpu: 0, disk: 2 * GiB });
  assert.equal(profile.image, image);
  await sidebar.getByRole('button', { name: 'Start console' }).click();
  await page.locator('.jp-ConsolePanel:not(.lm-mod-hidden)').waitFor();
  await status.filter({ hasText: '0.5 CPU · 256 MiB' }).waitFor();
  await listed.filter({ hasText: '256 MiB' }).waitFor();
  assert.equal(await listed.count(), 2);
  if (SHOTS) {
    await sidebar.getByTestId('berth-kernels').scrollIntoViewIfNeeded();
    await page.waitForTimeout(5500); // a second usage sample, so the CPU meters show cores in use
    await shot('sidebar-kernels.png', sidebar);
  }

  step('dark theme');
  await page.locator('.lm-MenuBar-item', { hasText: 'Settings' }).click();
  await page.locator('.lm-Menu-item', { hasText: /^Theme$/ }).hover();
  await page.getByRole('menuitem', { name: 'JupyterLab Dark', exact: true }).click();
  await page.locator('body[data-jp-theme-light="false"]').waitFor({ state: 'attached' });
  await page.locator('.lm-DockPanel-tabBar .lm-TabBar-tab', { hasText: 'Untitled.ipynb' }).click();
  await page.waitForTimeout(500); // let the theme's CSS apply before the picture
  const bg = await sidebar.evaluate(el => getComputedStyle(el).backgroundColor);
  const [r, g, b] = bg.match(/\d+/g).map(Number);
  assert.ok(r + g + b < 3 * 96, `the sidebar follows the dark theme (background ${bg})`);
  await shot('sidebar-dark.png');

  step('the saved notebook offers its environment again when reopened');
  await page.locator('.lm-DockPanel-tabBar .lm-TabBar-tab', { hasText: 'Untitled.ipynb' }).click();
  await notebook.locator('.jp-CodeCell .cm-content').first().click();
  await page.keyboard.press('Control+s');
  let saved = null;
  for (let i = 0; i < 50 && !saved; i++) {
    saved = (await api('GET', 'api/contents/Untitled.ipynb')).body.content?.metadata?.berth?.environment ?? null;
    if (!saved) {
      await page.waitForTimeout(200);
    }
  }
  assert.ok(saved, 'saving from a Berth kernel records the environment in the notebook');
  assert.equal(saved.image, image);
  assert.match(saved.digest, /^sha256:/);
  assert.equal(saved.resources.mem, 768 * MiB);
  await openSidebar(page, URL_BASE, TOKEN, 'lab/tree/Untitled.ipynb');
  const offered = sidebar.getByTestId('berth-notebook-environment');
  await offered.waitFor({ timeout: 30000 });
  assert.equal(await offered.getAttribute('data-status'), 'available');
  assert.match(await offered.innerText(), /This notebook was saved in .*sha256:[0-9a-f]{12}.* · 1 CPU · 768 MiB/);
  await offered.getByRole('button', { name: 'Use this environment' }).click();
  await summary.filter({ hasText: /^1 CPU · 768 MiB/ }).waitFor();
  await shot('sidebar-environment.png', sidebar);

  step('stop the kernels from the list');
  for (const left of [1, 0]) {
    await listed.first().getByRole('button', { name: /^Stop kernel/ }).click();
    await dialog.getByRole('button', { name: 'Stop kernel' }).click();
    await sidebar.getByText(`Running kernels (${left})`).waitFor();
  }
  await sidebar.getByText('No Berth kernel is running.').waitFor();
  assert.deepEqual((await api('GET', 'berth/api/kernels')).body.kernels, []);
});
