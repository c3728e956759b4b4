// The offline service worker. A template: scripts/finish-dist.mjs (Trunk's post_build hook)
// writes it into dist/ with BUILD (a hash of every file it lists) and FILES (the app, its
// workers, the models) filled in. Everything is cached under one name per build, so a new
// deploy installs a new worker whose cache replaces the old one. The scan never passes
// through here: files a user opens are read in the page, never fetched.
const BUILD = '__NODULENS_BUILD__';
const FILES = __NODULENS_FILES__;
const CACHE = `nodulens-${BUILD}`;
// The bundled sample is cached the first time it is opened, not at install (it is large and
// not everyone opens it).
const LAZY = /\/sample\//;

self.addEventListener('install', (event) => {
  event.waitUntil(
    caches.open(CACHE).then((cache) => cache.addAll(FILES)).then(() => self.skipWaiting()),
  );
});

self.addEventListener('activate', (event) => {
  event.waitUntil(
    caches.keys()
      .then((names) => Promise.all(
        names.filter((n) => n.startsWith('nodulens-') && n !== CACHE).map((n) => caches.delete(n)),
      ))
      .then(() => self.clients.claim()),
  );
});

self.addEventListener('fetch', (event) => {
  const request = event.request;
  const url = new URL(request.url);
  if (request.method !== 'GET' || url.origin !== self.location.origin) return;
  if (request.mode === 'navigate') {
    // The page itself: the network when there is one (a new deploy is seen at once), else
    // the cached page of this build.
    event.respondWith(
      fetch(request).catch(() => caches.match('./', { cacheName: CACHE, ignoreSearch: true })
        .then((hit) => hit ?? Response.error())),
    );
    return;
  }
  event.respondWith((async () => {
    const cache = await caches.open(CACHE);
    // Workers take their options in the query string (?backend=cpu): the file is the same.
    const hit = await cache.match(request, { ignoreSearch: true });
    if (hit) return hit;
    const response = await fetch(request);
    if (response.ok && LAZY.test(url.pathname)) await cache.put(request, response.clone());
    return response;
  })());
});
