// The sidebar's fair-share sections against a real JupyterLab with real container kernels: the
// remaining budget, starts waiting in the kernel start queue with their place ("1 ahead of you"), a
// waiting start cancelled from the sidebar, and a queued job in the Jobs view cancelled from there.
// Started by tests/test_fair_sidebar_browser.py: the host holds one 0.75-CPU kernel at a time and the
// policy queues (on_full: queue) and gives 20 CPU-hours for the term.
//
// The test runs it in a network namespace of its own (only loopback; tests/browser_netns.py), reaching
// JupyterLab through a UNIX socket and a loopback bridge (browser.mjs serverUrl), so that the engine's
// interface changes on the host do not abort the browser's requests (Chromium's ERR_NETWORK_CHANGED).
//
// Environment: BERTH_UI_URL, or BERTH_UI_SOCKET for a browser in a network of its own; BERTH_UI_TOKEN;
// BERTH_UI_SCREENSHOTS (optional directory).

import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { finish, launch, openSidebar, serverUrl, stepper } from './browser.mjs';

const URL_BASE = await serverUrl();
const TOKEN = process.env.BERTH_UI_TOKEN;
const SHOTS = process.env.BERTH_UI_SCREENSHOTS || '';
assert.ok(URL_BASE && TOKEN, 'BERTH_UI_URL (or BERTH_UI_SOCKET) and BERTH_UI_TOKEN must be set');

const MiB = 1024 ** 2;
const BIG = { cpu: 0.75, mem: 256 * MiB, gpu: 0 }; // two of these never fit on the test's host at once
const step = stepper('fair-share');

async function api(method, path, body) {
  const response = await fetch(`${URL_BASE}/${path}`, {
    method,
    headers: { Authorization: `token ${TOKEN}`, 'Content-Type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body)
  });
  const text = await response.text();
  return { status: response.status, body: text ? JSON.parse(text) : null };
}

const startKernel = path => api('POST', 'berth/api/kernels', { resources: BIG, path });

/** Until the server's queue has `n` waiting starts. */
async function queueHas(n) {
  for (let i = 0; i < 120; i++) {
    const waiting = (await api('GET', 'berth/api/queue')).body.waiting;
    if (waiting.length === n) {
      return waiting;
    }
    await new Promise(r => setTimeout(r, 250));
  }
  throw new Error(`the queue never had ${n} waiting starts`);
}

const { browser, page, pageErrors } = await launch();
page.on('console', m => m.type() === 'error' && console.log(`fair-share: console: ${m.text().slice(0, 300)}`));
async function shot(name, target) {
  if (SHOTS) {
    mkdirSync(SHOTS, { recursive: true });
    await target.screenshot({ path: join(SHOTS, name), animations: 'disabled' });
  }
}

const started = [];
await finish('fair-share', { browser, page, pageErrors, step }, async () => {
  try {
    step('open JupyterLab and the Berth sidebar');
    const sidebar = await openSidebar(page, URL_BASE, TOKEN);
    const refresh = () => sidebar.getByTestId('berth-refresh').click();

    step('the remaining budget, as the server reports it');
    const budget = (await api('GET', 'berth/api/budget')).body.budgets[0];
    assert.equal(budget.limits.cpu_hours, 20);
    const item = sidebar.getByTestId('berth-budget-item');
    await item.filter({ hasText: `Your budget · ${budget.period} · resets ${budget.resets_at.slice(0, 10)}` }).waitFor();
    await item.getByTestId('berth-budget-left').filter({ hasText: '20 of 20 CPU-hours left' }).waitFor();

    step('one kernel fills the host; two more starts and a job wait in line');
    const first = await startKernel('first.ipynb');
    assert.equal(first.status, 201, JSON.stringify(first.body));
    started.push(first.body.id);
    const second = startKernel('second.ipynb'); // answered when it gets its turn
    await queueHas(1);
    const third = startKernel('third.ipynb');
    const line = await queueHas(2);
    const notebook = { nbformat: 4, nbformat_minor: 5, metadata: {}, cells: [{ cell_type: 'code', metadata: {}, source: 'print(1)', outputs: [], execution_count: null }] };
    const job = await api('POST', 'berth/api/jobs', { notebook: 'overnight.ipynb', content: notebook, request: BIG });
    assert.equal(job.status, 201, JSON.stringify(job.body));
    assert.equal(job.body.status, 'queued');
    await queueHas(3);

    step('the sidebar shows each waiting start with its place');
    await refresh();
    const queue = sidebar.getByTestId('berth-queue');
    await queue.getByText('Waiting for room (3)').waitFor();
    const places = queue.getByTestId('berth-queued-place');
    const waitingFor = 'waiting for 0.75 CPU · 256 MiB';
    await places.filter({ hasText: `${waitingFor}; next in line` }).waitFor();
    await places.filter({ hasText: `${waitingFor}; 1 ahead of you` }).waitFor();
    const jobEntry = queue.getByTestId('berth-queued-start').filter({ hasText: 'Job overnight.ipynb' });
    await jobEntry.getByText(`${waitingFor}; 2 ahead of you`).waitFor();
    const jobs = sidebar.getByTestId('berth-jobs');
    const jobRow = jobs.locator(`[data-job-id="${job.body.id}"]`);
    await jobRow.getByText('queued; 2 ahead of it').waitFor();
    await shot('sidebar-queue.png', sidebar);

    step('cancel the second waiting start from the sidebar');
    const thirdEntry = queue.locator(`[data-kernel-id="${line[1].kernel_id}"]`);
    await thirdEntry.getByRole('button', { name: /^Cancel the waiting start of Kernel/ }).click();
    const refused = await third;
    assert.equal(refused.status, 409, JSON.stringify(refused.body));
    assert.match(refused.body.message, /was cancelled while it waited for room/);
    await queue.getByText('Waiting for room (2)').waitFor();
    await jobEntry.getByText(`${waitingFor}; 1 ahead of you`).waitFor();
    await sidebar.getByTestId('berth-message').filter({ hasText: /^Cancelled the waiting start of Kernel/ }).waitFor();

    step('cancel the queued job from the Jobs view');
    await jobRow.getByRole('button', { name: 'Cancel job overnight.ipynb' }).click();
    await jobRow.locator('[data-status="cancelled"]').waitFor();
    assert.equal((await api('GET', `berth/api/jobs/${job.body.id}`)).body.status, 'cancelled');
    await queue.getByText('Waiting for room (1)').waitFor();

    step('room frees: the start still waiting gets its turn and the queue section goes');
    await api('DELETE', `berth/api/kernels/${first.body.id}`);
    started.shift();
    const admitted = await second;
    assert.equal(admitted.status, 201, JSON.stringify(admitted.body));
    started.push(admitted.body.id);
    await refresh();
    await queue.waitFor({ state: 'detached' });
    assert.deepEqual((await api('GET', 'berth/api/queue')).body.waiting, []);
  } finally {
    for (const id of started) {
      await api('DELETE', `berth/api/kernels/${id}`);
    }
  }
});
