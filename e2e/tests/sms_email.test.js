// Codes by text message and by email through the real pages in headless Chromium, as the user
// guides describe them: setting up text messages at forced enrollment (seed 001/004), signing in
// with a texted code, verifying the email address and turning on email codes (seed 002),
// turning two-factor authentication off with an emailed code, resetting it from the fallback
// phone (seed 003), and text messages and the app chosen together (seed 001). Codes are read
// from the outbox of the server under test.
//
// One server per database backend; every test has its own users, phone number and browser
// context.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import { launchBrowser, pathOf, signIn, submitForm, watchForProblems, withPage } from '../lib/browser.js';
import { codeSentBy, messagesTo } from '../lib/outbox.js';
import { backends, startServer } from '../lib/server.js';
import { totp } from '../lib/totp.js';

const PASSWORD = 'correct horse battery staple';
const TEST_TIMEOUT = 120_000;
const UNITED_KINGDOM = 'United Kingdom (+44)';

/** CSP violations, script errors, failed requests and error answers the test did not expect. */
const text = async (page, selector) => (await page.locator(selector).innerText()).trim();

/** Clicks a link and waits for the page it leads to. */
async function follow(page, name) {
  await Promise.all([page.waitForEvent('load'), page.getByRole('link', { name, exact: true }).click()]);
}

/** On the phone form: chooses the United Kingdom, types `national` and sends the code. */
async function sendPhoneCode(server, page, national, e164) {
  await page.getByLabel('Country').selectOption({ label: UNITED_KINGDOM });
  await page.getByLabel('Phone number').fill(national);
  return codeSentBy(server, e164, async () => {
    const response = await submitForm(page, { action: '/account/phone', buttonName: 'Send verification code' });
    assert.equal(response.status(), 200);
  });
}

/** Types `code` into the page's code field and submits it with `buttonName`. */
async function enterCode(page, code, { action, buttonName = 'Verify', field = '#code' }) {
  await page.locator(field).fill(code);
  return submitForm(page, { action, buttonName });
}

/** On the recovery codes page: checks there are ten, ticks "I have saved these codes", continues. */
async function saveRecoveryCodes(page) {
  assert.equal(await page.getByRole('heading', { name: 'Save your recovery codes' }).count(), 1);
  assert.equal(await page.locator('#recovery-codes li').count(), 10);
  await page.getByLabel('I have saved these codes').check();
  await Promise.all([page.waitForEvent('load'), page.getByRole('button', { name: 'Continue' }).click()]);
}

for (const backend of backends()) {
  describe(`text message and email code pages (${backend.name})`, () => {
    let server;
    let browser;

    before(async () => {
      server = await startServer({ name: `sms-email-${backend.name}`, databaseUrl: backend.databaseUrl });
      browser = await launchBrowser();
    });

    after(async () => {
      await browser?.close();
      await server?.stop();
    });

    const open = (label, body) => withPage(browser, { baseURL: server.baseURL, label: `${backend.name}-${label}`, viewport: { width: 1000, height: 900 } }, body);

    /** A `--require-2fa` user signs in and sets up text messages; ends on the account page. */
    const enrollByText = async (page, email, national, e164) => {
      await server.addUser(email, { password: PASSWORD, require2fa: true });
      await signIn(page, email, PASSWORD);
      assert.equal(pathOf(page), '/login/enroll');
      await follow(page, /Use text messages \(SMS\)/);
      assert.equal(pathOf(page), '/account/phone');
      const code = await sendPhoneCode(server, page, national, e164);
      assert.match(await text(page, '#code-sent'), /We sent a 6-digit code to \+•+\d\d/);
      await enterCode(page, code, { action: '/account/phone/confirm' });
      await saveRecoveryCodes(page);
      assert.equal(pathOf(page), '/account');
    };

    const signOut = (page) => submitForm(page, { action: '/logout', buttonName: 'Sign out' });

    test('(a) forced enrollment by text message, then signing in with a texted code', { timeout: TEST_TIMEOUT }, async () => {
      const email = 'sasha@example.com';
      await open('a-sms', async (page) => {
        const problems = watchForProblems(page);
        await enrollByText(page, email, '0121 234 5601', '+441212345601');
        assert.equal(await text(page, '#two-factor'), 'Enabled');
        assert.equal(await text(page, '#phone-number'), '+••••••••••01');
        assert.equal(await text(page, '#recovery-codes-left'), '10 left');

        await signOut(page);
        await signIn(page, email, PASSWORD);
        assert.equal(pathOf(page), '/login/verify');
        const code = await codeSentBy(server, '+441212345601', () => submitForm(page, { action: '/login/send-code', buttonName: 'Text me a code' }));
        assert.equal(await text(page, '#code-sent'), 'We sent a 6-digit code to +••••••••••01. It works once, for ten minutes.');
        const verified = await enterCode(page, code, { action: '/login/verify', field: '#sent-code' });
        assert.equal(verified.status(), 303);
        assert.equal(pathOf(page), '/account');
        assert.deepEqual(problems, []);
      });
    });

    test('(b) verify the address from the email, turn on email codes, sign in with one, turn two-factor off', { timeout: TEST_TIMEOUT }, async () => {
      const email = 'emma@example.com';
      await server.addUser(email, { password: PASSWORD });
      await open('b-email', async (page) => {
        const problems = watchForProblems(page);
        await signIn(page, email, PASSWORD);
        assert.equal(pathOf(page), '/account');
        assert.match(await text(page, '#account-email'), /not verified/);

        // The emailed link fills the code in; Verify verifies.
        await codeSentBy(server, email, () => submitForm(page, { action: '/account/email/send-code', buttonName: 'Send verification code' }));
        const { body } = (await messagesTo(server, email)).at(-1);
        const link = /^(http\S+\/account\/email\/verify\?code=\d{6})$/m.exec(body)?.[1];
        assert.ok(link, `a link in: ${body}`);
        await page.goto(link);
        assert.equal(pathOf(page), '/account/email/verify');
        assert.match(await page.locator('#code').inputValue(), /^\d{6}$/);
        await page.goto('/account');
        assert.match(await text(page, '#account-email'), /not verified/, 'opening the link verifies nothing');
        await page.goto(link);
        await submitForm(page, { action: '/account/email/verify', buttonName: 'Verify' });
        assert.equal(pathOf(page), '/account');
        assert.match(await text(page, '#notice'), /Your email address is verified/);
        assert.match(await text(page, '#account-email'), /verified/);
        assert.doesNotMatch(await text(page, '#account-email'), /not verified/);

        // Email codes as the second factor.
        await follow(page, 'Turn on email codes');
        assert.equal(pathOf(page), '/account/email-2fa');
        const enableCode = await codeSentBy(server, email, () => submitForm(page, { action: '/account/email-2fa', buttonName: 'Send verification code' }));
        await enterCode(page, enableCode, { action: '/account/email-2fa/confirm' });
        await saveRecoveryCodes(page);
        assert.equal(await text(page, '#two-factor'), 'Enabled');
        assert.match(await text(page, '#factor-email'), /On: codes go to emma@example\.com/);

        // Signing in with an emailed code.
        await signOut(page);
        await signIn(page, email, PASSWORD);
        assert.equal(pathOf(page), '/login/verify');
        const signInCode = await codeSentBy(server, email, () => submitForm(page, { action: '/login/send-code', buttonName: 'Email me a code' }));
        await enterCode(page, signInCode, { action: '/login/verify', field: '#sent-code' });
        assert.equal(pathOf(page), '/account');

        // Turning two-factor authentication off with an emailed code.
        await follow(page, 'Turn off two-factor');
        assert.equal(pathOf(page), '/account/two-factor/disable');
        const offCode = await codeSentBy(server, email, () => submitForm(page, { action: '/account/two-factor/disable', buttonName: 'Send verification code' }));
        await enterCode(page, offCode, { action: '/account/two-factor/disable/confirm', buttonName: 'Turn off two-factor authentication' });
        assert.equal(pathOf(page), '/account');
        assert.equal(await text(page, '#two-factor'), 'No');
        assert.match(await text(page, '#notice'), /Two-factor authentication is off/);

        await signOut(page);
        await signIn(page, email, PASSWORD);
        assert.equal(pathOf(page), '/account', 'the password alone signs in again');
        assert.deepEqual(problems, []);
      });
    });

    test('(c) "Reset two-factor" from the sign-in page with a code sent to the fallback phone', { timeout: TEST_TIMEOUT }, async () => {
      const email = 'rory@example.com';
      await open('c-reset', async (page) => {
        const problems = watchForProblems(page);
        await enrollByText(page, email, '0121 234 5602', '+441212345602');
        await signOut(page);

        await signIn(page, email, PASSWORD);
        assert.equal(pathOf(page), '/login/verify');
        await follow(page, 'Reset two-factor');
        assert.equal(pathOf(page), '/login/reset');
        assert.match(await page.locator('main').innerText(), /\+••••••••••02/);
        const code = await codeSentBy(server, '+441212345602', () => submitForm(page, { action: '/login/reset', buttonName: 'Send reset SMS code' }));
        const reset = await enterCode(page, code, { action: '/login/reset/confirm', buttonName: 'Reset Two-Factor' });
        assert.equal(reset.status(), 303);
        assert.equal(pathOf(page), '/login/enroll', 'on to choosing a new second factor');
        assert.equal(await page.getByRole('heading', { name: 'Set up two-factor authentication' }).count(), 1);
        await page.goto('/account');
        assert.equal(pathOf(page), '/login/enroll', 'nothing else until a new factor is set up');
        assert.deepEqual(problems, []);
      });
    });

    test('(d) text messages and the app chosen together: the phone first, then the app', { timeout: TEST_TIMEOUT }, async () => {
      const email = 'dana@example.com';
      await server.addUser(email, { password: PASSWORD, require2fa: true });
      await open('d-sms-and-app', async (page) => {
        const problems = watchForProblems(page);
        await signIn(page, email, PASSWORD);
        assert.equal(pathOf(page), '/login/enroll');
        await page.getByText('More options').click();
        await page.getByLabel('Authenticator app').check();
        await page.getByLabel('Text message (SMS)').check();
        await Promise.all([page.waitForEvent('load'), page.getByRole('button', { name: 'Continue' }).click()]);
        assert.equal(pathOf(page), '/account/phone');
        assert.equal(new URL(page.url()).searchParams.get('next'), 'totp');

        const code = await sendPhoneCode(server, page, '0121 234 5603', '+441212345603');
        await enterCode(page, code, { action: '/account/phone/confirm' });
        await saveRecoveryCodes(page);
        assert.equal(pathOf(page), '/account/totp/setup', 'on to the app after the phone');

        await page.getByText('Having trouble scanning? Enter this key').click();
        const secret = (await page.locator('#secret-key').innerText()).replace(/\s/g, '');
        await enterCode(page, totp(secret), { action: '/account/totp/setup' });
        assert.equal(pathOf(page), '/account');
        assert.match(await text(page, '#notice'), /Your authenticator app is set up/);
        assert.match(await text(page, '#factor-totp'), /Added \d{4}-\d\d-\d\d/);
        assert.equal(await text(page, '#phone-number'), '+••••••••••03');
        assert.equal(await text(page, '#recovery-codes-left'), '10 left', 'one set of recovery codes');
        assert.deepEqual(problems, []);
      });
    });
  });
}
