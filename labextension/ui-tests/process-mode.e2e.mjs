// The sidebar in process mode (a Binder: no container engine), as a person sees it: the
// notice says kernels are plain local processes without isolation, the disk field gives way to
// the reason there is no disk limit; a notebook started from the sidebar runs a cell in such a
// process. Started by tests/test_binder.py.
//
// Environment: BERTH_UI_URL, BERTH_UI_TOKEN, BERTH_UI_SCREENSHOTS (optional directory).

import assert from 'node:assert/strict';
import { join } from 'node:path';
import { finish, launch, openSidebar, stepper } from './browser.mjs';

const URL_BASE = process.env.BERTH_UI_URL;
const TOKEN = process.env.BERTH_UI_TOKEN;
const SHOTS = process.env.BERTH_UI_SCREENSHOTS || '';
assert.ok(URL_BASE && TOKEN, 'BERTH_UI_URL and BERTH_UI_TOKEN must be set');

const step = stepper('process-mode');
const { browser, page, pageErrors } = await launch();

await finish('process-mode', { browser, page, pageErrors, step }, async () => {
  step('open JupyterLab and the sidebar: it says it is in process mode');
  const sidebar = await openSidebar(page, URL_BASE, TOKEN);
  const notice = sidebar.getByTestId('berth-process-mode');
  await notice.waitFor();
  assert.match(await notice.innerText(), /Process mode: .*plain local processes.*no isolation/s);
  const summary = sidebar.getByTestId('berth-summary');
  assert.match(await summary.innerText(), /^0\.5 CPU · 512 MiB · python:/);
  // Nothing bounds a local process's disk use: no disk field, the reason instead (and no disk in the request).
  const disk = sidebar.getByTestId('berth-disk');
  assert.match(await disk.innerText(), /^Disk space\s+Not limited on this server: this runtime bounds no disk use/);
  assert.equal(await sidebar.getByLabel('Disk (GiB)', { exact: true }).count(), 0);
  if (SHOTS) {
    await sidebar.screenshot({ path: join(SHOTS, 'sidebar-process-mode.png'), animations: 'disabled' });
  }

  step('start a notebook from the sidebar; a cell runs in a local process');
  await sidebar.getByRole('button', { name: 'Start notebook' }).click();
  const notebook = page.locator('.jp-NotebookPanel:not(.lm-mod-hidden)');
  await page.getByTestId('berth-status').filter({ hasText: '0.5 CPU · 512 MiB' }).waitFor({ timeout: 60000 });
  const cell = notebook.locator('.jp-CodeCell').first();
  await cell.locator('.cm-content').click();
  await page.keyboard.insertText("import os; print('RUNTIME=' + os.environ['BERTH_RUNTIME'] + ' LIMITS=' + os.environ['BERTH_ENFORCEMENT'])");
  await page.keyboard.press('Control+Enter');
  const output = cell.locator('.jp-OutputArea-output');
  await output.filter({ hasText: 'RUNTIME=process' }).waitFor({ timeout: 60000 });
  assert.match(await output.innerText(), /RUNTIME=process LIMITS=rlimit/);
});
