// Registers the offline service worker (sw.js, written into dist/ by scripts/finish-dist.mjs).
// A file of its own rather than an inline script, so the Content-Security-Policy needs no hash
// for it. Without service workers (http:// on another host, a private window) the page works
// as before, online only.
if ('serviceWorker' in navigator) {
  navigator.serviceWorker.register('./sw.js').catch((e) => {
    console.warn(`Nodulens will not work offline: the service worker did not register (${e})`);
  });
}
