// Headless Chromium (Debian's, never a downloaded build) through playwright-core, and small page
// helpers shared by the tests.

import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { chromium } from 'playwright-core';

import { ARTIFACTS_DIR, slug } from './server.js';

/** The browser binary: $CHROMIUM_PATH, else Debian's package. */
export const CHROMIUM_PATH = process.env.CHROMIUM_PATH || '/usr/bin/chromium';

export const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

export function launchBrowser() {
  return chromium.launch({ executablePath: CHROMIUM_PATH, args: CHROMIUM_ARGS });
}

/**
 * Runs `body(page, context)` in a fresh browser context (its own cookies) on `baseURL`. On
 * failure, a full-page screenshot goes to e2e/artifacts/<label>.png before the error is rethrown.
 */
export async function withPage(browser, { baseURL, label, viewport = { width: 1000, height: 700 } }, body) {
  const context = await browser.newContext({ baseURL, viewport });
  const page = await context.newPage();
  try {
    return await body(page, context);
  } catch (error) {
    try {
      await mkdir(ARTIFACTS_DIR, { recursive: true });
      const file = path.join(ARTIFACTS_DIR, `${slug(label)}.png`);
      await page.screenshot({ path: file, fullPage: true, timeout: 5_000 });
      error.message += `\n(screenshot of the page at ${page.url()}: ${file})`;
    } catch {
      // no screenshot then; the original failure matters more
    }
    throw error;
  } finally {
    await context.close().catch(() => {});
  }
}

/** The pathname of the page's current URL. */
export function pathOf(page) {
  return new URL(page.url()).pathname;
}

/**
 * Clicks the submit button named `buttonName` and waits for the POST to `action` to be answered
 * and for the page it leads to (after any redirects) to load. Resolves the POST's response (its
 * status is the one the form submission got, e.g. 303, 401, 422).
 */
export async function submitForm(page, { action, buttonName }) {
  const postResponse = page.waitForResponse(
    (response) => response.request().method() === 'POST' && new URL(response.url()).pathname === action,
  );
  const loaded = page.waitForEvent('load');
  await page.getByRole('button', { name: buttonName, exact: true }).click();
  const [response] = await Promise.all([postResponse, loaded]);
  return response;
}

/** Fills the sign-in form and submits it; resolves the POST /login response. */
export async function signIn(page, email, password) {
  if (pathOf(page) !== '/login') await page.goto('/login');
  await page.locator('#email').fill(email);
  await page.locator('#password').fill(password);
  return submitForm(page, { action: '/login', buttonName: 'Sign in' });
}

/** Fills and submits the new-password form; resolves the POST /login/password response. */
export async function chooseNewPassword(page, newPassword) {
  await page.locator('#new_password').fill(newPassword);
  return submitForm(page, { action: '/login/password', buttonName: 'Save password' });
}

/** The session cookie (twofold_session, or its __Host- form under https), or undefined. */
export async function sessionCookie(context) {
  const cookies = await context.cookies();
  return cookies.find((cookie) => cookie.name === 'twofold_session' || cookie.name === '__Host-twofold_session');
}

/**
 * Collects what should not happen on a page: console errors, script errors, failed requests and
 * 4xx/5xx responses (but `/favicon.ico`). With `allowRefusedPosts`, a 401 answer to a form POST
 * (a wrong code the test typed on purpose) is expected too. Returns the live list.
 */
export function watchForProblems(page, { allowRefusedPosts = false } = {}) {
  const problems = [];
  page.on('console', (message) => {
    if (message.type() === 'error' && !message.text().startsWith('Failed to load resource')) problems.push(message.text());
  });
  page.on('pageerror', (error) => problems.push(error.message));
  page.on('requestfailed', (request) => problems.push(`${request.url()}: ${request.failure()?.errorText}`));
  page.on('response', (response) => {
    const { pathname } = new URL(response.url());
    const refusedPost = allowRefusedPosts && response.status() === 401 && response.request().method() === 'POST';
    if (response.status() >= 400 && pathname !== '/favicon.ico' && !refusedPost) problems.push(`${response.status()} ${pathname}`);
  });
  return problems;
}
