// Starting and stopping a real `twofold serve` for browser tests, and running `twofold user …`
// against the same database.
//
// Every server gets a free port on 127.0.0.1 and a fresh temporary data directory (SQLite file,
// master key, outbox), removed again by stop(). With a PostgreSQL URL (TWOFOLD_E2E_DATABASE_URL)
// a fresh database is created beside the one the URL names (needs `psql`) and dropped by stop(),
// so the first-administrator line is printed on every start.
//
// Server stderr (its logs) goes to e2e/artifacts/<name>.server.log; stdout is kept in memory
// (it holds the first administrator's temporary password) and also written to
// e2e/artifacts/<name>.stdout.log.

import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { createWriteStream, rmSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';

export const E2E_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
export const ARTIFACTS_DIR = path.join(E2E_DIR, 'artifacts');

/** The server binary: $TWOFOLD_BIN, else the release build of this checkout. */
export const TWOFOLD_BIN = process.env.TWOFOLD_BIN || path.resolve(E2E_DIR, '..', 'target', 'release', 'twofold');

const ADMIN_LINE = /^Created the first administrator (\S+) with temporary password: (\S+)\s*$/;

// Servers still running, and data directories not yet removed, for when this process ends
// without stop() (a crash, Ctrl-C, the test runner's timeout): no server outlives its test run.
const liveServers = new Set();
const liveDataDirs = new Set();

function cleanUpNow() {
  for (const child of liveServers) child.kill('SIGKILL');
  liveServers.clear();
  for (const dir of liveDataDirs) rmSync(dir, { recursive: true, force: true });
  liveDataDirs.clear();
}

process.on('exit', cleanUpNow);
for (const signal of ['SIGINT', 'SIGTERM']) {
  process.once(signal, () => {
    cleanUpNow();
    process.kill(process.pid, signal); // our handler was once(): this time the default one runs
  });
}

/** The database backends to run a suite against: SQLite always, PostgreSQL when configured. */
export function backends() {
  const list = [{ name: 'sqlite', databaseUrl: null }];
  const postgres = process.env.TWOFOLD_E2E_DATABASE_URL;
  if (postgres) list.push({ name: 'postgres', databaseUrl: postgres });
  return list;
}

/** A TCP port that was free a moment ago on 127.0.0.1. */
export async function freePort() {
  const server = net.createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address();
  server.close();
  await once(server, 'close');
  return port;
}

/** A file-name-safe form of a label. */
export function slug(text) {
  return String(text).toLowerCase().replace(/[^a-z0-9]+/g, '-').replace(/^-|-$/g, '').slice(0, 80) || 'unnamed';
}

/** The environment for the binary: ours, without any TWOFOLD_* the caller's shell had set. */
function cleanEnv(extra) {
  const env = {};
  for (const [key, value] of Object.entries(process.env)) {
    if (key.startsWith('TWOFOLD_') && key !== 'TWOFOLD_LOG' && key !== 'TWOFOLD_LOG_FORMAT') continue;
    env[key] = value;
  }
  return { ...env, ...extra };
}

/**
 * Runs the binary to completion. Resolves { code, signal, stdout, stderr }; rejects only when it
 * cannot be started or outlives `timeoutMs` (then it is killed).
 */
export function runBinary(args, { env, input, timeoutMs = 60_000 } = {}) {
  return new Promise((resolve, reject) => {
    const child = spawn(TWOFOLD_BIN, args, { env, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (chunk) => { stdout += chunk; });
    child.stderr.setEncoding('utf8').on('data', (chunk) => { stderr += chunk; });
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`twofold ${args.join(' ')} took more than ${timeoutMs} ms\nstderr: ${stderr}`));
    }, timeoutMs);
    child.on('error', (error) => {
      clearTimeout(timer);
      reject(new Error(`cannot run ${TWOFOLD_BIN} (set TWOFOLD_BIN or build it with cargo build --release): ${error.message}`));
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
    child.stdin.on('error', () => {}); // a CLI that exits before reading stdin is not our error
    child.stdin.end(input ?? '');
  });
}

function psql(url, sql) {
  return new Promise((resolve, reject) => {
    const child = spawn('psql', [url, '-v', 'ON_ERROR_STOP=1', '-q', '-c', sql], { stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (chunk) => { output += chunk; });
    child.stderr.on('data', (chunk) => { output += chunk; });
    child.on('error', (error) => reject(new Error(`cannot run psql to prepare the PostgreSQL test database: ${error.message}`)));
    child.on('close', (code) => (code === 0 ? resolve(output) : reject(new Error(`psql failed (${code}): ${output}`))));
  });
}

/** Creates an empty database next to the one `baseUrl` names; returns its URL and a dropper. */
async function freshPostgresDatabase(baseUrl, name) {
  const url = new URL(baseUrl);
  const database = `twofold_e2e_${slug(name).replace(/-/g, '_').slice(0, 30)}_${process.pid}_${Date.now().toString(36)}`;
  await psql(baseUrl, `CREATE DATABASE ${database}`);
  url.pathname = `/${database}`;
  return {
    url: url.toString(),
    drop: () => psql(baseUrl, `DROP DATABASE IF EXISTS ${database} WITH (FORCE)`),
  };
}

/**
 * Starts `twofold serve` and waits until GET /healthz answers 200.
 *
 * Options: name (for log files), databaseUrl (PostgreSQL URL to create a fresh database beside;
 * default: SQLite in the data directory), freshDatabase (default true; false uses databaseUrl as
 * it is), env (extra environment), timeoutMs.
 *
 * Returns a handle: { baseURL, port, dataDir, databaseUrl, env, admin, stdout(), logFile,
 * cli(args, opts), addUser(email, opts), stop() }. `admin` is { email, password } from the
 * first-administrator line, or null when the database was not empty.
 */
export async function startServer({ name = 'server', databaseUrl = null, freshDatabase = true, env: extraEnv = {}, timeoutMs = 60_000 } = {}) {
  await mkdir(ARTIFACTS_DIR, { recursive: true });
  const dataDir = await mkdtemp(path.join(os.tmpdir(), 'twofold-e2e-'));
  liveDataDirs.add(dataDir);
  let database = null;
  let handle = null;
  try {
    // The port can be taken between freePort() and the bind: try a few times, each on an empty
    // database again (the first administrator is created before the bind).
    let lastError;
    for (let attempt = 0; attempt < 3; attempt += 1) {
      if (databaseUrl && freshDatabase) database = await freshPostgresDatabase(databaseUrl, name);
      const dbUrl = database ? database.url : databaseUrl || `sqlite://${path.join(dataDir, 'twofold.db')}`;
      try {
        handle = await launch({ name, dataDir, dbUrl, extraEnv, timeoutMs });
        break;
      } catch (error) {
        lastError = error;
        if (!error.retryable) break;
        if (database) await database.drop().catch(() => {});
        database = null;
        await rm(dataDir, { recursive: true, force: true });
        await mkdir(dataDir, { recursive: true });
      }
    }
    if (!handle) throw lastError;
  } catch (error) {
    if (database) await database.drop().catch(() => {});
    await rm(dataDir, { recursive: true, force: true });
    liveDataDirs.delete(dataDir);
    throw error;
  }
  const stopProcess = handle.stop;
  handle.stop = async () => {
    try {
      await stopProcess();
    } finally {
      if (database) await database.drop().catch((error) => console.error(`could not drop the test database: ${error.message}`));
      await rm(dataDir, { recursive: true, force: true });
      liveDataDirs.delete(dataDir);
    }
  };
  return handle;
}

async function launch({ name, dataDir, dbUrl, extraEnv, timeoutMs }) {
  const port = await freePort();
  const baseURL = `http://127.0.0.1:${port}`;
  const env = cleanEnv({
    TWOFOLD_LISTEN: `127.0.0.1:${port}`,
    TWOFOLD_DATA_DIR: dataDir,
    TWOFOLD_DATABASE_URL: dbUrl,
    ...extraEnv,
  });
  const stamp = `${slug(name)}-${Date.now()}`;
  const logFile = path.join(ARTIFACTS_DIR, `${stamp}.server.log`);
  const stdoutFile = path.join(ARTIFACTS_DIR, `${stamp}.stdout.log`);
  const stderrLog = createWriteStream(logFile);
  const stdoutLog = createWriteStream(stdoutFile);

  const child = spawn(TWOFOLD_BIN, ['serve'], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  liveServers.add(child);
  let stdout = '';
  let admin = null;
  let exited = null;
  const exitPromise = new Promise((resolve) => {
    child.on('close', (code, signal) => {
      liveServers.delete(child);
      exited = { code, signal };
      resolve(exited);
    });
  });
  let spawnError = null;
  child.on('error', (error) => { spawnError = error; });
  child.stdout.setEncoding('utf8').on('data', (chunk) => {
    stdout += chunk;
    stdoutLog.write(chunk);
    for (const line of stdout.split('\n')) {
      const match = ADMIN_LINE.exec(line);
      if (match && !admin) admin = { email: match[1], password: line.trim().split(/\s+/).pop() };
    }
  });
  child.stderr.pipe(stderrLog);

  const closeLogs = async () => {
    await exitPromise;
    stdoutLog.end();
    stderrLog.end();
  };

  const stop = async (graceMs = 5_000) => {
    if (exited === null && !spawnError) {
      child.kill('SIGTERM');
      const outcome = await Promise.race([exitPromise, sleep(graceMs).then(() => null)]);
      if (outcome === null) {
        child.kill('SIGKILL');
        await exitPromise;
      }
    }
    if (!spawnError) await closeLogs();
  };

  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (spawnError) {
      throw new Error(`cannot start ${TWOFOLD_BIN} (set TWOFOLD_BIN or build it with cargo build --release): ${spawnError.message}`);
    }
    if (exited) {
      await closeLogs();
      const log = await readFile(logFile, 'utf8').catch(() => '');
      const error = new Error(`twofold serve exited (${exited.code ?? exited.signal}) before answering /healthz; log ${logFile}:\n${log.slice(-2000)}`);
      error.retryable = /cannot listen/.test(log);
      throw error;
    }
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`twofold serve did not answer GET ${baseURL}/healthz with 200 within ${timeoutMs} ms; log ${logFile}`);
    }
    try {
      const response = await fetch(`${baseURL}/healthz`, { signal: AbortSignal.timeout(2_000) });
      await response.arrayBuffer();
      if (response.status === 200) break;
    } catch {
      // not listening yet
    }
    await sleep(100);
  }
  // The administrator line is printed before the server listens; give the pipe a moment.
  for (let waited = 0; !admin && waited < 500; waited += 50) await sleep(50);

  /** Runs `twofold ARGS…` with this server's environment (same data dir and database). */
  const cli = async (args, { input, allowFailure = false } = {}) => {
    const result = await runBinary(args, { env, input });
    if (result.code !== 0 && !allowFailure) {
      throw new Error(`twofold ${args.join(' ')} failed (${result.code ?? result.signal}): ${result.stderr.trim()}`);
    }
    return result;
  };

  /**
   * Creates a user with `twofold user add`. With `password`, it is passed on stdin
   * (--password-stdin); without, the temporary password the CLI prints is returned.
   * Resolves { email, password, temporary }.
   */
  const addUser = async (email, { password, admin: isAdmin = false, require2fa = false } = {}) => {
    const args = ['user', 'add', email];
    if (isAdmin) args.push('--admin');
    if (require2fa) args.push('--require-2fa');
    if (password !== undefined) args.push('--password-stdin');
    const { stdout: out } = await cli(args, { input: password !== undefined ? `${password}\n` : '' });
    const line = out.trim().split('\n').pop() ?? '';
    if (password !== undefined) {
      if (!line.startsWith(`Created ${email}`)) throw new Error(`unexpected output of twofold user add: ${out}`);
      return { email, password, temporary: false };
    }
    const match = /^Created (\S+) with temporary password: (\S+)$/.exec(line.trim());
    if (!match) throw new Error(`twofold user add printed no temporary password: ${out}`);
    return { email, password: line.trim().split(/\s+/).pop(), temporary: true };
  };

  return {
    baseURL,
    port,
    dataDir,
    databaseUrl: dbUrl,
    env,
    logFile,
    get admin() { return admin; },
    stdout: () => stdout,
    process: child,
    cli,
    addUser,
    stop,
  };
}
