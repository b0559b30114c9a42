// The authenticator-app flows through the real pages in headless Chromium, as the user guides
// (seeds 000, 002, 004) describe them: a user required to use 2FA signs in, picks the
// authenticator app, scans the QR code (read back here with zbarimg), types the code an
// independent RFC 6238 implementation computes, saves the recovery codes (download, print),
// and from then on signs in with a fresh code or, once each, a recovery code.
//
// One server per database backend; every test has its own users and browser context.

import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { after, before, describe, test } from 'node:test';

import { launchBrowser, pathOf, signIn, submitForm, watchForProblems, withPage } from '../lib/browser.js';
import { backends, startServer } from '../lib/server.js';
import { encodeUnreserved, readQrCode, stepAt, totp, waitForStepAfter } from '../lib/totp.js';

const PASSWORD = 'correct horse battery staple';
const TEST_TIMEOUT = 180_000;
const KNOWN_APPS = [
  'Microsoft Authenticator', 'Google Authenticator', 'FreeOTP', 'Authy', 'Duo Mobile',
  'LastPass Authenticator', 'OneLogin Protect', 'desktop TOTP apps',
];

/** From `/login/enroll`: picks the authenticator app; resolves the key shown in the disclosure. */
async function openSetup(page) {
  await Promise.all([page.waitForURL('**/account/totp/setup'), page.getByRole('link', { name: /Use an authenticator app/ }).click()]);
  await page.getByText('Having trouble scanning? Enter this key').click();
  return (await page.locator('#secret-key').innerText()).replace(/\s/g, '');
}

/** Types the current code of `secret` into the code field and submits it; resolves the step used. */
async function submitCode(page, secret, { action, buttonName = 'Verify' }) {
  const step = stepAt();
  await page.locator('#code').fill(totp(secret, step));
  const response = await submitForm(page, { action, buttonName });
  return { step, response };
}

/** The recovery codes listed on the page. */
async function listedCodes(page) {
  return (await page.locator('#recovery-codes li').allInnerTexts()).map((code) => code.trim());
}

/** Ticks "I have saved these codes" and continues to the account page. */
async function continueToAccount(page) {
  await page.getByLabel('I have saved these codes').check();
  await Promise.all([page.waitForURL('**/account*'), page.getByRole('button', { name: 'Continue' }).click()]);
}

for (const backend of backends()) {
  describe(`authenticator app pages (${backend.name})`, () => {
    let server;
    let browser;

    before(async () => {
      server = await startServer({ name: `totp-${backend.name}`, databaseUrl: backend.databaseUrl });
      browser = await launchBrowser();
    });

    after(async () => {
      await browser?.close();
      await server?.stop();
    });

    const open = (label, body) => withPage(browser, { baseURL: server.baseURL, label: `${backend.name}-${label}`, viewport: { width: 1000, height: 900 } }, body);

    /** Enrolls a new `--require-2fa` user through the pages; resolves { secret, codes, step }. */
    const enrolledUser = async (email) => {
      await server.addUser(email, { password: PASSWORD, require2fa: true });
      return open(`enroll-${email}`, async (page) => {
        await signIn(page, email, PASSWORD);
        const secret = await openSetup(page);
        const { step } = await submitCode(page, secret, { action: '/account/totp/setup' });
        const codes = await listedCodes(page);
        assert.equal(codes.length, 10);
        return { secret, codes, step };
      });
    };

    test('(a) the whole seed flow: enrollment with the QR code, recovery codes, sign-in with a fresh code', { timeout: TEST_TIMEOUT }, async () => {
      const email = 'tina@example.com';
      await server.addUser(email, { password: PASSWORD, require2fa: true });
      await open('a-seed-flow', async (page) => {
        const problems = watchForProblems(page, { allowRefusedPosts: true });
        const first = await signIn(page, email, PASSWORD);
        assert.equal(first.status(), 303);
        assert.equal(pathOf(page), '/login/enroll', 'a required user lands on enrollment');
        const known = await page.locator('#known-apps').innerText();
        for (const name of KNOWN_APPS) assert.ok(known.includes(name), `${name} is named`);

        // The QR code carries the exact otpauth URI of the key in the disclosure.
        const secret = await openSetup(page);
        assert.match(secret, /^[A-Z2-7]{32}$/, '160-bit base32 key');
        const grouped = await page.locator('#secret-key').innerText();
        assert.match(grouped.trim(), /^([A-Z2-7]{4} ){7}[A-Z2-7]{4}$/, 'the key in groups of four');
        const qr = page.locator('#qr .qr-image');
        assert.ok(await qr.isVisible());
        assert.equal(await page.getByRole('img', { name: /QR code/ }).count(), 1, 'the QR code has an accessible name');
        const issuer = new URL(server.baseURL).hostname;
        const uri = await readQrCode(await qr.screenshot());
        assert.equal(uri, `otpauth://totp/${encodeUnreserved(issuer)}:${encodeUnreserved(email)}?secret=${secret}&issuer=${encodeUnreserved(issuer)}&algorithm=SHA1&digits=6&period=30`);
        assert.equal(new URL(uri).searchParams.get('secret'), secret, 'the scanned key is the typed key');

        // A wrong code first: 401, and the field is offered again.
        const right = totp(secret);
        await page.locator('#code').fill(right === '000000' ? '111111' : '000000');
        const wrong = await submitForm(page, { action: '/account/totp/setup', buttonName: 'Verify' });
        assert.equal(wrong.status(), 401);
        assert.equal((await page.locator('.error[role=alert]').innerText()).trim(), 'That code is not right. Check the time on your phone and try the newest code.');

        const { step: enrollStep, response } = await submitCode(page, secret, { action: '/account/totp/setup' });
        assert.equal(response.status(), 200);
        assert.equal(await page.getByRole('heading', { name: 'Save your recovery codes' }).count(), 1);
        const codes = await listedCodes(page);
        assert.equal(codes.length, 10);
        for (const code of codes) assert.match(code, /^[0-9a-z]{4}(-[0-9a-z]{4}){3}$/);

        // Download (.txt): the file holds the ten codes, one a line, under a line naming the account.
        const [download] = await Promise.all([page.waitForEvent('download'), page.getByRole('link', { name: 'Download (.txt)' }).click()]);
        assert.equal(download.suggestedFilename(), 'twofold-recovery-codes.txt');
        const lines = (await readFile(await download.path(), 'utf8')).split('\n');
        assert.match(lines[0], new RegExp(`^Twofold recovery codes for ${email.replace('.', '\\.')}`));
        assert.deepEqual(lines.filter((line) => /^[0-9a-z]{4}-/.test(line)), codes);

        // Print: the button appears with its script and prints; the print layout keeps only the codes.
        const print = page.getByRole('button', { name: 'Print' });
        assert.ok(await print.isVisible(), 'the Print button is shown once its script ran');
        await page.evaluate(() => { window.printed = 0; window.print = () => { window.printed += 1; }; });
        await print.click();
        assert.equal(await page.evaluate(() => window.printed), 1, 'Print calls window.print()');
        await page.emulateMedia({ media: 'print' });
        assert.ok(await page.locator('#recovery-codes').isVisible());
        assert.ok(!(await page.locator('header.top').isVisible()) && !(await page.locator('#codes-saved').isVisible()));
        await page.emulateMedia({ media: 'screen' });

        // Continue needs the box ticked.
        await page.getByRole('button', { name: 'Continue' }).click();
        assert.equal(pathOf(page), '/account/totp/setup', 'not without "I have saved these codes"');
        assert.ok(await page.locator('#saved').evaluate((box) => box.validity.valueMissing));
        await continueToAccount(page);
        assert.equal(pathOf(page), '/account');
        assert.equal((await page.locator('#two-factor').innerText()).trim(), 'Enabled');
        assert.match(await page.locator('#factor-totp').innerText(), /Authenticator app\s+Added \d{4}-\d\d-\d\d \d\d:\d\d UTC/);
        assert.equal((await page.locator('#recovery-codes-left').innerText()).trim(), '10 left');

        // Sign out, sign in: the second step wants a fresh code.
        await submitForm(page, { action: '/logout', buttonName: 'Sign out' });
        assert.equal(pathOf(page), '/login');
        await signIn(page, email, PASSWORD);
        assert.equal(pathOf(page), '/login/verify');
        await page.goto('/account');
        assert.equal(pathOf(page), '/login/verify', 'no account page before the second step');
        await waitForStepAfter(enrollStep);
        const { response: verified } = await submitCode(page, secret, { action: '/login/verify' });
        assert.equal(verified.status(), 303);
        assert.equal(pathOf(page), '/account');
        assert.match(await page.locator('#factor-totp').innerText(), /Last used \d{4}-\d\d-\d\d \d\d:\d\d UTC/);
        assert.deepEqual(problems, [], 'no CSP violations or script errors');
      });
    });

    test('(b) a recovery code signs in once', { timeout: TEST_TIMEOUT }, async () => {
      const email = 'uma@example.com';
      const { codes } = await enrolledUser(email);
      const useRecoveryCode = async (page, code) => {
        await signIn(page, email, PASSWORD);
        assert.equal(pathOf(page), '/login/verify');
        await page.getByText('Use a recovery code instead').click();
        await page.locator('#recovery-code').fill(code);
        return submitForm(page, { action: '/login/verify', buttonName: 'Use recovery code' });
      };
      await open('b-recovery-code', async (page) => {
        const first = await useRecoveryCode(page, codes[0]);
        assert.equal(first.status(), 303);
        assert.equal(pathOf(page), '/account');
        assert.equal((await page.locator('#recovery-codes-left').innerText()).trim(), '9 left');
        await submitForm(page, { action: '/logout', buttonName: 'Sign out' });

        const again = await useRecoveryCode(page, codes[0]);
        assert.equal(again.status(), 401, 'a used recovery code is refused');
        assert.equal(pathOf(page), '/login/verify');
        assert.equal((await page.locator('.error[role=alert]').innerText()).trim(), 'That code is not right.');
        assert.ok(await page.locator('#recovery-code').isVisible(), 'the recovery-code form stays open');
      });
    });

    test('(c) changing the authenticator asks for the password; new recovery codes too', { timeout: TEST_TIMEOUT }, async () => {
      const email = 'vera@example.com';
      const { secret: oldSecret, step: enrollStep } = await enrolledUser(email);
      await open('c-change', async (page) => {
        await signIn(page, email, PASSWORD);
        await waitForStepAfter(enrollStep);
        const { step } = await submitCode(page, oldSecret, { action: '/login/verify' });
        assert.equal(pathOf(page), '/account');

        await Promise.all([page.waitForURL('**/account/totp/change'), page.getByRole('link', { name: 'Change authenticator' }).click()]);
        await page.locator('#password').fill('not the password at all');
        const refused = await submitForm(page, { action: '/account/totp/change', buttonName: 'Retrieve new code' });
        assert.equal(refused.status(), 401);
        assert.equal((await page.locator('.error[role=alert]').innerText()).trim(), 'The password is not right.');
        await page.locator('#password').fill(PASSWORD);
        await submitForm(page, { action: '/account/totp/change', buttonName: 'Retrieve new code' });
        await page.getByText('Having trouble scanning? Enter this key').click();
        const newSecret = (await page.locator('#secret-key').innerText()).replace(/\s/g, '');
        assert.notEqual(newSecret, oldSecret);
        await waitForStepAfter(step);
        const { response } = await submitCode(page, newSecret, { action: '/account/totp/setup' });
        assert.equal(response.status(), 303, 'a replacement brings no new recovery codes');
        assert.equal(pathOf(page), '/account');
        assert.match(await page.locator('.notice').innerText(), /new authenticator app is set up/);

        await page.locator('#recovery-password').fill(PASSWORD);
        const made = await submitForm(page, { action: '/account/recovery-codes', buttonName: 'Create new recovery codes' });
        assert.equal(made.status(), 200);
        assert.equal((await listedCodes(page)).length, 10);
        await continueToAccount(page);
        assert.equal((await page.locator('#recovery-codes-left').innerText()).trim(), '10 left');
      });
    });
  });
}
