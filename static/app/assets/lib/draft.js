// Unsent work kept on the device so a reload or a wrong click loses
// nothing. It holds patient details, so it lives in sessionStorage: this
// tab only, gone when the tab is closed, never shared with the next person
// to use a shared hospital computer in another tab or after the browser
// closes (localStorage would keep it on the disk indefinitely). Each entry
// is keyed by user, and expires after a shift's length in any case.

const maxAge = 12 * 60 * 60 * 1000;
const version = 1;

export function draftKey(kind, userId) { return 'pp.draft.' + kind + '.' + userId; }

export function loadDraft(key) {
  try {
    const saved = JSON.parse(sessionStorage.getItem(key) || 'null');
    if (!saved || saved.v !== version || !(Date.now() - saved.at < maxAge)) {
      sessionStorage.removeItem(key);
      return null;
    }
    return saved.draft;
  } catch (e) {
    return null; // storage disabled or the entry unreadable: start afresh
  }
}

export function saveDraft(key, draft) {
  try {
    sessionStorage.setItem(key, JSON.stringify({ v: version, at: Date.now(), draft }));
  } catch (e) {
    // storage full or disabled: the form still works, without the safety net
  }
}

export function clearDraft(key) {
  try { sessionStorage.removeItem(key); } catch (e) { /* nothing kept */ }
}
