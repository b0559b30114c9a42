// The administrator's flow of seed 004 through the real pages in headless Chromium: the first
// administrator signs in with the temporary password from the server's stdout, chooses a
// password and enrolls an authenticator app; under Administration → Users → New user the
// "Two-Factor Authentication" choice is "No" until set to "Yes", and the list then says
// "Pending setup on next login". The new user signs in with the temporary password handed
// over, chooses a password, is held at enrollment and enrolls; the administrator, signing in
// again with a fresh code, sees "Enabled", resets the user's two-factor from edit mode and sees
// "Pending setup on next login" again. Requiring two-factor of an existing user goes through
// the light-grey link, the confirmation and the blue button to the light blue status bar.
//
// With TWOFOLD_E2E_SCREENSHOTS=1 the user list and the user page are saved to
// e2e/artifacts/admin-users.png and admin-user.png.

import assert from 'node:assert/strict';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';

import { chooseNewPassword, launchBrowser, pathOf, signIn, submitForm, watchForProblems, withPage } from '../lib/browser.js';
import { messagesTo } from '../lib/outbox.js';
import { ARTIFACTS_DIR, backends, startServer } from '../lib/server.js';
import { stepAt, totp, waitForStepAfter } from '../lib/totp.js';

const TEST_TIMEOUT = 240_000;
const ADMIN_PASSWORD = 'the administrator keeps this one';
const USER_PASSWORD = 'nora chose this passphrase';
const SCREENSHOTS = Boolean(process.env.TWOFOLD_E2E_SCREENSHOTS);

/** CSP violations, script errors, failed requests and answers of 400 or more. */
/** From the enrollment choice: sets up the authenticator app; resolves { secret, step }. */
async function enrollAuthenticator(page) {
  assert.equal(pathOf(page), '/login/enroll');
  await Promise.all([page.waitForURL('**/account/totp/setup'), page.getByRole('link', { name: /Use an authenticator app/ }).click()]);
  await page.getByText('Having trouble scanning? Enter this key').click();
  const secret = (await page.locator('#secret-key').innerText()).replace(/\s/g, '');
  const step = stepAt();
  await page.locator('#code').fill(totp(secret, step));
  const response = await submitForm(page, { action: '/account/totp/setup', buttonName: 'Verify' });
  assert.equal(response.status(), 200);
  await page.getByLabel('I have saved these codes').check();
  await Promise.all([page.waitForURL('**/account*'), page.getByRole('button', { name: 'Continue' }).click()]);
  return { secret, step };
}

/** Signs in with a password and a fresh code of `secret` (a later step than `lastStep`). */
async function signInWithCode(page, email, password, secret, lastStep) {
  await signIn(page, email, password);
  assert.equal(pathOf(page), '/login/verify');
  await waitForStepAfter(lastStep);
  const step = stepAt();
  await page.locator('#code').fill(totp(secret, step));
  const response = await submitForm(page, { action: '/login/verify', buttonName: 'Verify' });
  assert.equal(response.status(), 303);
  assert.equal(pathOf(page), '/account');
  return step;
}

async function signOut(page) {
  await submitForm(page, { action: '/logout', buttonName: 'Sign out' });
  assert.equal(pathOf(page), '/login');
}

/** Administration → Users. */
async function openUsers(page) {
  await Promise.all([page.waitForURL('**/admin/users'), page.getByRole('link', { name: 'Administration', exact: true }).click()]);
  assert.equal(await page.getByRole('heading', { name: 'Users', level: 1 }).count(), 1);
}

/** The "Two-Factor Authentication" cell of `email`'s row in the users list. */
function twoFactorCell(page, email) {
  return page.locator('#users tbody tr', { hasText: email }).locator('td.two-factor');
}

/** Users → New user with the given choice; resolves the temporary password shown. */
async function createUser(page, email, twoFactor) {
  await Promise.all([page.waitForURL('**/admin/users/new'), page.getByRole('link', { name: 'New user' }).click()]);
  const select = page.getByLabel('Two-Factor Authentication');
  assert.equal(await select.inputValue(), 'no', 'the form defaults to No');
  assert.equal((await select.locator('option:checked').innerText()).trim(), 'No');
  await page.getByLabel('Email', { exact: true }).fill(email);
  if (twoFactor !== 'No') await select.selectOption({ label: twoFactor });
  const response = await submitForm(page, { action: '/admin/users/new', buttonName: 'Create user' });
  assert.equal(response.status(), 200);
  assert.equal(await page.getByRole('heading', { name: 'User created' }).count(), 1);
  assert.match(await page.locator('.warning').innerText(), /shown only now\. Hand it over in person or through another\s+channel/);
  return (await page.locator('#temporary-password').innerText()).trim();
}

for (const backend of backends()) {
  describe(`administration pages (${backend.name})`, () => {
    let server;
    let browser;

    before(async () => {
      server = await startServer({ name: `admin-${backend.name}`, databaseUrl: backend.databaseUrl });
      browser = await launchBrowser();
    });

    after(async () => {
      await browser?.close();
      await server?.stop();
    });

    const open = (label, body) => withPage(browser, { baseURL: server.baseURL, label: `${backend.name}-${label}`, viewport: { width: 1200, height: 900 } }, body);

    test('seed 004: a new user required to use two-factor, enrolled, then reset', { timeout: TEST_TIMEOUT }, async () => {
      const admin = server.admin;
      assert.ok(admin, 'the first administrator line was printed');
      const email = 'nora@example.com';
      await open('seed-004', async (page) => {
        const problems = watchForProblems(page);

        // The first administrator: temporary password, own password, authenticator app.
        await signIn(page, admin.email, admin.password);
        assert.equal(pathOf(page), '/login/password');
        await chooseNewPassword(page, ADMIN_PASSWORD);
        const { secret: adminSecret, step: adminStep } = await enrollAuthenticator(page);
        assert.equal(pathOf(page), '/account');

        // Administration → Users → New user, Two-Factor "Yes".
        await openUsers(page);
        const temporary = await createUser(page, email, 'Yes');
        assert.match(temporary, /^[A-Za-z0-9]{20}$/);
        const invitations = await messagesTo(server, email);
        assert.equal(invitations.length, 1, 'the user is told an account exists');
        assert.ok(!JSON.stringify(invitations[0]).includes(temporary), 'the password is never emailed');
        await Promise.all([page.waitForURL('**/admin/users'), page.getByRole('link', { name: 'Back to the users' }).click()]);
        assert.equal((await twoFactorCell(page, email).innerText()).trim(), 'Pending setup on next login');
        await signOut(page);

        // The new user: temporary password, own password, forced enrollment.
        await signIn(page, email, temporary);
        assert.equal(pathOf(page), '/login/password');
        await chooseNewPassword(page, USER_PASSWORD);
        assert.equal(pathOf(page), '/login/enroll', 'a required user must enroll');
        assert.equal(await page.getByRole('heading', { name: 'Set up two-factor authentication' }).count(), 1);
        await page.goto('/account');
        assert.equal(pathOf(page), '/login/enroll', 'nothing else first');
        await enrollAuthenticator(page);
        assert.equal((await page.locator('#two-factor').innerText()).trim(), 'Enabled');
        assert.equal(await page.getByRole('link', { name: 'Administration' }).count(), 0, 'no Administration link for users');
        await signOut(page);

        // The administrator again, with a fresh code: Enabled.
        await signInWithCode(page, admin.email, ADMIN_PASSWORD, adminSecret, adminStep);
        await openUsers(page);
        assert.equal((await twoFactorCell(page, email).innerText()).trim(), 'Enabled');
        if (SCREENSHOTS) await page.screenshot({ path: path.join(ARTIFACTS_DIR, 'admin-users.png'), fullPage: true });

        // The user's page → Edit this user → Reset two-factor → confirm: Pending again.
        await Promise.all([page.waitForURL(/\/admin\/users\/[0-9a-f-]{36}$/), page.getByRole('link', { name: email, exact: true }).click()]);
        const userPath = pathOf(page);
        assert.equal((await page.locator('#two-factor-status').innerText()).trim(), 'Enabled');
        assert.equal((await page.locator('#two-factor-methods').innerText()).trim(), 'Authenticator app');
        if (SCREENSHOTS) await page.screenshot({ path: path.join(ARTIFACTS_DIR, 'admin-user.png'), fullPage: true });
        await Promise.all([page.waitForURL(`**${userPath}/edit`), page.getByRole('link', { name: 'Edit this user' }).click()]);
        await Promise.all([page.waitForURL(`**${userPath}/reset-two-factor`), page.getByRole('link', { name: 'Reset two-factor' }).click()]);
        assert.match(await page.locator('#confirm-form').locator('..').innerText(), /removes every second factor of nora@example\.com/);
        const reset = await submitForm(page, { action: `${userPath}/reset-two-factor`, buttonName: 'Reset two-factor' });
        assert.equal(reset.status(), 303);
        assert.equal(pathOf(page), userPath);
        assert.match(await page.locator('.status-bar').innerText(), /second factors of nora@example\.com are removed/);
        assert.equal((await page.locator('#two-factor-status').innerText()).trim(), 'Pending setup on next login');
        assert.equal((await page.locator('#two-factor-methods').innerText()).trim(), 'None');
        assert.deepEqual(problems, [], 'no CSP violations, script errors or failed requests');
      });
    });

    test('seed 004 steps 4 to 8: Require Two-Factor from edit mode', { timeout: TEST_TIMEOUT }, async () => {
      const email = 'otto@example.com';
      const user = await server.addUser(email, { password: USER_PASSWORD });
      const admin = await server.addUser('root@example.com', { password: ADMIN_PASSWORD, admin: true });
      await open('require', async (page) => {
        const problems = watchForProblems(page);
        await signIn(page, admin.email, admin.password);
        await enrollAuthenticator(page);
        await openUsers(page);
        assert.equal((await twoFactorCell(page, email).innerText()).trim(), 'No');

        await Promise.all([page.waitForURL(/\/admin\/users\/[0-9a-f-]{36}$/), page.getByRole('link', { name: email, exact: true }).click()]);
        const userPath = pathOf(page);
        assert.equal(await page.getByRole('heading', { name: 'Two Factor Authentication' }).count(), 1);
        assert.equal((await page.locator('#two-factor-status').innerText()).trim(), 'No');
        await Promise.all([page.waitForURL(`**${userPath}/edit`), page.getByRole('link', { name: 'Edit this user' }).click()]);
        await Promise.all([page.waitForURL(`**${userPath}/require-two-factor`), page.getByRole('link', { name: 'Require Two-Factor' }).click()]);
        assert.ok(await page.getByText('The user will now be required to enroll in Two-Factor Authentication upon log in.').isVisible());
        const button = page.getByRole('button', { name: 'Require Two-Factor' });
        const color = await button.evaluate((element) => getComputedStyle(element).backgroundColor);
        assert.equal(color, 'rgb(36, 86, 214)', 'the blue button');
        const required = await submitForm(page, { action: `${userPath}/require-two-factor`, buttonName: 'Require Two-Factor' });
        assert.equal(required.status(), 303);
        const bar = page.locator('.status-bar');
        assert.equal((await bar.innerText()).trim(), `${email} will set up two-factor authentication at their next sign-in.`);
        assert.equal(await bar.evaluate((element) => getComputedStyle(element).backgroundColor), 'rgb(232, 241, 253)', 'light blue');
        assert.equal((await page.locator('#two-factor-status').innerText()).trim(), 'Pending setup on next login');
        await signOut(page);

        // The user now cannot opt out: signing in leads to enrollment.
        await signIn(page, user.email, user.password);
        assert.equal(pathOf(page), '/login/enroll');
        assert.deepEqual(problems, []);
      });
    });
  });
}
