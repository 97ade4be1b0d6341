#!/usr/bin/env node
// bench/replicate/pouch_bench.js: the PouchDB 9 side of bench_replicate.
//   pouch_bench.js push URL N DIR   N docs of 1 KB ciphertext in a local
//                                   LevelDB (untimed), then replicate.to(URL)
//   pouch_bench.js pull URL DIR     replicate.from(URL) into a fresh LevelDB
// Prints "<seconds> <docs>" of the replication itself; default batch size.
'use strict';
const crypto = require('crypto');
const path = require('path');
const PouchDB = require('pouchdb');

async function main() {
  const [cmd, url, a, b] = process.argv.slice(2);
  const dir = cmd === 'push' ? b : a;
  const local = new PouchDB(path.join(dir, `pouch-${cmd}`));
  const remote = new PouchDB(url, { skip_setup: true });
  let res;
  if (cmd === 'push') {
    const n = parseInt(a, 10);
    for (let i = 0; i < n; i += 1000) {
      const docs = [];
      for (let j = i; j < Math.min(n, i + 1000); j++) {
        docs.push({
          _id: crypto.randomBytes(16).toString('hex'), fs: 1, k: 'k1',
          n: crypto.randomBytes(24).toString('base64'),
          c: crypto.randomBytes(1024).toString('base64'),
        });
      }
      await local.bulkDocs(docs);
    }
    const t0 = process.hrtime.bigint();
    res = await PouchDB.replicate(local, remote);
    const s = Number(process.hrtime.bigint() - t0) / 1e9;
    process.stdout.write(`${s.toFixed(3)} ${res.docs_written}\n`);
  } else if (cmd === 'pull') {
    const t0 = process.hrtime.bigint();
    res = await PouchDB.replicate(remote, local);
    const s = Number(process.hrtime.bigint() - t0) / 1e9;
    process.stdout.write(`${s.toFixed(3)} ${res.docs_written}\n`);
  } else {
    throw new Error('usage: pouch_bench.js push URL N DIR | pull URL DIR');
  }
}

main().catch(e => {
  process.stderr.write(`pouch_bench: ${e && e.message}\n`);
  process.exit(1);
});
