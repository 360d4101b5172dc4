// What the browser tests share: Debian's Chromium through playwright-core (never a downloaded
// browser), with the flags this workplace needs, and JupyterLab opened on a clean workspace.

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
