// Shared by the end-to-end tests and the browser benchmark: a static server for dist/ on
// 127.0.0.1 and Debian's Chromium driven by playwright-core (never a downloaded browser).
import { createServer } from 'node:http';
import { mkdtempSync } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { extname, join, normalize } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

export const repo = fileURLToPath(new URL('../..', import.meta.url));
const dist = join(repo, 'dist');
const types = {
  '.html': 'text/html', '.js': 'text/javascript', '.wasm': 'application/wasm', '.css': 'text/css',
  '.json': 'application/json', '.png': 'image/png', '.md': 'text/plain',
  '.webmanifest': 'application/manifest+json',
};

/** Serves dist/ at `prefix` (a static host's sub-path; `/` by default). `missing`: file names
 *  answered 404, as a broken deployment would. `hits` lists every path asked of the server;
 *  `overrides` (path under the prefix → body) stands for files a new deploy changed;
 *  `pageHeaders` are sent with index.html, as a host may add them. */
export async function serveDist({ missing = [], prefix = '/', pageHeaders = {} } = {}) {
  await stat(join(dist, 'index.html')); // fails clearly when the app was not built
  const hits = [];
  const overrides = new Map();
  const server = createServer(async (req, res) => {
    const pathname = decodeURIComponent(new URL(req.url, 'http://x').pathname);
    hits.push(pathname);
    try {
      if (!pathname.startsWith(prefix)) throw new Error('outside the app');
      const path = normalize('/' + pathname.slice(prefix.length)).replace(/^(\.\.[/\\])+/, '');
      const file = path.endsWith('/') ? path + 'index.html' : path;
      if (missing.some((name) => file.endsWith(`/${name}`))) throw new Error('missing');
      const body = overrides.get(file) ?? await readFile(join(dist, file));
      const extra = file === '/index.html' ? pageHeaders : {};
      res.writeHead(200, { 'content-type': types[extname(file)] ?? 'application/octet-stream', ...extra });
      res.end(body);
    } catch {
      res.writeHead(404).end('not found');
    }
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const origin = `http://127.0.0.1:${server.address().port}`;
  return { server, url: origin + prefix, origin, hits, overrides };
}

function chromiumOptions(webgpu) {
  const args = ['--no-sandbox', '--disable-background-networking', '--disable-component-update', '--disable-sync',
    '--no-first-run', '--disable-dev-shm-usage'];
  if (webgpu) args.push('--enable-unsafe-webgpu');
  return { executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium', headless: true, args };
}

export async function launch({ webgpu = false } = {}) {
  return chromium.launch(chromiumOptions(webgpu));
}

/** A browser context with a profile on disk (a fresh temporary one), as a user's browser has:
 *  Chromium judges installability only outside incognito-like contexts. */
export async function launchProfile(options = {}) {
  const profile = mkdtempSync(join(tmpdir(), 'nodulens-profile-'));
  const context = await chromium.launchPersistentContext(profile, { ...chromiumOptions(false), ...options });
  return { context, profile };
}

/** Waits until the axial view has drawn a slice. */
export async function waitForSlice(page, timeout = 120_000) {
  await page.locator('[data-testid="view-axial"][data-drawn="true"]').waitFor({ timeout });
}
