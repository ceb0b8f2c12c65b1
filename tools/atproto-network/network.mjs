// Starts a local AT Protocol network (PLC directory, PDS, Bluesky appview) for the Bluesky
// integration tests, creates the requested accounts and prints ONE JSON line describing it.
// It then runs until its standard input closes or it receives SIGTERM/SIGINT, and shuts the
// network down cleanly (dropping its PostgreSQL schemas).
//
// Usage (with Node >= 22 first on PATH):
//   node network.mjs --plc-port N --pds-port N --bsky-port N \
//     [--schema NAME] [--accounts mhchathost,alice,bob] [--rate-limits]
//
// Environment: DB_POSTGRES_URL (default postgresql://postgres@127.0.0.1:5432/postgres),
// REDIS_HOST (default 127.0.0.1:6379).
import { parseArgs } from 'node:util';

import { TestNetwork } from '@atproto/dev-env';
import pg from 'pg';

const { values: args } = parseArgs({
  options: {
    'plc-port': { type: 'string' },
    'pds-port': { type: 'string' },
    'bsky-port': { type: 'string' },
    schema: { type: 'string' },
    accounts: { type: 'string', default: 'mhchathost' },
    'rate-limits': { type: 'boolean', default: false },
  },
});

process.env.DB_POSTGRES_URL ??= 'postgresql://postgres@127.0.0.1:5432/postgres';
process.env.REDIS_HOST ??= '127.0.0.1:6379';

// Schema names allow only [A-Za-z_], so numbers are spelled with the letters a..j.
const spell = (n) => String(n).replace(/\d/g, (d) => String.fromCharCode(97 + Number(d)));
const unspell = (s) => Number(s.replace(/[a-j]/g, (c) => String(c.charCodeAt(0) - 97)));
// The pid in the name lets a later run drop what a killed run left behind.
const schema = args.schema ?? `mhchat_net_${spell(process.pid)}_${spell(Date.now() % 1e9)}`;
// dev-env derives these schema names from dbPostgresSchema.
const ownSchemas = [`appview_${schema}`, `bsync_${schema}`, `ozone_${schema}`];

const port = (name) => {
  const raw = args[name];
  if (raw === undefined) return undefined;
  const n = Number.parseInt(raw, 10);
  if (!Number.isInteger(n) || n <= 0 || n > 65535) throw new Error(`bad --${name}: ${raw}`);
  return n;
};

const log = (msg) => process.stderr.write(`[atproto-network] ${msg}\n`);

async function withPg(fn) {
  const client = new pg.Client({ connectionString: process.env.DB_POSTGRES_URL });
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}

function pidAlive(pid) {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return err.code !== 'ESRCH';
  }
}

// Schemas of earlier runs whose process is gone (killed test runs) would pile up.
async function dropStaleSchemas() {
  await withPg(async (client) => {
    const { rows } = await client.query(
      "SELECT nspname FROM pg_namespace WHERE nspname LIKE '%\\_mhchat\\_net\\_%'",
    );
    for (const { nspname } of rows) {
      const m = /_mhchat_net_([a-j]+)_/.exec(nspname);
      if (m && !pidAlive(unspell(m[1]))) {
        await client.query(`DROP SCHEMA IF EXISTS "${nspname}" CASCADE`);
      }
    }
  });
}

async function dropOwnSchemas() {
  await withPg(async (client) => {
    for (const name of ownSchemas) {
      await client.query(`DROP SCHEMA IF EXISTS "${name}" CASCADE`);
    }
  });
}

async function createAccounts(network, names) {
  const agent = network.pds.getAgent();
  const accounts = [];
  for (const name of names) {
    const handle = name.includes('.') ? name : `${name}.test`;
    const password = `pw-${name}-${Math.random().toString(36).slice(2, 10)}`;
    const created = await agent.com.atproto.server.createAccount({
      handle,
      email: `${name}@mhchat.test`,
      password,
    });
    // Production hosts log in with an app password, never the main password.
    const user = network.pds.getAgent();
    await user.login({ identifier: handle, password });
    const appPassword = await user.com.atproto.server.createAppPassword({ name: 'mhchat' });
    accounts.push({
      name,
      handle,
      did: created.data.did,
      password,
      app_password: appPassword.data.password,
    });
  }
  return accounts;
}

async function main() {
  const started = Date.now();
  await dropStaleSchemas();
  const network = await TestNetwork.create({
    dbPostgresSchema: schema,
    plc: { port: port('plc-port') },
    pds: {
      port: port('pds-port'),
      hostname: 'localhost',
      rateLimitsEnabled: args['rate-limits'],
    },
    bsky: { port: port('bsky-port') },
  });
  let closing = null;
  const shutdown = (why) => {
    closing ??= (async () => {
      log(`closing (${why})`);
      try {
        await network.close();
      } catch (err) {
        log(`close failed: ${err?.message ?? err}`);
      }
      try {
        await dropOwnSchemas();
      } catch (err) {
        log(`dropping schemas failed: ${err?.message ?? err}`);
      }
      log('closed');
      process.exit(0);
    })();
    return closing;
  };
  process.on('SIGTERM', () => void shutdown('SIGTERM'));
  process.on('SIGINT', () => void shutdown('SIGINT'));
  process.stdin.on('end', () => void shutdown('stdin closed'));
  process.stdin.on('error', () => void shutdown('stdin error'));
  process.stdin.resume();

  const names = args.accounts.split(',').map((s) => s.trim()).filter(Boolean);
  const accounts = await createAccounts(network, names);
  await network.processAll();
  const ready = {
    plc_url: network.plc.url,
    pds_url: network.pds.url,
    pds_did: network.pds.ctx.cfg.service.did,
    appview_url: network.bsky.url,
    appview_did: network.bsky.ctx.cfg.serverDid,
    schema,
    rate_limits: args['rate-limits'],
    accounts,
    pid: process.pid,
    startup_ms: Date.now() - started,
  };
  process.stdout.write(`${JSON.stringify(ready)}\n`);
}

main().catch(async (err) => {
  log(`failed to start: ${err?.stack ?? err}`);
  try {
    await dropOwnSchemas();
  } catch {
    // The database itself may be what failed.
  }
  process.exit(1);
});
