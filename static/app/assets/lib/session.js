// Who is signed in: GET /api/me once, shared by every page.
import { createContext, useContext } from '../vendor/htm-preact.js';

export const Session = createContext({ me: null, reload: () => {} });

export function useSession() { return useContext(Session); }

export function hasRole(me, ...roles) {
  return !!(me && me.user && me.user.roles && roles.some((r) => me.user.roles.includes(r)));
}

// receives reports whether the user works on the receiving side
// (specialist, coordinator or bed manager).
export function receives(me) { return hasRole(me, 'specialist', 'coordinator', 'bed_manager'); }
