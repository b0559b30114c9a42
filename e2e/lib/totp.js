// What an authenticator app does, written independently of the server: RFC 4648 base32 and
// RFC 6238 TOTP (HMAC-SHA1, 6 digits, 30-second steps) over node:crypto, and reading a QR code
// back from a screenshot with zbarimg (Debian package zbar-tools).

import { execFile } from 'node:child_process';
import { createHmac } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { setTimeout as sleep } from 'node:timers/promises';

const BASE32 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
export const PERIOD_SECONDS = 30;

/** Decodes RFC 4648 base32 (any case; spaces and padding ignored). */
export function base32Decode(text) {
  const bytes = [];
  let bits = 0;
  let value = 0;
  for (const symbol of text.toUpperCase().replace(/[\s=]/g, '')) {
    const index = BASE32.indexOf(symbol);
    if (index < 0) throw new Error(`not base32: ${symbol}`);
    value = (value << 5) | index;
    bits += 5;
    if (bits >= 8) {
      bits -= 8;
      bytes.push((value >>> bits) & 0xff);
    }
  }
  return Buffer.from(bytes);
}

/** The 30-second step of a time in milliseconds. */
export function stepAt(ms = Date.now()) {
  return Math.floor(ms / 1000 / PERIOD_SECONDS);
}

/** The 6-digit code of `step` for a base32 secret (RFC 6238 with SHA-1). */
export function totp(base32Secret, step = stepAt()) {
  const counter = Buffer.alloc(8);
  counter.writeBigUInt64BE(BigInt(step));
  const digest = createHmac('sha1', base32Decode(base32Secret)).update(counter).digest();
  const offset = digest[digest.length - 1] & 0x0f;
  const binary = digest.readUInt32BE(offset) & 0x7fffffff;
  return String(binary % 1_000_000).padStart(6, '0');
}

/** Waits until the current step is later than `step` (a TOTP step is accepted once). */
export async function waitForStepAfter(step) {
  while (stepAt() <= step) await sleep(250);
}

/** Percent-encodes all but RFC 3986's unreserved characters, as the server's key URIs do. */
export function encodeUnreserved(text) {
  return Array.from(new TextEncoder().encode(text), (byte) => {
    const char = String.fromCharCode(byte);
    return /[A-Za-z0-9\-._~]/.test(char) ? char : `%${byte.toString(16).toUpperCase().padStart(2, '0')}`;
  }).join('');
}

/** Reads the QR code in a PNG (a Buffer) with zbarimg; resolves its text. */
export async function readQrCode(png) {
  const directory = await mkdtemp(path.join(os.tmpdir(), 'twofold-qr-'));
  try {
    const file = path.join(directory, 'qr.png');
    await writeFile(file, png);
    const { stdout } = await promisify(execFile)('zbarimg', ['--quiet', '--raw', file]);
    return stdout.trimEnd();
  } catch (error) {
    throw new Error(`zbarimg could not read the QR code (is zbar-tools installed?): ${error.message}`);
  } finally {
    await rm(directory, { recursive: true, force: true });
  }
}
