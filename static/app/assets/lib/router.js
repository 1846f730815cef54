// A small history router: links and navigate() change the path without a
// reload; useRoute() re-renders on change.
import { useState, useEffect } from '../vendor/htm-preact.js';

const listeners = new Set();

export function navigate(path, replace = false) {
  if (replace) history.replaceState(null, '', path); else history.pushState(null, '', path);
  for (const fn of listeners) fn(location.pathname);
  window.scrollTo(0, 0);
  // A screen reader hears the new page: focus moves to its heading once
  // it has rendered.
  requestAnimationFrame(() => {
    const h = document.querySelector('main h1');
    if (h && !document.activeElement.closest('main')) {
      h.tabIndex = -1;
      h.focus({ preventScroll: true });
    }
  });
}

window.addEventListener('popstate', () => { for (const fn of listeners) fn(location.pathname); });

// Clicks on same-origin links are routed here rather than reloading.
document.addEventListener('click', (e) => {
  const a = e.target.closest && e.target.closest('a[href]');
  if (!a || a.target || a.hasAttribute('data-reload') || a.hasAttribute('download') || e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey) return;
  const url = new URL(a.href, location.href);
  if (url.origin !== location.origin || url.pathname.startsWith('/api/') || url.pathname === '/display') return;
  if (url.pathname === location.pathname && url.hash) return; // a link within the page (an error summary's)
  e.preventDefault();
  navigate(url.pathname + url.search);
});

export function useRoute() {
  const [path, setPath] = useState(location.pathname);
  useEffect(() => { listeners.add(setPath); return () => listeners.delete(setPath); }, []);
  return path;
}

// match returns the path's parameters for a pattern such as
// "/referrals/:id", or null.
export function match(pattern, path) {
  const p = pattern.split('/');
  const q = path.split('/');
  if (p.length !== q.length) return null;
  const params = {};
  for (let i = 0; i < p.length; i++) {
    if (p[i].startsWith(':')) params[p[i].slice(1)] = decodeURIComponent(q[i]);
    else if (p[i] !== q[i]) return null;
  }
  return params;
}
