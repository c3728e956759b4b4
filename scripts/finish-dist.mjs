// Trunk's post_build hook (Trunk.toml): finishes the staged dist/ before Trunk moves it in place.
//  0. Release builds: each .wasm loses its `name` custom section (function names for stack
//     traces: 1.2 of 8.6 MB gzip, the difference between meeting the 8 MB first-load budget and
//     not). Trunk has no switch for wasm-bindgen's --remove-name-section. Dev builds keep it.
//  1. The Content-Security-Policy, as a <meta> in index.html: only the page's own origin, plus
//     the hash of each inline script (Trunk's loader). No host needs to send a header for it.
//  2. sw.js, the offline service worker, from static/sw.js with this build's file list and a
//     hash of those files (its cache name: a new deploy replaces the old cache).
// By hand on a built dist/: node scripts/finish-dist.mjs dist (it is idempotent).
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, relative, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

const repo = fileURLToPath(new URL('..', import.meta.url));
const staging = process.env.TRUNK_STAGING_DIR ?? process.argv[2];
if (!staging) {
  console.error('usage: node scripts/finish-dist.mjs <dist dir> (or run as Trunk\'s post_build hook)');
  process.exit(2);
}

// Files fetched only on demand, never at install: the sample (cached when first opened).
const LAZY = ['sample/'];
const SW_TEMPLATE = join(repo, 'static', 'sw.js');

const sha256 = (data, encoding) => createHash('sha256').update(data).digest(encoding);

/** The policy: the page's own origin only. 'wasm-unsafe-eval' compiles our wasm; inline styles
 *  are Yew's style attributes (sizes, positions), never content. */
function policy(scriptHashes) {
  return [
    "default-src 'self'",
    `script-src 'self' 'wasm-unsafe-eval' ${scriptHashes.map((h) => `'sha256-${h}'`).join(' ')}`.trim(),
    "style-src 'self' 'unsafe-inline'",
    // Key images of the printed report and downloads are data: and blob: URLs made in the page.
    "img-src 'self' data: blob:",
    "connect-src 'self'",
    // blob: workers are the decode worker restarted from code the page fetched once
    // (src/worker_sources.rs), so a restart makes no request.
    "worker-src 'self' blob:",
    "object-src 'none'",
    "base-uri 'self'",
    "form-action 'none'",
  ].join('; ');
}

function addPolicy(html) {
  const withoutOld = html.replace(/\s*<meta http-equiv="Content-Security-Policy"[^>]*>/i, '');
  const hashes = [];
  for (const [, attrs, body] of withoutOld.matchAll(/<script\b([^>]*)>([\s\S]*?)<\/script>/gi)) {
    if (!/\bsrc\s*=/i.test(attrs) && body.length > 0) hashes.push(sha256(body, 'base64'));
  }
  const charset = withoutOld.match(/<meta charset="utf-8"\s*\/?>/i);
  if (!charset) throw new Error('index.html has no <meta charset="utf-8">: the policy must follow it');
  const at = charset.index + charset[0].length;
  const meta = `\n    <meta http-equiv="Content-Security-Policy" content="${policy(hashes)}" />`;
  return { html: withoutOld.slice(0, at) + meta + withoutOld.slice(at), hashes };
}

function leb128(bytes, at) {
  let value = 0;
  let shift = 0;
  for (;;) {
    const byte = bytes[at++];
    value += (byte & 0x7f) * 2 ** shift;
    shift += 7;
    if (byte < 0x80) return [value, at];
  }
}

/** `wasm` without its `name` custom section (custom sections never change what the module
 *  does); the same bytes when it has none. */
function withoutNames(wasm) {
  if (wasm.readUInt32LE(0) !== 0x6d736100) throw new Error('not a WebAssembly module');
  const kept = [wasm.subarray(0, 8)];
  let at = 8;
  while (at < wasm.length) {
    const start = at;
    const id = wasm[at++];
    const [size, body] = leb128(wasm, at);
    at = body + size;
    if (id === 0) {
      const [length, name] = leb128(wasm, body);
      if (wasm.toString('utf8', name, name + length) === 'name') continue;
    }
    kept.push(wasm.subarray(start, at));
  }
  return Buffer.concat(kept);
}

function walk(dir) {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    return entry.isDirectory() ? walk(path) : [path];
  });
}

if (process.env.TRUNK_PROFILE !== 'debug') {
  for (const path of walk(staging).filter((p) => p.endsWith('.wasm'))) {
    const wasm = readFileSync(path);
    const stripped = withoutNames(wasm);
    if (stripped.length !== wasm.length) writeFileSync(path, stripped);
  }
}

const indexPath = join(staging, 'index.html');
const { html, hashes } = addPolicy(readFileSync(indexPath, 'utf8'));
writeFileSync(indexPath, html);

const files = walk(staging)
  .map((path) => relative(staging, path).split(sep).join('/'))
  .filter((name) => name !== 'sw.js' && !LAZY.some((prefix) => name.startsWith(prefix)))
  .sort();
const build = createHash('sha256');
for (const name of files) build.update(name).update('\0').update(readFileSync(join(staging, name)));
const buildId = build.digest('hex').slice(0, 16);
const cached = files;
const worker = readFileSync(SW_TEMPLATE, 'utf8')
  .replace('__NODULENS_BUILD__', buildId)
  .replace('__NODULENS_FILES__', JSON.stringify(cached, null, 2));
writeFileSync(join(staging, 'sw.js'), worker);
console.log(`finish-dist: CSP with ${hashes.length} inline script hash(es); sw.js caches ${cached.length} files (build ${buildId})`);
