// Reading the outbox of a server started by lib/server.js: with no SMTP server or SMS gateway
// configured, every email and text message is one JSON file in $TWOFOLD_DATA_DIR/outbox/
// (`{"channel", "to", "subject"?, "body", "created_at"}`, contract format), and a one-time code
// stands alone in its body as a run of six digits.

import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

/** The messages to `to` (an address, or a phone number in E.164), oldest first. */
export async function messagesTo(server, to) {
  const directory = path.join(server.dataDir, 'outbox');
  let names;
  try {
    names = await readdir(directory);
  } catch (error) {
    if (error.code === 'ENOENT') return [];
    throw error;
  }
  // File names start with the time to the microsecond, so their order is the sending order.
  const files = names.filter((name) => name.endsWith('.json')).sort();
  const messages = await Promise.all(files.map(async (name) => JSON.parse(await readFile(path.join(directory, name), 'utf8'))));
  return messages.filter((message) => message.to === to);
}

/** The one-time code in a message body: the run of exactly six digits. */
export function codeIn(body) {
  const match = /(?<!\d)\d{6}(?!\d)/.exec(body);
  if (!match) throw new Error(`no code in: ${body}`);
  return match[0];
}

/**
 * Waits until more than `count` messages went to `to`, and resolves the newest. Take `count`
 * with messagesTo() before the action that sends.
 */
export async function waitForMessage(server, to, count, { timeoutMs = 10_000 } = {}) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const messages = await messagesTo(server, to);
    if (messages.length > count) return messages[messages.length - 1];
    if (Date.now() > deadline) throw new Error(`no new message to ${to} within ${timeoutMs} ms (${messages.length} so far)`);
    await sleep(100);
  }
}

/** Runs `send` (the action that sends) and resolves the code of the message it sent to `to`. */
export async function codeSentBy(server, to, send) {
  const count = (await messagesTo(server, to)).length;
  await send();
  return codeIn((await waitForMessage(server, to, count)).body);
}
