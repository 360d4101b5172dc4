// A real login: a student of class-a logs in to JupyterHub with the directory's password (LDAP,
// jupyterhub-ldapauthenticator, groups from the directory) and the spawn form shows the class's
// policy, not the default one. A directory user outside every allowed group is refused.
// Started by tests/test_ldap_login.py (a throwaway slapd on loopback, scripts/ldap-up.sh).
//
// Environment: BERTH_UI_URL (the hub), BERTH_UI_USER, BERTH_UI_PASSWORD, BERTH_UI_OUTSIDER,
// BERTH_UI_CPU and BERTH_UI_MEM (the class policy's max_cpu and max_mem as the form writes them),
// BERTH_UI_SCREENSHOTS (optional: a folder for spawn-form-ldap.png).

import assert from 'node:assert/strict';
import { join } from 'node:path';

import { finish, launch, serverUrl, stepper } from './browser.mjs';

const HUB = await serverUrl(); // BERTH_UI_URL, or BERTH_UI_SOCKET for a browser in a network of its own
const { BERTH_UI_USER: USER, BERTH_UI_PASSWORD: PASSWORD } = process.env;
const { BERTH_UI_OUTSIDER: OUTSIDER, BERTH_UI_CPU: CPU, BERTH_UI_MEM: MEM } = process.env;
const SHOTS = process.env.BERTH_UI_SCREENSHOTS || '';
assert.ok(HUB && USER && PASSWORD && OUTSIDER && CPU && MEM, 'BERTH_UI_* must be set');

const step = stepper('ldap-login');
const { browser, page, pageErrors } = await launch();

async function logIn(user, password) {
  await page.goto(`${HUB}/hub/login`);
  await page.locator('#username_input').fill(user);
  await page.locator('#password_input').fill(password);
  await page.locator('#login_submit').click();
}

await finish('ldap-login', { browser, page, pageErrors, step }, async () => {
  step(`${OUTSIDER} (in the directory, in no allowed group) is refused`);
  await logIn(OUTSIDER, PASSWORD);
  await page.locator('.login_error').filter({ hasText: /Invalid username or password/i }).waitFor();
  assert.match(page.url(), /\/hub\/login/);

  step(`${USER} logs in with the directory's password`);
  await logIn(USER, PASSWORD);
  const form = page.locator('#spawn_form');
  await form.waitFor();

  step("the spawn form shows the class's policy");
  const cpuHint = await page.locator('#berth-cpu-hint').innerText();
  const memHint = await page.locator('#berth-mem-hint').innerText();
  assert.match(cpuHint, new RegExp(`at most ${CPU.replace('.', '\\.')} per server or kernel`), cpuHint);
  assert.match(memHint, new RegExp(`at most ${MEM}`), memHint);
  assert.equal(await page.locator('#berth-cpu').getAttribute('max'), CPU);
  step(`CPU: "${cpuHint}"; memory: "${memHint}"`);
  if (SHOTS) {
    await form.screenshot({ path: join(SHOTS, 'spawn-form-ldap.png'), animations: 'disabled' });
  }
});
