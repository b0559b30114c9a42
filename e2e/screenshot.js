// Takes the README's picture of the sign-in page: starts a throwaway server, opens /login at
// 1000×700 in headless Chromium and saves docs/signin.png (or the path given as the argument).
//
//   cd e2e && TWOFOLD_BIN=../target/release/twofold node screenshot.js [OUTPUT.png]

import { mkdir } from 'node:fs/promises';
import path from 'node:path';

import { launchBrowser } from './lib/browser.js';
import { E2E_DIR, startServer } from './lib/server.js';

const output = path.resolve(process.argv[2] ?? path.join(E2E_DIR, '..', 'docs', 'signin.png'));

const server = await startServer({ name: 'screenshot' });
let browser;
try {
  browser = await launchBrowser();
  const context = await browser.newContext({ baseURL: server.baseURL, viewport: { width: 1000, height: 700 } });
  const page = await context.newPage();
  const response = await page.goto('/login', { waitUntil: 'load' });
  if (response?.status() !== 200) throw new Error(`GET /login answered ${response?.status()}`);
  await mkdir(path.dirname(output), { recursive: true });
  await page.screenshot({ path: output });
  console.log(`Saved ${output}`);
} finally {
  await browser?.close();
  await server.stop();
}
