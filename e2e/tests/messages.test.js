// Secure messages (seed 000) through the real pages in headless Chromium: a sender writes a
// message with an attachment to an address that has no account; the email names the sender and
// the subject and carries an invitation link, never the body or the file. The recipient opens
// the link in a browser of their own, presses the button, chooses a password, is made to set up
// an authenticator app ("Having trouble scanning?" shows the key), saves the recovery codes and
// lands on the message, whose attachment downloads byte for byte. The link then works no more;
// the sender's list shows the read receipt and the sender is emailed "Read: …"; neither the
// body nor the file is anywhere at rest in plain text; anyone else is told there is no such
// message. Lastly an administrator creates a user whose temporary password goes out as a
// secure message, which the user reads after enrolling and then signs in with.
//
// One server per database backend; every test has its own users and browser contexts.

import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { promisify } from 'node:util';

import { chooseNewPassword, launchBrowser, pathOf, signIn, submitForm, watchForProblems, withPage } from '../lib/browser.js';
import { messagesTo } from '../lib/outbox.js';
import { backends, startServer } from '../lib/server.js';
import { stepAt, totp, waitForStepAfter } from '../lib/totp.js';

const TEST_TIMEOUT = 300_000;
const PASSWORD = 'correct horse battery staple';
const RECIPIENT_PASSWORD = 'the recipient picked this passphrase';
const UUID = '[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}';

/** A regular expression that matches `text` literally. */
function literal(text) {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** Clicks the link named `name` and waits for the page it leads to (after any redirects). */
async function follow(page, name) {
  await Promise.all([page.waitForEvent('load'), page.getByRole('link', { name, exact: true }).first().click()]);
}

/**
 * From the enrollment choice: sets up the authenticator app with the key of "Having trouble
 * scanning?", ticks "I have saved these codes" and continues to wherever that leads (the
 * account page, or the message the browser asked for). Resolves { secret, step }.
 */
async function enrollAuthenticator(page) {
  assert.equal(pathOf(page), '/login/enroll');
  await Promise.all([page.waitForURL('**/account/totp/setup'), page.getByRole('link', { name: /Use an authenticator app/ }).click()]);
  await page.getByText('Having trouble scanning? Enter this key').click();
  const secret = (await page.locator('#secret-key').innerText()).replace(/\s/g, '');
  assert.match(secret, /^[A-Z2-7]{32}$/);
  const step = stepAt();
  await page.locator('#code').fill(totp(secret, step));
  const response = await submitForm(page, { action: '/account/totp/setup', buttonName: 'Verify' });
  assert.equal(response.status(), 200);
  assert.equal(await page.locator('#recovery-codes li').count(), 10, 'ten recovery codes');
  await page.getByLabel('I have saved these codes').check();
  await Promise.all([page.waitForEvent('load'), page.getByRole('button', { name: 'Continue' }).click()]);
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
  return step;
}

async function signOut(page) {
  await submitForm(page, { action: '/logout', buttonName: 'Sign out' });
  assert.equal(pathOf(page), '/login');
}

/** The visible text of the page's main content. */
async function mainText(page) {
  return page.locator('main').innerText();
}

/** Presses Continue on an invitation's landing page; resolves the POST's response. */
async function acceptInvitation(page, id) {
  assert.equal(await page.locator(`form#accept-invitation[action="/messages/${id}/invitation"]`).count(), 1, 'the landing page has the invitation form');
  return submitForm(page, { action: `/messages/${id}/invitation`, buttonName: 'Continue' });
}

/** The invitation link in a message notification: { link, id, token }. */
function invitationIn(email, baseURL) {
  const match = new RegExp(`^(${literal(baseURL)}/messages/(${UUID})\\?invitation=([A-Za-z0-9_-]+))$`, 'm').exec(email.body);
  assert.ok(match, `an invitation link in: ${email.body}`);
  return { link: match[1], id: match[2], token: match[3] };
}

/** Every file under `directory`, recursively. */
async function filesUnder(directory) {
  const entries = await readdir(directory, { withFileTypes: true });
  const files = await Promise.all(entries.map((entry) => {
    const full = path.join(directory, entry.name);
    return entry.isDirectory() ? filesUnder(full) : [full];
  }));
  return files.flat();
}

/**
 * Asserts that none of `needles` ([label, Buffer]) is stored in plain text: not in any file of
 * the data directory (SQLite database, its WAL and shared memory, master key, outbox), nor, on
 * PostgreSQL, in a dump of the database (where bytea shows as hex, so the hex is looked for
 * too). `control` is a string the database does hold in plain text (an email address), to show
 * that the search would find one.
 */
async function assertNothingAtRest(server, needles, control) {
  const postgres = server.databaseUrl.startsWith('postgres');
  const files = await filesUnder(server.dataDir);
  assert.ok(files.some((file) => file.includes(`${path.sep}outbox${path.sep}`)), 'the outbox is among the files searched');
  if (!postgres) assert.ok(files.some((file) => file.endsWith('twofold.db')), 'the SQLite database is among the files searched');
  let controlSeen = false;
  for (const file of files) {
    const bytes = await readFile(file);
    for (const [label, needle] of needles) {
      assert.ok(!bytes.includes(needle), `${label} is not in ${path.relative(server.dataDir, file)}`);
    }
    if (!file.includes(`${path.sep}outbox${path.sep}`) && bytes.includes(Buffer.from(control))) controlSeen = true;
  }
  if (postgres) {
    const { stdout: dump } = await promisify(execFile)('pg_dump', ['--data-only', '--no-owner', server.databaseUrl], { maxBuffer: 256 * 1024 * 1024, encoding: 'buffer' });
    const lower = Buffer.from(dump.toString('latin1').toLowerCase(), 'latin1');
    for (const [label, needle] of needles) {
      assert.ok(!dump.includes(needle), `${label} is not in the PostgreSQL database`);
      assert.ok(!lower.includes(Buffer.from(needle.toString('hex'))), `${label} is not in the PostgreSQL database (as hex)`);
    }
    controlSeen = dump.includes(Buffer.from(control));
  }
  assert.ok(controlSeen, `the search finds what the database holds in plain text (${control})`);
}

/** The message page's attachment link for `name`. */
function attachmentLink(page, name) {
  return page.locator('#attachments').getByRole('link', { name, exact: true });
}

for (const backend of backends()) {
  describe(`secure messages (${backend.name})`, () => {
    let server;
    let browser;

    before(async () => {
      server = await startServer({ name: `messages-${backend.name}`, databaseUrl: backend.databaseUrl });
      browser = await launchBrowser();
    });

    after(async () => {
      await browser?.close();
      await server?.stop();
    });

    const open = (label, body) => withPage(browser, { baseURL: server.baseURL, label: `messages-${backend.name}-${label}`, viewport: { width: 1200, height: 900 } }, body);

    test('seed 000: a message to a new address, read after enrolling, with its attachment', { timeout: TEST_TIMEOUT }, async (t) => {
      const sender = await server.addUser('sam@example.com', { password: PASSWORD, require2fa: true });
      const recipientEmail = 'rita@example.net';
      const subject = 'Your contract documents';
      const secret = `vault-${randomBytes(12).toString('hex')}`;
      const body = `Hello Rita,\n\nthe code of the vault is ${secret}.\nThe signed contract is attached.\n\nSam`;
      const fileName = `contract-${randomBytes(4).toString('hex')}.pdf`;
      const fileMarker = `attachment-content-${randomBytes(12).toString('hex')}`;
      const fileBytes = Buffer.concat([Buffer.from(`%PDF-1.4 ${fileMarker}\n`), randomBytes(3000), Buffer.from('\n%%EOF\n')]);

      // Each step needs the ones before; once one fails, the rest are skipped.
      let failed = false;
      const step = async (name, run) => t.test(name, async (st) => {
        if (failed) {
          st.skip('an earlier step failed');
          return;
        }
        try {
          await run();
        } catch (error) {
          failed = true;
          throw error;
        }
      });

      await open('sender', async (senderPage) => {
        let id;
        let link;
        let recipientStep;
        let recipientSecret;

        await step('1. the sender enrolls, writes a message with an attachment and sends it', async () => {
          const problems = watchForProblems(senderPage);
          await signIn(senderPage, sender.email, sender.password);
          await enrollAuthenticator(senderPage);
          assert.equal(pathOf(senderPage), '/account');

          await follow(senderPage, 'Messages');
          assert.equal(pathOf(senderPage), '/messages');
          await follow(senderPage, 'New message');
          assert.equal(pathOf(senderPage), '/messages/new');
          await senderPage.getByLabel('To', { exact: true }).fill(recipientEmail);
          await senderPage.getByLabel('Subject', { exact: true }).fill(subject);
          await senderPage.getByLabel('Message', { exact: true }).fill(body);
          await senderPage.getByLabel('Files', { exact: true }).setInputFiles({ name: fileName, mimeType: 'application/pdf', buffer: fileBytes });
          const sent = await submitForm(senderPage, { action: '/messages/new', buttonName: 'Send' });
          assert.equal(sent.status(), 303);
          assert.equal(pathOf(senderPage), '/messages');
          assert.match(await mainText(senderPage), /Your message is sent/);
          const row = senderPage.locator('tr', { hasText: recipientEmail });
          assert.equal(await row.count(), 1, 'the sent list has the message');
          assert.match(await row.innerText(), new RegExp(literal(subject)));
          assert.match(await row.innerText(), /Not read yet/);
          assert.deepEqual(problems, []);
        });

        await step('2. the email names the sender and the subject and links to the message, without its content', async () => {
          const emails = await messagesTo(server, recipientEmail);
          assert.equal(emails.length, 1, 'one email to the recipient');
          const [email] = emails;
          assert.match(email.subject, new RegExp(literal(sender.email)));
          assert.match(email.subject, new RegExp(literal(subject)));
          assert.match(email.body, new RegExp(literal(sender.email)));
          assert.match(email.body, new RegExp(literal(subject)));
          ({ link, id } = invitationIn(email, server.baseURL));
          const whole = JSON.stringify(email);
          for (const [label, needle] of [['the body', secret], ['the body', 'vault'], ['the file name', fileName], ['the file', fileMarker]]) {
            assert.ok(!whole.includes(needle), `${label} is not in the email`);
          }
        });

        await step('3. the recipient opens the link, chooses a password, enrolls and reads the message', async () => {
          await open('recipient', async (page) => {
            const problems = watchForProblems(page);
            const landing = await page.goto(link);
            assert.equal(landing.status(), 200);
            assert.equal(await page.getByRole('heading', { name: 'You have a secure message' }).count(), 1);
            assert.equal((await page.locator('#invitation-email').innerText()).trim(), recipientEmail);
            assert.ok(!(await page.content()).includes(secret), 'nothing of the message before the button');
            // Fetching the link again (as a mail scanner would) spends nothing.
            assert.equal((await page.reload()).status(), 200);
            assert.equal(await page.getByRole('heading', { name: 'You have a secure message' }).count(), 1);

            const accepted = await acceptInvitation(page, id);
            assert.equal(accepted.status(), 303);
            assert.equal(pathOf(page), '/login/password', 'the invited person chooses a password first');
            const chosen = await chooseNewPassword(page, RECIPIENT_PASSWORD);
            assert.equal(chosen.status(), 303);
            assert.equal(pathOf(page), '/login/enroll', 'then must set up a second factor');
            await page.goto(`/messages/${id}`);
            assert.equal(pathOf(page), '/login/enroll', 'nothing is shown before that');

            ({ secret: recipientSecret, step: recipientStep } = await enrollAuthenticator(page));
            assert.equal(pathOf(page), `/messages/${id}`, 'the enrolled recipient lands on the message');
            assert.equal((await page.locator('#message-body').innerText()).replace(/\r\n/g, '\n').trimEnd(), body, 'the body is shown as written');
            assert.equal((await page.locator('#message-from').innerText()).trim(), sender.email, 'the sender is named');
            assert.equal((await page.locator('h1#message-subject').innerText()).trim(), subject, 'the subject is the heading');

            const [download] = await Promise.all([page.waitForEvent('download'), attachmentLink(page, fileName).click()]);
            assert.equal(download.suggestedFilename(), fileName);
            const downloaded = await readFile(await download.path());
            assert.ok(downloaded.equals(fileBytes), `the downloaded file is the uploaded one (${downloaded.length} bytes, ${fileBytes.length} uploaded)`);

            // The inbox lists it, from the sender.
            await follow(page, 'Messages');
            const row = page.locator('tr', { hasText: sender.email });
            assert.equal(await row.count(), 1, 'the inbox has the message');
            assert.match(await row.innerText(), new RegExp(literal(subject)));
            assert.deepEqual(problems, []);
          });
        });

        await step('4. the invitation link works once; signing in with the password and a code leads to the message', async () => {
          await open('link-again', async (page) => {
            const again = await page.goto(link);
            assert.equal(again.status(), 404);
            assert.equal(await page.getByRole('heading', { name: 'This link is no longer valid' }).count(), 1);
            assert.ok(!(await page.content()).includes(secret));
            assert.equal(await page.locator(`form[action="/messages/${id}/invitation"]`).count(), 0, 'no button to press');

            await follow(page, 'Sign in');
            assert.equal(pathOf(page), '/login');
            await signInWithCode(page, recipientEmail, RECIPIENT_PASSWORD, recipientSecret, recipientStep);
            assert.equal(pathOf(page), `/messages/${id}`, 'back to the message after signing in');
            assert.ok((await mainText(page)).includes(secret));
            await page.goto('/account');
            assert.equal(pathOf(page), '/account', 'the way back was taken once');
          });
        });

        await step('5. the sender sees the read receipt and is emailed once', async () => {
          await senderPage.goto('/messages');
          const row = senderPage.locator('tr', { hasText: recipientEmail });
          assert.match(await row.innerText(), /Read \d{4}-\d\d-\d\d \d\d:\d\d UTC/);
          assert.doesNotMatch(await row.innerText(), /Not read yet/);
          const receipts = (await messagesTo(server, sender.email)).filter((email) => /^Read:/.test(email.subject ?? ''));
          assert.equal(receipts.length, 1, 'one read receipt, though the message was opened twice');
          const [receipt] = receipts;
          assert.equal(receipt.subject, `Read: ${subject}`);
          assert.match(receipt.body, new RegExp(literal(recipientEmail)));
          assert.ok(!JSON.stringify(receipt).includes(secret), 'the receipt carries nothing of the message');
        });

        await step('6. neither the body nor the file is stored in plain text', async () => {
          await assertNothingAtRest(server, [
            ['the body\'s secret', Buffer.from(secret)],
            ['the file\'s content', Buffer.from(fileMarker)],
            ['the file\'s random bytes', fileBytes.subarray(100, 164)],
            ['the file name', Buffer.from(fileName)],
          ], recipientEmail);
          const log = await readFile(server.logFile, 'utf8');
          assert.ok(!log.includes(secret) && !log.includes(fileMarker) && !log.includes(fileName), 'nor in the server log');
        });

        await step('7. anyone else, the sender included, is told there is no such message', async () => {
          const other = await server.addUser('oscar@example.com', { password: PASSWORD, require2fa: true });
          await open('other', async (page) => {
            await signIn(page, other.email, other.password);
            await enrollAuthenticator(page);
            assert.equal(pathOf(page), '/account');
            const read = await page.goto(`/messages/${id}`);
            assert.equal(read.status(), 404);
            assert.equal(await page.getByRole('heading', { name: 'Message not found' }).count(), 1);
            assert.ok(!(await page.content()).includes(secret));
            // With the (spent) invitation link too.
            const withLink = await page.goto(link);
            assert.equal(withLink.status(), 404);
            assert.ok(!(await page.content()).includes(secret));
          });
          const bySender = await senderPage.goto(`/messages/${id}`);
          assert.equal(bySender.status(), 404, 'the sender cannot read it either');
          assert.equal(await senderPage.getByRole('heading', { name: 'Message not found' }).count(), 1);
          assert.ok(!(await senderPage.content()).includes(secret));
        });
      });
    });

    test('an administrator sends a new user\'s temporary password as a secure message', { timeout: TEST_TIMEOUT }, async () => {
      const admin = await server.addUser('ada@example.com', { password: PASSWORD, admin: true });
      const email = 'nils@example.org';
      const ownPassword = 'nils has a passphrase of his own';
      let link;
      let id;
      await open('admin', async (page) => {
        const problems = watchForProblems(page);
        await signIn(page, admin.email, admin.password);
        await enrollAuthenticator(page);
        await Promise.all([page.waitForURL('**/admin/users'), page.getByRole('link', { name: 'Administration', exact: true }).click()]);
        await Promise.all([page.waitForURL('**/admin/users/new'), page.getByRole('link', { name: 'New user' }).click()]);
        await page.getByLabel('Email', { exact: true }).fill(email);
        // Two-Factor stays "No": reading the message needs a second factor all the same.
        assert.equal(await page.getByLabel('Two-Factor Authentication').inputValue(), 'no');
        const checkbox = page.getByLabel('Send the temporary password to the user as a secure message');
        await checkbox.check();
        const created = await submitForm(page, { action: '/admin/users/new', buttonName: 'Create user' });
        assert.ok([200, 303].includes(created.status()), `created: ${created.status()}`);
        assert.equal(await page.locator('#temporary-password').count(), 0, 'the administrator never sees the password');
        assert.equal((await page.locator('#messaged-email').innerText()).trim(), email);
        assert.match(await page.locator('#sent-as-message').innerText(), /temporary password went to that address as a secure message/);
        assert.deepEqual(problems, []);
      });

      const emails = await messagesTo(server, email);
      const notification = emails.find((message) => /invitation=/.test(message.body));
      assert.ok(notification, `a secure-message email among: ${JSON.stringify(emails)}`);
      assert.match(notification.subject, new RegExp(literal(admin.email)));
      ({ link, id } = invitationIn(notification, server.baseURL));

      let temporary;
      let step;
      let secret;
      await open('admin-new-user', async (page) => {
        const problems = watchForProblems(page);
        assert.equal((await page.goto(link)).status(), 200);
        assert.equal(await page.getByRole('heading', { name: 'You have a secure message' }).count(), 1);
        const accepted = await acceptInvitation(page, id);
        assert.equal(accepted.status(), 303);
        assert.equal(pathOf(page), '/login/enroll', 'the password comes in the message: enrollment first');
        ({ secret, step } = await enrollAuthenticator(page));
        assert.equal(pathOf(page), `/messages/${id}`);
        const shown = await page.locator('#message-body').innerText();
        temporary = /Temporary password:\s*(\S+)/.exec(shown)?.[1];
        assert.ok(temporary, `a temporary password in: ${shown}`);
        assert.match(shown, new RegExp(literal(email)));
        for (const message of await messagesTo(server, email)) {
          assert.ok(!JSON.stringify(message).includes(temporary), 'the password is never emailed');
        }
        assert.deepEqual(problems, []);

        // The temporary password signs in; a password of one's own is asked for next.
        await signOut(page);
        await signIn(page, email, temporary);
        assert.equal(pathOf(page), '/login/password', 'the temporary password must be replaced');
        await chooseNewPassword(page, ownPassword);
        if (pathOf(page) === '/login/verify') {
          await waitForStepAfter(step);
          await page.locator('#code').fill(totp(secret));
          await submitForm(page, { action: '/login/verify', buttonName: 'Verify' });
        }
        assert.equal(pathOf(page), '/account');
        await signOut(page);
      });
      // From then on the temporary password is refused and the chosen one works.
      await open('admin-new-user-after', async (page) => {
        assert.equal((await signIn(page, email, temporary)).status(), 401);
        assert.equal((await signIn(page, email, ownPassword)).status(), 303);
        assert.equal(pathOf(page), '/login/verify');
      });
    });
  });
}
