// jupyter-scheduler's Create-job dialog with Berth as its backend, as a person uses it: from the
// notebook's context menu in the file browser, pick the "small" preset as compute type, add a parameter, create; the job
// list shows the job completed. Started by tests/test_jobs_browser.py, which then checks the
// Berth job behind it (its container's limits, parameters, usage record).
//
// Environment: BERTH_UI_URL, BERTH_UI_TOKEN, BERTH_UI_NOTEBOOK (path under the server's root).

import assert from 'node:assert/strict';
import { finish, launch, serverUrl, stepper } from './browser.mjs';

const URL_BASE = await serverUrl(); // BERTH_UI_URL, or BERTH_UI_SOCKET for a browser in a network of its own
const TOKEN = process.env.BERTH_UI_TOKEN;
const NOTEBOOK = process.env.BERTH_UI_NOTEBOOK;
assert.ok(URL_BASE && TOKEN && NOTEBOOK, 'BERTH_UI_URL, BERTH_UI_TOKEN and BERTH_UI_NOTEBOOK must be set');

const step = stepper('create-job');
const { browser, page, pageErrors } = await launch();

await finish('create-job', { browser, page, pageErrors, step }, async () => {
  step('in the file browser, the notebook\'s context menu: "Create Job"');
  await page.goto(`${URL_BASE}/lab?reset&token=${TOKEN}`);
  await page.locator('#jupyterlab-splash').waitFor({ state: 'detached', timeout: 60000 });
  await page.locator('.jp-DirListing-item', { hasText: NOTEBOOK }).click({ button: 'right' });
  await page.locator('.lm-Menu-item', { hasText: 'Create Job' }).click();
  await page.getByText('Create Job', { exact: true }).waitFor();
  assert.equal(await page.locator('input[name="inputFile"]').inputValue(), NOTEBOOK);

  step('compute types are the Berth presets within the policy: choose "small"');
  await page.locator('[aria-haspopup="listbox"]').filter({ hasText: 'default' }).click();
  const options = await page.getByRole('option').allInnerTexts();
  assert.deepEqual(options, ['default', 'small'], 'the 8-CPU preset is over the policy and not offered');
  await page.getByRole('option', { name: 'small', exact: true }).click();

  step('name the job, add the parameter alpha = 0.5 and create the job');
  const jobName = `train-${Date.now()}`;
  await page.locator('input[name="jobName"]').fill(jobName);
  await page.locator('button[title="Add new parameter"]').click();
  const inputs = page.locator('input[name^="parameter"]');
  await inputs.nth(0).pressSequentially('alpha');
  await inputs.nth(1).pressSequentially('0.5');
  await page.locator('input[name="jobName"]').click(); // leave the field: the form validates on blur
  await page.getByRole('button', { name: 'Create', exact: true }).click();

  step('the job list shows the job; it completes in its own Berth container');
  const row = page.locator('tr', { hasText: jobName }).first();
  await row.waitFor({ timeout: 30000 });
  const deadline = Date.now() + 150000;
  while (!(await row.innerText()).includes('Completed')) {
    assert.ok(Date.now() < deadline, `the job did not complete: ${await row.innerText()}`);
    assert.ok(!(await row.innerText()).includes('Failed'), `the job failed: ${await row.innerText()}`);
    await page.waitForTimeout(2000);
    const reload = page.getByRole('button', { name: /reload/i });
    if (await reload.count()) await reload.first().click();
  }
});
