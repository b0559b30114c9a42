// Sign-in through the real pages in headless Chromium: password sign-in, the temporary-password
// step, the enrollment gate, cookies, security headers and CSRF.
//
// One server (fresh data directory) per database backend; every test uses its own users and
// its own browser context, so tests do not depend on each other's order.

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, test } from 'node:test';

import { chooseNewPassword, launchBrowser, pathOf, sessionCookie, signIn, submitForm, withPage } from '../lib/browser.js';
import { backends, startServer } from '../lib/server.js';

const WRONG_CREDENTIALS = 'The email or password is not right.';
const TEST_TIMEOUT = 120_000;

for (const backend of backends()) {
  describe(`sign-in pages (${backend.name})`, () => {
    let server;
    let browser;

    before(async () => {
      server = await startServer({ name: `signin-${backend.name}`, databaseUrl: backend.databaseUrl });
      browser = await launchBrowser();
    });

    after(async () => {
      await browser?.close();
      await server?.stop();
    });

    const open = (label, body) => withPage(browser, { baseURL: server.baseURL, label: `${backend.name}-${label}` }, body);

    const accountEmail = async (page) => (await page.locator('#account-email').innerText()).trim().split(/\s+/)[0];
    const twoFactor = async (page) => (await page.locator('#two-factor').innerText()).trim();
    const errorText = async (page) => (await page.locator('.error[role=alert]').innerText()).trim();

    test('(a) a CLI-created user signs in, sees the account, and signs out for good', { timeout: TEST_TIMEOUT }, async () => {
      const user = await server.addUser('alice@example.com', { password: 'correct horse battery staple' });
      await open('a-sign-in-and-out', async (page, context) => {
        await page.goto('/login');
        assert.equal(await page.getByRole('heading', { name: 'Sign in' }).count(), 1);

        const response = await signIn(page, user.email, user.password);
        assert.equal(response.status(), 303, 'the sign-in POST redirects');
        assert.equal(pathOf(page), '/account');
        assert.equal(await accountEmail(page), user.email);
        assert.equal(await twoFactor(page), 'No');
        const signedIn = await sessionCookie(context);
        assert.ok(signedIn?.value, 'a session cookie is set after sign-in');

        await submitForm(page, { action: '/logout', buttonName: 'Sign out' });
        assert.equal(pathOf(page), '/login', 'sign-out lands on the sign-in page');
        assert.equal((await sessionCookie(context))?.value || undefined, undefined, 'sign-out clears the session cookie');

        await page.goto('/account');
        assert.equal(pathOf(page), '/login', '/account redirects to /login after sign-out');

        // The old token is dead on the server too, not only forgotten by the browser.
        await context.addCookies([signedIn]);
        await page.goto('/account');
        assert.equal(pathOf(page), '/login', 'the signed-out session token no longer opens /account');
      });
    });

    test('(b) a wrong password and an unknown email get the same 401 and the same message', { timeout: TEST_TIMEOUT }, async () => {
      const user = await server.addUser('bob@example.com', { password: 'purple monkey dishwasher lamp' });
      await open('b-wrong-credentials', async (page, context) => {
        const wrongPassword = await signIn(page, user.email, 'not the right passphrase at all');
        assert.equal(wrongPassword.status(), 401, 'wrong password: status of the form POST');
        assert.equal(pathOf(page), '/login');
        const wrongPasswordText = await errorText(page);

        const unknownEmail = await signIn(page, 'nobody-here@example.com', 'purple monkey dishwasher lamp');
        assert.equal(unknownEmail.status(), 401, 'unknown email: status of the form POST');
        assert.equal(pathOf(page), '/login');
        const unknownEmailText = await errorText(page);

        assert.equal(wrongPasswordText, WRONG_CREDENTIALS);
        assert.equal(unknownEmailText, wrongPasswordText, 'the two failures are indistinguishable');
        assert.equal(await sessionCookie(context), undefined, 'no session cookie after failed sign-ins');

        // The form is still usable: the right password still works afterwards.
        const ok = await signIn(page, user.email, user.password);
        assert.equal(ok.status(), 303);
        assert.equal(pathOf(page), '/account');
      });
    });

    test('(c) a temporary password must be replaced; weak ones are refused; the old one stops working', { timeout: TEST_TIMEOUT }, async () => {
      const user = await server.addUser('dave@example.com');
      assert.ok(user.temporary && user.password.length >= 8, 'the CLI printed a temporary password');
      const newPassword = 'tangerine bicycle across the harbour';
      await open('c-temporary-password', async (page, context) => {
        const first = await signIn(page, user.email, user.password);
        assert.equal(first.status(), 303);
        assert.equal(pathOf(page), '/login/password');
        assert.equal(await page.getByRole('heading', { name: 'Choose a new password' }).count(), 1);

        const weak = await chooseNewPassword(page, 'password1');
        assert.equal(weak.status(), 422, 'a common password is refused with 422');
        assert.equal(pathOf(page), '/login/password');
        assert.match(await errorText(page), /too common/);

        await page.goto('/account');
        assert.equal(pathOf(page), '/login/password', 'no account page before the password is changed');

        const good = await chooseNewPassword(page, newPassword);
        assert.equal(good.status(), 303);
        assert.equal(pathOf(page), '/account');
        assert.equal(await accountEmail(page), user.email);
        assert.equal(await twoFactor(page), 'No');

        await submitForm(page, { action: '/logout', buttonName: 'Sign out' });
        assert.equal(pathOf(page), '/login');
        assert.equal(await sessionCookie(context), undefined);

        const old = await signIn(page, user.email, user.password);
        assert.equal(old.status(), 401, 'the temporary password no longer works');
        assert.equal(await errorText(page), WRONG_CREDENTIALS);

        const again = await signIn(page, user.email, newPassword);
        assert.equal(again.status(), 303);
        assert.equal(pathOf(page), '/account', 'the new password signs straight in');
      });
    });

    test('(d) the first administrator changes the temporary password and is held at enrollment', { timeout: TEST_TIMEOUT }, async () => {
      const admin = server.admin;
      assert.ok(admin, `twofold serve printed the first-administrator line on stdout:\n${server.stdout()}`);
      assert.equal(admin.email, 'admin@localhost');
      await open('d-first-admin', async (page) => {
        const first = await signIn(page, admin.email, admin.password);
        assert.equal(first.status(), 303);
        assert.equal(pathOf(page), '/login/password');

        const changed = await chooseNewPassword(page, 'admin keeps a long and quiet passphrase');
        assert.equal(changed.status(), 303);
        assert.equal(pathOf(page), '/login/enroll');
        assert.equal(await page.getByRole('heading', { name: 'Set up two-factor authentication' }).count(), 1);

        await page.goto('/account');
        assert.equal(pathOf(page), '/login/enroll', '/account sends an unenrolled administrator back to enrollment');
        assert.equal(await page.getByRole('heading', { name: 'Set up two-factor authentication' }).count(), 1);
      });
    });

    test('(e) the session cookie is HttpOnly, SameSite=Lax, and rotated by the password change', { timeout: TEST_TIMEOUT }, async () => {
      const user = await server.addUser('erin@example.com');
      await open('e-session-cookie', async (page, context) => {
        await signIn(page, user.email, user.password);
        assert.equal(pathOf(page), '/login/password');
        const before = await sessionCookie(context);
        assert.ok(before?.value, 'a session cookie exists during the password step');
        assert.equal(before.name, 'twofold_session');
        assert.equal(before.httpOnly, true, 'HttpOnly');
        assert.equal(before.sameSite, 'Lax', 'SameSite=Lax');

        const csrf = (await context.cookies()).find((cookie) => cookie.name === 'twofold_csrf');
        assert.ok(csrf, 'the CSRF cookie is set');
        assert.equal(csrf.httpOnly, true, 'CSRF cookie HttpOnly');
        assert.equal(csrf.sameSite, 'Strict', 'CSRF cookie SameSite=Strict');

        await chooseNewPassword(page, 'seven lanterns over a quiet canal');
        assert.equal(pathOf(page), '/account');
        const afterChange = await sessionCookie(context);
        assert.ok(afterChange?.value, 'a session cookie exists after the password change');
        assert.equal(afterChange.httpOnly, true, 'HttpOnly after rotation');
        assert.equal(afterChange.sameSite, 'Lax', 'SameSite=Lax after rotation');
        assert.notEqual(afterChange.value, before.value, 'the session token is rotated');

        // The pre-rotation token is dead: it opens neither the account nor the password step.
        await context.clearCookies();
        await context.addCookies([before]);
        await page.goto('/account');
        assert.equal(pathOf(page), '/login', 'the token from before the password change no longer works');
      });
    });

    test('(f) the sign-in page sends the security headers and renders under its CSP', { timeout: TEST_TIMEOUT }, async () => {
      await open('f-security-headers', async (page) => {
        const problems = [];
        page.on('console', (message) => { if (message.type() === 'error') problems.push(message.text()); });
        page.on('pageerror', (error) => problems.push(error.message));
        page.on('requestfailed', (request) => problems.push(`${request.url()}: ${request.failure()?.errorText}`));

        const response = await page.goto('/login');
        assert.equal(response.status(), 200);
        const headers = response.headers();
        const csp = headers['content-security-policy'] ?? '';
        assert.ok(csp.includes("frame-ancestors 'none'"), `CSP has frame-ancestors 'none': ${csp}`);
        assert.ok(!csp.includes("'unsafe-inline'"), `CSP has no 'unsafe-inline': ${csp}`);
        assert.equal(headers['x-content-type-options'], 'nosniff');
        assert.equal(headers['referrer-policy'], 'no-referrer');

        // The stylesheet loads under that policy (the card is styled) and nothing is blocked.
        const cardMaxWidth = await page.locator('main.card').evaluate((element) => getComputedStyle(element).maxWidth);
        assert.notEqual(cardMaxWidth, 'none', 'app.css applied to the card');
        assert.deepEqual(problems, [], 'no console errors, blocked resources or failed requests');
      });
    });

    test('(g) a sign-in POST with an empty or wrong CSRF token gets 403 and no session', { timeout: TEST_TIMEOUT }, async () => {
      const user = await server.addUser('frank@example.com', { password: 'marble owls sing at noon' });
      await open('g-csrf', async (page, context) => {
        await page.goto('/login'); // the browser now has its CSRF cookie
        const credentials = { email: user.email, password: user.password };

        const empty = await page.request.post('/login', { form: { csrf: '', ...credentials }, maxRedirects: 0 });
        assert.equal(empty.status(), 403, 'empty CSRF token');
        const forged = randomBytes(32).toString('base64url');
        const wrong = await page.request.post('/login', { form: { csrf: forged, ...credentials }, maxRedirects: 0 });
        assert.equal(wrong.status(), 403, 'a well-formed token that is not the cookie\'s');
        assert.equal(await sessionCookie(context), undefined, 'refused POSTs set no session');

        // Control: the same request with the page's token goes through, so the 403s were the token's.
        const token = await page.locator('input[name=csrf]').inputValue();
        const right = await page.request.post('/login', { form: { csrf: token, ...credentials }, maxRedirects: 0 });
        assert.equal(right.status(), 303);
        assert.equal(right.headers().location, '/account');
      });
    });

    test(
      '(g) a sign-in POST lacking the csrf field gets 403',
      { timeout: TEST_TIMEOUT },
      async () => {
        const user = await server.addUser('grace@example.com', { password: 'marble owls sing at midnight' });
        await open('g-csrf-missing-field', async (page, context) => {
          await page.goto('/login');
          const missing = await page.request.post('/login', {
            form: { email: user.email, password: user.password },
            maxRedirects: 0,
          });
          assert.equal(await sessionCookie(context), undefined, 'no session without a CSRF token');
          assert.equal(missing.status(), 403, `POST /login without csrf: ${missing.status()} ${(await missing.text()).slice(0, 120)}`);
        });
      },
    );
  });
}
