// First-load transfer of the built app: every file of dist/ a first visit fetches (the page,
// wasm, js, css, models, icons; the bundled sample excluded, it is fetched only when opened),
// gzip-compressed as a static host would serve it (level 9; `gzip -9`), summed.
// Usage: node scripts/transfer-size.mjs [dist] [--max-mb N] (exit 1 above N MB).
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative, sep } from 'node:path';
import { gzipSync } from 'node:zlib';

const args = process.argv.slice(2);
const maxAt = args.indexOf('--max-mb');
const maxMb = maxAt >= 0 ? Number(args.splice(maxAt, 2)[1]) : Infinity;
const dist = args[0] ?? 'dist';
const EXCLUDED = ['sample/'];

function walk(dir) {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    return entry.isDirectory() ? walk(path) : [path];
  });
}

const MB = 1e6;
const rows = walk(dist)
  .map((path) => ({ name: relative(dist, path).split(sep).join('/'), path }))
  .filter(({ name }) => !EXCLUDED.some((prefix) => name.startsWith(prefix)))
  .map(({ name, path }) => {
    const bytes = readFileSync(path);
    return { name, raw: bytes.length, gzip: gzipSync(bytes, { level: 9 }).length };
  })
  .sort((a, b) => b.gzip - a.gzip);
const total = rows.reduce((sum, r) => ({ raw: sum.raw + r.raw, gzip: sum.gzip + r.gzip }), { raw: 0, gzip: 0 });
for (const r of rows) {
  console.log(`${(r.gzip / MB).toFixed(3).padStart(8)} MB gzip  ${(r.raw / MB).toFixed(3).padStart(8)} MB  ${r.name}`);
}
console.log(`${(total.gzip / MB).toFixed(3).padStart(8)} MB gzip  ${(total.raw / MB).toFixed(3).padStart(8)} MB  total (${rows.length} files, sample excluded)`);
if (total.gzip > maxMb * MB) {
  console.error(`first-load transfer ${(total.gzip / MB).toFixed(2)} MB is over the ${maxMb} MB budget`);
  process.exit(1);
}
