#!/usr/bin/env node
// tests/interop/pouch_client.js: PouchDB 9 as an independent client of the
// test server, so the interop tests can check what another implementation
// sees of our replication and write documents for us to pull.
//
//   pouch_client.js dump URL      every document: winner, leaves with bodies
//   pouch_client.js put URL JSON  writes one document (JSON has _id, maybe _rev)
'use strict';
const PouchDB = require('pouchdb');

function strip(doc) {
  const out = {};
  for (const k of Object.keys(doc)) if (!k.startsWith('_')) out[k] = doc[k];
  return out;
}

async function dump(db) {
  const out = {};
  const ch = await db.changes({ style: 'all_docs', since: 0 });
  for (const r of ch.results) {
    const leaves = await db.get(r.id, { open_revs: 'all' });
    let winner = null;
    try {
      winner = (await db.get(r.id))._rev;
    } catch (e) {
      if (e.status !== 404) throw e; // a deleted winner reads as 404
    }
    out[r.id] = {
      winner,
      leaves: leaves.filter(l => l.ok).map(l => ({
        rev: l.ok._rev, deleted: !!l.ok._deleted, body: strip(l.ok),
      })).sort((a, b) => (a.rev < b.rev ? -1 : a.rev > b.rev ? 1 : 0)),
    };
  }
  return out;
}

async function main() {
  const [cmd, url, arg] = process.argv.slice(2);
  const db = new PouchDB(url, { skip_setup: true });
  if (cmd === 'dump') {
    process.stdout.write(JSON.stringify(await dump(db)));
  } else if (cmd === 'put') {
    const res = await db.put(JSON.parse(arg));
    process.stdout.write(JSON.stringify({ rev: res.rev }));
  } else {
    throw new Error('usage: pouch_client.js dump|put URL [JSON]');
  }
}

main().catch(e => {
  process.stderr.write(`pouch_client: ${e && e.message}\n`);
  process.exit(1);
});
