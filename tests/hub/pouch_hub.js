#!/usr/bin/env node
// tests/hub/pouch_hub.js: PouchDB 9 (a client nobody here wrote) replicating
// with fieldsync-hub over HTTPS, trusting the hub's self-signed certificate
// through NODE_EXTRA_CA_CERTS. Run by harness.sh --server hub, which exports
// FS_TEST_HUB_URL, FS_TEST_HUB_TOKEN (admin), FS_TEST_HUB_DIR and FS_HUB_BIN.
// Push 1,000 documents, pull them into a fresh PouchDB, conflicting edits,
// deletions, a live replication that must see a new document within 1 s,
// and a basic-auth user limited to one database.
'use strict';
const assert = require('assert');
const { execFileSync } = require('child_process');
const fs = require('fs');
const os = require('os');
const path = require('path');
const PouchDB = require('pouchdb');

const N = 1000;
const url = process.env.FS_TEST_HUB_URL;
const token = process.env.FS_TEST_HUB_TOKEN;
const hubDir = process.env.FS_TEST_HUB_DIR;
const hubBin = process.env.FS_HUB_BIN;
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'fs-pouch-hub-'));

function withToken(tok) {
  return {
    skip_setup: true,
    fetch: (u, opts) => {
      opts.headers.set('Authorization', `Bearer ${tok}`);
      return PouchDB.fetch(u, opts);
    },
  };
}

function local(name) {
  return new PouchDB(path.join(tmp, name));
}

async function hubGet(p) {
  const res = await fetch(`${url}${p}`, { headers: { Authorization: `Bearer ${token}` } });
  return { status: res.status, body: await res.json() };
}

async function step(name, fn) {
  const t0 = Date.now();
  await fn();
  console.log(`ok ${name} (${Date.now() - t0} ms)`);
}

async function main() {
  const create = await fetch(`${url}/pouch`, {
    method: 'PUT', headers: { Authorization: `Bearer ${token}` },
  });
  assert.strictEqual(create.status, 201);
  const remote = new PouchDB(`${url}/pouch`, withToken(token));
  const a = local('a');
  const b = local('b');

  await step(`push ${N} documents`, async () => {
    const docs = [];
    for (let i = 0; i < N; i++) {
      docs.push({ _id: `doc-${String(i).padStart(4, '0')}`, fs: 1, k: 'k1', c: `ct-${i}` });
    }
    await a.bulkDocs(docs);
    const res = await PouchDB.replicate(a, remote);
    assert.strictEqual(res.ok, true);
    assert.strictEqual(res.docs_written, N);
    const info = await hubGet('/pouch');
    assert.strictEqual(info.body.doc_count, N);
  });

  await step('pull into a fresh PouchDB', async () => {
    const res = await PouchDB.replicate(remote, b);
    assert.strictEqual(res.ok, true);
    assert.strictEqual(res.docs_written, N);
    assert.strictEqual((await b.info()).doc_count, N);
    for (const i of [0, 1, 499, 999]) {
      const id = `doc-${String(i).padStart(4, '0')}`;
      const x = await a.get(id);
      const y = await b.get(id);
      assert.deepStrictEqual(y, x);
    }
  });

  await step('conflicting edits converge', async () => {
    const base = await a.get('doc-0007');
    await a.put({ ...base, c: 'from-a' });
    await b.put({ ...base, c: 'from-b' });
    await PouchDB.replicate(a, remote);
    await PouchDB.replicate(b, remote);
    await PouchDB.replicate(remote, a);
    await PouchDB.replicate(remote, b);
    const x = await a.get('doc-0007', { conflicts: true });
    const y = await b.get('doc-0007', { conflicts: true });
    const h = await hubGet('/pouch/doc-0007?conflicts=true');
    assert.strictEqual(x._rev, y._rev);
    assert.strictEqual(h.body._rev, x._rev);
    assert.strictEqual(x._conflicts.length, 1);
    assert.deepStrictEqual(y._conflicts, x._conflicts);
    assert.deepStrictEqual(h.body._conflicts, x._conflicts);
    assert.strictEqual(x.c, y.c);
  });

  await step('deletions travel', async () => {
    const d = await a.get('doc-0002');
    await a.remove(d);
    await PouchDB.replicate(a, remote);
    await PouchDB.replicate(remote, b);
    await assert.rejects(b.get('doc-0002'), e => e.status === 404);
    const h = await hubGet('/pouch/doc-0002');
    assert.strictEqual(h.status, 404);
    assert.strictEqual(h.body.reason, 'deleted');
    assert.strictEqual((await b.info()).doc_count, N - 1);
  });

  await step('live replication sees a new document within 1 s', async () => {
    const c = local('c');
    const rep = PouchDB.replicate(remote, c, { live: true, retry: true });
    // Wait for the initial catch-up to finish.
    await new Promise((resolve, reject) => {
      rep.on('paused', err => (err ? reject(err) : resolve()));
      rep.on('error', reject);
    });
    assert.strictEqual((await c.info()).doc_count, N - 1);
    await new Promise(r => setTimeout(r, 300)); // its longpoll is now waiting
    const seen = new Promise(resolve => {
      rep.on('change', info => {
        if (info.docs.some(d => d._id === 'live-1')) resolve(Date.now());
      });
    });
    const t0 = Date.now();
    await remote.put({ _id: 'live-1', fs: 1, c: 'live' });
    const t1 = await Promise.race([seen, new Promise(r => setTimeout(() => r(null), 5000))]);
    rep.cancel();
    assert.ok(t1 !== null, 'live replication never saw the document');
    console.log(`   live: ${t1 - t0} ms from write to replicated`);
    assert.ok(t1 - t0 < 1000, `live replication took ${t1 - t0} ms`);
    assert.strictEqual((await c.get('live-1')).c, 'live');
    await c.close();
  });

  await step('basic-auth user limited to its database', async () => {
    execFileSync(hubBin, ['user', 'add', 'maria', '--db', 'pouch', '--dir', hubDir],
      { input: 'correct horse battery\n' });
    const asUser = new PouchDB(`${url}/pouch`,
      { skip_setup: true, auth: { username: 'maria', password: 'correct horse battery' } });
    assert.strictEqual((await asUser.info()).doc_count, N);
    const wrong = new PouchDB(`${url}/pouch`,
      { skip_setup: true, auth: { username: 'maria', password: 'nope' } });
    // (info() resolves with the error body in PouchDB 9; get() rejects.)
    await assert.rejects(wrong.get('doc-0001'), e => e.status === 401);
    const other = new PouchDB(`${url}/other`,
      { skip_setup: true, auth: { username: 'maria', password: 'correct horse battery' } });
    await assert.rejects(other.get('doc-0001'), e => e.status === 403);
  });

  await a.close();
  await b.close();
}

main().then(() => {
  fs.rmSync(tmp, { recursive: true, force: true });
}, e => {
  fs.rmSync(tmp, { recursive: true, force: true });
  process.stderr.write(`pouch_hub: ${e && e.stack}\n`);
  process.exit(1);
});
