// The offline service worker. A template: scripts/finish-dist.mjs (Trunk's post_build hook)
// writes it into dist/ with BUILD (a hash of every file it lists) and FILES (the app, its
// workers, the models) filled in. Everything is cached under one name per build, so a new
// deploy installs a new worker whose cache replaces the old one once it takes over. The scan
// never passes through here: files a user opens are read in the page, never fetched.
const BUILD = '__NODULENS_BUILD__';
const FILES = __NODULENS_FILES__;
const CACHE = `nodulens-${BUILD}`;
// The bundled sample is cached the first time it is opened, not at install (it is large and
// not everyone opens it).
const LAZY = /\/sample\//;
// The app's folder (the service worker's scope): its page is the app.
const ROOT = new URL('./', self.location).pathname;

// Install: this build's files, revalidated with the server (never stale bytes from the HTTP
// cache under this build's name). No skipWaiting: an open tab keeps the build it started with
// (its page, workers and models stay one build), and a new deploy takes over once every tab of
// the app has closed.
self.addEventListener('install', (event) => {
  event.waitUntil(
    caches.open(CACHE).then((cache) => cache.addAll(FILES.map((f) => new Request(f, { cache: 'no-cache' })))),
  );
});

self.addEventListener('activate', (event) => {
  event.waitUntil(
    caches.keys()
      .then((names) => Promise.all(
        names.filter((n) => n.startsWith('nodulens-') && n !== CACHE).map((n) => caches.delete(n)),
      ))
      // The first install takes the page that registered it (nothing else controls it yet).
      .then(() => self.clients.claim()),
  );
});

self.addEventListener('fetch', (event) => {
  const request = event.request;
  const url = new URL(request.url);
  if (request.method !== 'GET' || url.origin !== self.location.origin) return;
  event.respondWith((async () => {
    const cache = await caches.open(CACHE);
    // The page itself, whatever its query (?backend=cpu): this build's index.html, so the page
    // and the workers and models it loads are always one build. (A script is answered
    // whatever its query: workers take their options in their name, not in their URL.)
    const page = request.mode === 'navigate' && (url.pathname === ROOT || url.pathname === `${ROOT}index.html`);
    const hit = page
      ? await cache.match('index.html')
      : await cache.match(request, { ignoreSearch: true });
    if (hit) return hit;
    const response = await fetch(request);
    if (response.ok && LAZY.test(url.pathname)) {
      // Cached in the background: the page gets the response at once, and a full disk or
      // quota only means the sample is not kept.
      event.waitUntil(cache.put(request, response.clone()).catch(() => {}));
    }
    return response;
  })());
});
