// Takes the README's pictures: starts a throwaway server and saves, from headless Chromium,
//   - the sign-in page at 1000×700 to docs/signin.png, and
//   - the authenticator-app set-up (QR code shown, "Having trouble scanning?" open) at 1000×900
//     to docs/enroll.png, as a user required to use 2FA sees it after signing in.
//
//   cd e2e && TWOFOLD_BIN=../target/release/twofold node screenshot.js             # both pictures
//   node screenshot.js OUTPUT.png                                                  # sign-in only
//   node screenshot.js signin|enroll [OUTPUT.png]                                  # one of them

import { mkdir } from 'node:fs/promises';
import path from 'node:path';

import { launchBrowser, pathOf, signIn } from './lib/browser.js';
import { E2E_DIR, startServer } from './lib/server.js';

const DOCS = path.join(E2E_DIR, '..', 'docs');

const PICTURES = {
  signin: {
    file: 'signin.png',
    viewport: { width: 1000, height: 700 },
    async show(page) {
      const response = await page.goto('/login', { waitUntil: 'load' });
      if (response?.status() !== 200) throw new Error(`GET /login answered ${response?.status()}`);
    },
  },
  enroll: {
    file: 'enroll.png',
    viewport: { width: 1000, height: 900 },
    async show(page, server) {
      const user = await server.addUser('alice@example.com', { password: 'correct horse battery staple', require2fa: true });
      await signIn(page, user.email, user.password);
      if (pathOf(page) !== '/login/enroll') throw new Error(`sign-in led to ${pathOf(page)}, not /login/enroll`);
      await Promise.all([page.waitForURL('**/account/totp/setup'), page.getByRole('link', { name: /Use an authenticator app/ }).click()]);
      await page.getByText('Having trouble scanning? Enter this key').click();
      await page.locator('#secret-key').waitFor({ state: 'visible' });
      // The page is as the user first sees it: nothing typed, no field focused.
      await page.locator('#code').blur();
    },
  },
};

const [first, second] = process.argv.slice(2);
let jobs;
if (first === undefined) jobs = Object.keys(PICTURES).map((name) => [name, path.join(DOCS, PICTURES[name].file)]);
else if (PICTURES[first]) jobs = [[first, path.resolve(second ?? path.join(DOCS, PICTURES[first].file))]];
else jobs = [['signin', path.resolve(first)]];

const server = await startServer({ name: 'screenshot' });
let browser;
try {
  browser = await launchBrowser();
  for (const [name, output] of jobs) {
    const picture = PICTURES[name];
    const context = await browser.newContext({ baseURL: server.baseURL, viewport: picture.viewport });
    try {
      const page = await context.newPage();
      await picture.show(page, server);
      await mkdir(path.dirname(output), { recursive: true });
      await page.screenshot({ path: output });
      console.log(`Saved ${output}`);
    } finally {
      await context.close();
    }
  }
} finally {
  await browser?.close();
  await server.stop();
}
