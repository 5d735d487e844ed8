// The page's settings and shared state, and `$` (an element by id).

export const TOKEN_KEY = 'todo.token';
export const PAGE_SIZE = 100;
export const PING_EVERY_MS = 25_000;
// Attempts without an upgrade after which the cursor is dropped (a fresh start reloads the list).
export const MAX_REFUSALS_WITH_CURSOR = 5;
export const PONG_WITHIN_MS = 10_000;
export const MAX_RETRY_MS = 30_000;

export const $ = (id) => document.getElementById(id);

export const state = {
  token: sessionStorage.getItem(TOKEN_KEY),
  me: null,
  config: null,
  filters: { q: '', status: '', priority: '', tag: '' },
  /** which of VIEWS the list shows */
  view: 'all',
  /** id -> task (REST shape) */
  tasks: new Map(),
  /** id -> version at which it was deleted, so late events cannot bring it back */
  deleted: new Map(),
  /** id -> live-change number, to keep live changes that race a list reload */
  liveStamp: new Map(),
  liveSeq: 0,
  nextCursor: null,
  loadGen: 0,
  editing: null,
  /** user id -> email, learned from GET /api/tasks/{id}/shares (tasks carry only ids) */
  people: new Map(),
  /** task id -> the unknown collaborator ids last asked about, so each set is asked once */
  peopleAsked: new Map(),
  /** id of the task whose share dialog is open */
  sharing: null,
};

/** The list's views: what GET /api/tasks is asked, and the same rule for live changes. */
export const VIEWS = {
  all: { title: 'My tasks', query: {}, empty: 'No tasks here yet.' },
  shared: { title: 'Shared with me', query: { owner: 'others' }, empty: 'Nothing is shared with you yet.' },
  assigned: { title: 'Assigned to me', query: { assignee: 'me' }, empty: 'Nothing is assigned to you.' },
};
