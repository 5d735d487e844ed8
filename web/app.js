// The task page: sign-in, the task list with filters and views (all, shared with me, assigned
// to me), the editor, sharing and assignment, and the live feed from the ws-gateway (other
// tabs' and other people's changes appear, reminders pop up, reconnects resume with ?after=).
// Plain ES module, no framework, no build step, nothing fetched from elsewhere.

const TOKEN_KEY = 'todo.token';
const PAGE_SIZE = 100;
const PING_EVERY_MS = 25_000;
// Attempts without an upgrade after which the cursor is dropped (a fresh start reloads the list).
const MAX_REFUSALS_WITH_CURSOR = 5;
const PONG_WITHIN_MS = 10_000;
const MAX_RETRY_MS = 30_000;

const $ = (id) => document.getElementById(id);

const state = {
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
const VIEWS = {
  all: { title: 'My tasks', query: {}, empty: 'No tasks here yet.' },
  shared: { title: 'Shared with me', query: { owner: 'others' }, empty: 'Nothing is shared with you yet.' },
  assigned: { title: 'Assigned to me', query: { assignee: 'me' }, empty: 'Nothing is assigned to you.' },
};

// ---------------------------------------------------------------------------------------------
// REST

class ApiError extends Error {
  constructor(status, problem) {
    super(problemText(status, problem));
    this.status = status;
    this.problem = problem;
  }
}

function problemText(status, problem) {
  if (!problem || typeof problem !== 'object') return `Request failed (${status})`;
  const fields = Array.isArray(problem.errors)
    ? problem.errors.map((e) => `${e.field}: ${e.message}`).join('; ')
    : '';
  return [problem.detail || problem.title || `Request failed (${status})`, fields]
    .filter(Boolean)
    .join(' — ');
}

async function api(method, path, body, extraHeaders = {}) {
  const headers = { Accept: 'application/json', ...extraHeaders };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  if (state.token) headers.Authorization = `Bearer ${state.token}`;
  let response;
  try {
    response = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch {
    throw new ApiError(0, { detail: 'The server cannot be reached. Check your connection.' });
  }
  const text = await response.text();
  let data = null;
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = null;
    }
  }
  if (!response.ok) {
    if (response.status === 401 && state.token && !path.startsWith('/api/auth/')) {
      signOut('Your session has ended. Please log in again.');
    }
    throw new ApiError(response.status, data);
  }
  return data;
}

// ---------------------------------------------------------------------------------------------
// Time helpers

const dateFormat = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'short' });

function formatTime(iso) {
  if (!iso) return '';
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? iso : dateFormat.format(d);
}

/** A time in an IANA zone, named when that zone is not the browser's (09:00 in Berlin is not
 *  09:00 here). */
function formatTimeIn(iso, zone) {
  if (!iso || !zone || zone === localTimeZone()) return formatTime(iso);
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return iso;
  try {
    const inZone = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'short', timeZone: zone });
    return `${inZone.format(d)} (${zone})`;
  } catch {
    return formatTime(iso);
  }
}

/** HH:MM of a time in a zone (24-hour), or '' when it cannot be shown. */
function clockIn(iso, zone) {
  const d = new Date(iso);
  if (!iso || Number.isNaN(d.getTime())) return '';
  try {
    const parts = new Intl.DateTimeFormat('en-GB', { hour: '2-digit', minute: '2-digit', hourCycle: 'h23', timeZone: zone }).formatToParts(d);
    const get = (type) => (parts.find((p) => p.type === type) || {}).value || '';
    return `${get('hour')}:${get('minute')}`;
  } catch {
    return '';
  }
}

// ---------------------------------------------------------------------------------------------
// Recurrence in words: "Every week on Mon, Wed, Fri at 09:00, Europe/Berlin", from the rule.

const WEEKDAYS = { MO: 'Mon', TU: 'Tue', WE: 'Wed', TH: 'Thu', FR: 'Fri', SA: 'Sat', SU: 'Sun' };
const CRON_WEEKDAYS = ['Sun', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat', 'Sun'];
const CRON_DAY_NAMES = { SUN: 0, MON: 1, TUE: 2, WED: 3, THU: 4, FRI: 5, SAT: 6 };
const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
const UNITS = { SECONDLY: 'second', MINUTELY: 'minute', HOURLY: 'hour', DAILY: 'day', WEEKLY: 'week', MONTHLY: 'month', YEARLY: 'year' };
const ORDINALS = { 1: 'first', 2: 'second', 3: 'third', 4: 'fourth', 5: 'fifth', '-1': 'last', '-2': 'second to last' };
const pad2 = (n) => String(n).padStart(2, '0');

function listWords(items) {
  return items.join(', ');
}

function describeRRule(text, dueAt, zone) {
  const parts = {};
  for (const piece of text.replace(/^RRULE:/i, '').split(';')) {
    const [k, v] = piece.split('=');
    if (k && v) parts[k.trim().toUpperCase()] = v.trim().toUpperCase();
  }
  const unit = UNITS[parts.FREQ];
  if (!unit) return null;
  const n = Number(parts.INTERVAL || 1);
  const words = [n > 1 ? `Every ${n} ${unit}s` : `Every ${unit}`];
  if (parts.BYDAY) {
    const days = parts.BYDAY.split(',').map((d) => {
      const m = /^([+-]?\d+)?([A-Z]{2})$/.exec(d);
      if (!m || !WEEKDAYS[m[2]]) return d;
      return m[1] ? `the ${ORDINALS[Number(m[1])] || `${m[1]}.`} ${WEEKDAYS[m[2]]}` : WEEKDAYS[m[2]];
    });
    words.push(`on ${listWords(days)}`);
  }
  if (parts.BYMONTHDAY) words.push(`on day ${listWords(parts.BYMONTHDAY.split(','))}`);
  if (parts.BYMONTH) words.push(`in ${listWords(parts.BYMONTH.split(',').map((m) => MONTHS[Number(m) - 1] || m))}`);
  if (parts.BYHOUR) {
    const minutes = (parts.BYMINUTE || '0').split(',');
    const times = parts.BYHOUR.split(',').flatMap((h) => minutes.map((m) => `${pad2(h)}:${pad2(m)}`));
    words.push(`at ${listWords(times)}`);
  } else if (dueAt && ['day', 'week', 'month', 'year'].includes(unit)) {
    const clock = clockIn(dueAt, zone);
    if (clock) words.push(`at ${clock}`);
  }
  return { text: words.join(' '), count: parts.COUNT ? Number(parts.COUNT) : null };
}

function cronDay(token) {
  const t = token.toUpperCase();
  return t in CRON_DAY_NAMES ? CRON_DAY_NAMES[t] : Number(t);
}

function describeCron(text) {
  let fields = text.trim().split(/\s+/);
  if (fields.length === 6 || fields.length === 7) fields = fields.slice(1, 6); // seconds first
  if (fields.length !== 5) return null;
  const [minute, hour, dom, month, dow] = fields;
  if (!/^\d+$/.test(minute) || !/^\d+(,\d+)*$/.test(hour)) return null;
  const at = `at ${listWords(hour.split(',').map((h) => `${pad2(h)}:${pad2(minute)}`))}`;
  const words = [];
  if (dow !== '*' && dow !== '?') {
    const days = [];
    for (const piece of dow.split(',')) {
      const range = piece.split('-');
      if (range.length === 2) {
        const [a, b] = range.map(cronDay);
        if (Number.isNaN(a) || Number.isNaN(b)) return null;
        days.push(`${CRON_WEEKDAYS[a]}–${CRON_WEEKDAYS[b]}`);
      } else {
        const d = cronDay(piece);
        if (Number.isNaN(d) || !CRON_WEEKDAYS[d]) return null;
        days.push(CRON_WEEKDAYS[d]);
      }
    }
    words.push(`Every week on ${listWords(days)}`);
  } else if (dom !== '*' && dom !== '?') {
    words.push(`Every month on day ${listWords(dom.split(','))}`);
  } else {
    words.push('Every day');
  }
  if (month !== '*') words.push(`in ${listWords(month.split(',').map((m) => MONTHS[Number(m) - 1] || m))}`);
  words.push(at);
  return { text: words.join(' '), count: null };
}

/** A recurrence in words, e.g. "Every week on Mon, Wed, Fri at 09:00, Europe/Berlin". */
function describeRecurrence(r, dueAt) {
  const rule = r.rrule ? describeRRule(r.rrule, dueAt, r.timezone) : describeCron(r.cron || '');
  const base = rule ? rule.text : r.rrule ? `Repeats ${r.rrule}` : `Repeats (cron ${r.cron})`;
  const count = r.count || (rule && rule.count);
  const extra = [];
  if (r.until) extra.push(`until ${formatTimeIn(r.until, r.timezone)}`);
  if (count) extra.push(`${count} times`);
  if (r.mode === 'after_completion') extra.push('counted from completion');
  return [base, r.timezone, ...extra].filter(Boolean).join(', ');
}

/** RFC 3339 -> value of an <input type="datetime-local"> (local time). */
function toLocalInput(iso) {
  if (!iso) return '';
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return '';
  const pad = (n) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}`;
}

/** Value of a datetime-local input (local time) -> RFC 3339 UTC, or null. */
function fromLocalInput(value) {
  if (!value) return null;
  const d = new Date(value);
  return Number.isNaN(d.getTime()) ? null : d.toISOString();
}

function localTimeZone() {
  try {
    return Intl.DateTimeFormat().resolvedOptions().timeZone || 'UTC';
  } catch {
    return 'UTC';
  }
}

// ---------------------------------------------------------------------------------------------
// Toasts

function toast({ title, body = '', kind = 'info', timeoutMs = 8000 }) {
  const item = document.createElement('div');
  item.className = `toast ${kind}`;
  item.setAttribute('role', kind === 'error' ? 'alert' : 'status');
  item.dataset.kind = kind;
  const text = document.createElement('div');
  text.className = 'toast-text';
  const strong = document.createElement('strong');
  strong.textContent = title;
  text.append(strong);
  if (body) {
    const p = document.createElement('p');
    p.textContent = body;
    text.append(p);
  }
  const close = document.createElement('button');
  close.type = 'button';
  close.className = 'toast-close';
  close.setAttribute('aria-label', 'Dismiss');
  close.textContent = '×';
  close.addEventListener('click', () => item.remove());
  item.append(text, close);
  $('toasts').append(item);
  if (timeoutMs > 0) setTimeout(() => item.remove(), timeoutMs);
}

// ---------------------------------------------------------------------------------------------
// Sign-in

function showError(id, message) {
  const el = $(id);
  el.textContent = message || '';
  el.hidden = !message;
}

function selectTab(which) {
  const login = which === 'login';
  $('tab-login').setAttribute('aria-selected', String(login));
  $('tab-register').setAttribute('aria-selected', String(!login));
  $('tab-login').tabIndex = login ? 0 : -1;
  $('tab-register').tabIndex = login ? -1 : 0;
  $('login-form').hidden = !login;
  $('register-form').hidden = login;
  (login ? $('login-email') : $('register-name')).focus();
}

async function logIn(email, password) {
  const token = await api('POST', '/api/auth/login', { email, password });
  state.token = token.access_token;
  sessionStorage.setItem(TOKEN_KEY, state.token);
  await start();
}

async function onLogin(event) {
  event.preventDefault();
  const form = event.currentTarget;
  showError('login-error', '');
  const email = form.email.value.trim();
  const password = form.password.value;
  if (!email || !password) {
    showError('login-error', 'Enter your email and password.');
    return;
  }
  const button = form.querySelector('button[type=submit]');
  button.disabled = true;
  try {
    await logIn(email, password);
    form.reset();
  } catch (e) {
    showError('login-error', e.status === 401 ? 'Wrong email or password.' : e.message);
  } finally {
    button.disabled = false;
  }
}

async function onRegister(event) {
  event.preventDefault();
  const form = event.currentTarget;
  showError('register-error', '');
  const email = form.email.value.trim();
  const password = form.password.value;
  if (!email || password.length < 8) {
    showError('register-error', 'Enter an email and a password of at least 8 characters.');
    return;
  }
  const body = { email, password, timezone: form.timezone.value.trim() || localTimeZone() };
  const name = form.name.value.trim();
  if (name) body.name = name;
  const button = form.querySelector('button[type=submit]');
  button.disabled = true;
  try {
    await api('POST', '/api/auth/register', body);
    await logIn(email, password);
    form.reset();
  } catch (e) {
    showError('register-error', e.message);
  } finally {
    button.disabled = false;
  }
}

function signOut(message) {
  live.stop();
  state.token = null;
  state.me = null;
  state.tasks.clear();
  state.deleted.clear();
  state.liveStamp.clear();
  state.people.clear();
  state.peopleAsked.clear();
  state.nextCursor = null;
  sessionStorage.removeItem(TOKEN_KEY);
  $('tasks').replaceChildren();
  elements.clear();
  selectView('all', { load: false });
  if ($('editor').open) $('editor').close();
  if ($('share-dialog').open) $('share-dialog').close();
  showSignedOut();
  if (message) showError('login-error', message);
}

function showSignedOut() {
  $('board').hidden = true;
  $('session').hidden = true;
  $('auth').hidden = false;
  $('register-timezone').value = localTimeZone();
  selectTab('login');
}

async function start() {
  $('auth').hidden = true;
  $('board').hidden = false;
  $('session').hidden = false;
  try {
    const [me, config] = await Promise.all([
      api('GET', '/api/me'),
      state.config ? Promise.resolve(state.config) : api('GET', '/api/config'),
    ]);
    state.me = me;
    state.config = config;
    $('who').textContent = me.name || me.email;
  } catch (e) {
    if (state.token) toast({ title: 'Could not load your account', body: e.message, kind: 'error' });
    return;
  }
  await loadTasks();
  live.start();
}

// ---------------------------------------------------------------------------------------------
// The task list

function isMine(task) {
  return !task.role || task.role === 'owner';
}

function matchesView(task) {
  if (state.view === 'shared') return !isMine(task);
  if (state.view === 'assigned') return Boolean(state.me) && task.assignee_id === state.me.id;
  return true;
}

function matchesFilters(task) {
  if (!matchesView(task)) return false;
  const f = state.filters;
  if (f.status && task.status !== f.status) return false;
  if (f.priority && task.priority !== f.priority) return false;
  if (f.tag && !(task.tags || []).some((t) => t.toLowerCase() === f.tag.toLowerCase())) return false;
  if (f.q) {
    const q = f.q.toLowerCase();
    const text = `${task.title} ${task.description || ''}`.toLowerCase();
    if (!text.includes(q)) return false;
  }
  return true;
}

function compareTasks(a, b) {
  // The API's default order: newest first.
  const ta = a.created_at || '';
  const tb = b.created_at || '';
  if (ta !== tb) return ta < tb ? 1 : -1;
  return a.id < b.id ? 1 : -1;
}

async function loadTasks({ append = false } = {}) {
  const gen = ++state.loadGen;
  const startedAt = state.liveSeq;
  const params = new URLSearchParams({ limit: String(PAGE_SIZE), ...VIEWS[state.view].query });
  for (const [key, value] of Object.entries(state.filters)) {
    if (value) params.set(key, value);
  }
  if (append && state.nextCursor) params.set('cursor', state.nextCursor);
  $('tasks').setAttribute('aria-busy', 'true');
  try {
    const page = await api('GET', `/api/tasks?${params}`);
    if (gen !== state.loadGen) return;
    if (!append) {
      // Keep what changed live while this page was on its way; drop everything else.
      for (const [id] of state.tasks) {
        if ((state.liveStamp.get(id) || 0) <= startedAt) state.tasks.delete(id);
      }
    }
    for (const task of page.items) applyTask(task, { live: false });
    state.nextCursor = page.next_cursor || null;
    renderTasks();
  } catch (e) {
    if (state.token) toast({ title: 'Could not load tasks', body: e.message, kind: 'error' });
  } finally {
    if (gen === state.loadGen) $('tasks').setAttribute('aria-busy', 'false');
  }
}

/** Last writer wins per task, by version. A task that went away (deleted, or no longer shared
 *  with us) stays away unless a newer version comes: sharing it again brings it back. */
function applyTask(task, { live = true } = {}) {
  const goneAt = state.deleted.get(task.id);
  if (goneAt !== undefined && !(task.version > goneAt)) return false;
  const current = state.tasks.get(task.id);
  if (current && task.version && current.version > task.version) return false;
  state.deleted.delete(task.id);
  state.tasks.set(task.id, task);
  if (live) state.liveStamp.set(task.id, ++state.liveSeq);
  return true;
}

function removeTask(id, version) {
  state.tasks.delete(id);
  state.deleted.set(id, version || 0);
  state.liveStamp.set(id, ++state.liveSeq);
  if (state.sharing === id) $('share-dialog').close();
  if (state.editing && state.editing.id === id && $('editor').open) {
    $('editor').close();
    toast({ title: 'The task you were editing is no longer available', kind: 'error' });
  }
}

const elements = new Map();

function renderTasks() {
  const list = $('tasks');
  const visible = [...state.tasks.values()].filter(matchesFilters).sort(compareTasks);
  const keep = new Set(visible.map((t) => t.id));
  for (const [id, el] of elements) {
    if (!keep.has(id)) {
      el.remove();
      elements.delete(id);
    }
  }
  let position = list.firstElementChild;
  for (const task of visible) {
    let el = elements.get(task.id);
    if (!el) {
      el = createTaskElement(task.id);
      elements.set(task.id, el);
    }
    fillTaskElement(el, task);
    if (el !== position) list.insertBefore(el, position);
    else position = position.nextElementSibling;
  }
  $('empty').hidden = visible.length > 0;
  $('empty').textContent = hasFilters() ? 'No tasks match these filters.' : VIEWS[state.view].empty;
  $('load-more').hidden = !state.nextCursor;
}

function hasFilters() {
  return Object.values(state.filters).some(Boolean);
}

function createTaskElement(id) {
  const el = $('task-template').content.firstElementChild.cloneNode(true);
  el.dataset.taskId = id;
  el.querySelector('.task-done').addEventListener('change', (e) => toggleDone(id, e.currentTarget));
  el.querySelector('.task-edit').addEventListener('click', () => openEditor(state.tasks.get(id)));
  el.querySelector('.task-delete').addEventListener('click', () => deleteTask(id));
  el.querySelector('.task-share').addEventListener('click', () => openShareDialog(id));
  el.querySelector('.task-leave').addEventListener('click', () => leaveTask(id));
  el.querySelector('.task-assignee').addEventListener('change', (e) => assign(id, e.currentTarget.value || null, e.currentTarget));
  el.querySelector('.task-take').addEventListener('click', (e) => assign(id, state.me.id, e.currentTarget));
  el.querySelector('.task-give-back').addEventListener('click', (e) => assign(id, null, e.currentTarget));
  return el;
}

const PRIORITY_LABEL = { critical: 'Critical', high: 'High', medium: 'Medium', low: 'Low' };
const CHANNEL_LABEL = { in_app: 'in the app', email: 'by email', webhook: 'by webhook' };

function fillTaskElement(el, task) {
  const done = task.status === 'completed';
  el.classList.toggle('done', done);
  el.dataset.status = task.status;
  el.dataset.version = String(task.version);
  const role = task.role || 'owner';
  const owner = role === 'owner';
  const mayEdit = owner || role === 'editor';
  el.dataset.role = role;
  const checkbox = el.querySelector('.task-done');
  checkbox.checked = done;
  // A viewer reads: the controls show the state but do not act (the API would refuse anyway).
  checkbox.disabled = !mayEdit;
  checkbox.title = mayEdit ? '' : 'Read-only: shared with you as a viewer';
  checkbox.setAttribute('aria-label', `${done ? 'Reopen' : 'Complete'} “${task.title}”`);
  el.querySelector('.task-title').textContent = task.title;
  const badge = el.querySelector('.priority');
  badge.textContent = PRIORITY_LABEL[task.priority] || task.priority;
  badge.className = `badge priority ${task.priority}`;
  const description = el.querySelector('.task-description');
  description.textContent = task.description || '';
  description.hidden = !task.description;
  const meta = el.querySelector('.task-meta');
  const parts = [];
  if (task.due_at) {
    const overdue = !done && new Date(task.due_at).getTime() < Date.now();
    parts.push(chip(`${overdue ? 'Overdue' : 'Due'} ${formatTimeIn(task.due_at, taskZone(task))}`, overdue ? 'due overdue' : 'due'));
  }
  if (done && task.completed_at) parts.push(chip(`Done ${formatTime(task.completed_at)}`, 'completed'));
  if (task.recurrence) {
    const chipEl = chip(describeRecurrence(task.recurrence, task.due_at), 'recurrence');
    chipEl.title = task.recurrence.rrule ? `RRULE ${task.recurrence.rrule}` : `cron ${task.recurrence.cron}`;
    parts.push(chipEl);
  }
  const reminders = task.reminders || [];
  if (reminders.length) {
    const words = reminders.map((r) =>
      r.before_due != null ? `${r.before_due} min before ${CHANNEL_LABEL[r.channel] || r.channel}` : `${formatTime(r.at)} ${CHANNEL_LABEL[r.channel] || r.channel}`,
    );
    parts.push(chip(`Reminders: ${words.join('; ')}`, 'reminder-chip'));
  }
  for (const tag of task.tags || []) parts.push(chip(`#${tag}`, 'tag'));
  meta.replaceChildren(...parts);
  el.querySelector('.task-edit').setAttribute('aria-label', `Edit “${task.title}”`);
  el.querySelector('.task-delete').setAttribute('aria-label', `Delete “${task.title}”`);
  el.querySelector('.task-share').setAttribute('aria-label', `Share “${task.title}”`);
  el.querySelector('.task-leave').setAttribute('aria-label', `Leave “${task.title}”`);
  el.querySelector('.task-edit').hidden = !mayEdit;
  el.querySelector('.task-delete').hidden = !owner;
  el.querySelector('.task-share').hidden = !owner;
  el.querySelector('.task-leave').hidden = owner;
  fillPeople(el, task);
}

/** The zone a task's times are meant in: its rule's, else the user's profile zone. */
function taskZone(task) {
  return (task.recurrence && task.recurrence.timezone) || (state.me && state.me.timezone) || null;
}

function chip(text, className) {
  const span = document.createElement('span');
  span.className = `chip ${className}`;
  span.textContent = text;
  return span;
}

async function toggleDone(id, checkbox) {
  const task = state.tasks.get(id);
  if (!task) return;
  const action = task.status === 'completed' ? 'reopen' : 'complete';
  checkbox.disabled = true;
  try {
    const updated = await api('POST', `/api/tasks/${encodeURIComponent(id)}/${action}`);
    if (updated && updated.id) applyTask(updated);
  } catch (e) {
    toast({ title: `Could not ${action} the task`, body: e.message, kind: 'error' });
  } finally {
    checkbox.disabled = false;
    renderTasks();
  }
}

async function deleteTask(id) {
  const task = state.tasks.get(id);
  if (!task) return;
  if (!window.confirm(`Delete “${task.title}”?`)) return;
  try {
    await api('DELETE', `/api/tasks/${encodeURIComponent(id)}`);
    removeTask(id, task.version + 1);
    renderTasks();
  } catch (e) {
    if (e.status === 404) {
      removeTask(id, task.version);
      renderTasks();
    } else {
      toast({ title: 'Could not delete the task', body: e.message, kind: 'error' });
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Views

function selectView(view, { load = true } = {}) {
  if (!VIEWS[view]) return;
  state.view = view;
  for (const button of $('views').querySelectorAll('.view')) {
    button.setAttribute('aria-pressed', String(button.dataset.view === view));
  }
  $('board-title').textContent = VIEWS[view].title;
  if (load) {
    renderTasks();
    loadTasks();
  }
}

// ---------------------------------------------------------------------------------------------
// People on a task: its collaborators and its assignee

/** A user as this reader knows them: "you", their email, or a stand-in until it is known. */
function personName(userId, task) {
  if (state.me && userId === state.me.id) return 'you';
  if (task && userId === task.owner_id) return state.people.get(userId) || 'the owner';
  return state.people.get(userId) || 'someone';
}

const ROLE_LABEL = { owner: 'owner', editor: 'editor', viewer: 'viewer' };

function fillPeople(el, task) {
  const me = state.me && state.me.id;
  const owner = isMine(task);
  const collaborators = task.collaborators || [];
  const sharing = el.querySelector('.task-sharing');
  const chips = [];
  if (!owner) {
    chips.push(chip(`Shared with you as ${ROLE_LABEL[task.role] || task.role}`, `role ${task.role}`));
  }
  const others = collaborators.filter((c) => c.user_id !== me);
  if (others.length) {
    const names = others.map((c) => `${personName(c.user_id, task)} (${ROLE_LABEL[c.role] || c.role})`);
    chips.push(chip(`${owner ? 'Shared with' : 'Also shared with'} ${names.join(', ')}`, 'collaborators'));
  }
  sharing.replaceChildren(...chips);
  sharing.hidden = chips.length === 0;

  const assignee = task.assignee_id || null;
  const field = el.querySelector('.assignee-field');
  const assigned = el.querySelector('.task-assigned');
  // The owner picks anyone who may see the task; a collaborator takes it or gives it back.
  field.hidden = !owner || (!others.length && !assignee);
  if (!field.hidden) fillAssigneePicker(el.querySelector('.task-assignee'), task, others);
  assigned.hidden = !field.hidden || !assignee;
  assigned.textContent = assignee ? `Assigned to ${personName(assignee, task)}` : '';
  assigned.classList.toggle('to-me', assignee === me);
  el.querySelector('.task-take').hidden = owner || assignee === me;
  el.querySelector('.task-give-back').hidden = owner || assignee !== me;
  el.querySelector('.task-take').setAttribute('aria-label', `Take “${task.title}”`);
  el.querySelector('.task-give-back').setAttribute('aria-label', `Give back “${task.title}”`);
  el.dataset.assignee = assignee || '';
  wantEmails(task);
}

function fillAssigneePicker(select, task, others) {
  const options = [['', 'Nobody'], [state.me.id, 'Me']];
  for (const c of others) options.push([c.user_id, `${personName(c.user_id, task)} (${ROLE_LABEL[c.role] || c.role})`]);
  if (task.assignee_id && !options.some(([id]) => id === task.assignee_id)) {
    options.push([task.assignee_id, personName(task.assignee_id, task)]);
  }
  // Rebuilt only when the choices change, so that a live update does not close an open list.
  const signature = JSON.stringify(options);
  if (select.dataset.options !== signature) {
    select.replaceChildren(
      ...options.map(([value, label]) => {
        const option = document.createElement('option');
        option.value = value;
        option.textContent = label;
        return option;
      }),
    );
    select.dataset.options = signature;
  }
  select.value = task.assignee_id || '';
  select.setAttribute('aria-label', `Assignee of “${task.title}”`);
}

/** Ask the task's shares for the emails of collaborators not known yet, once per such set. */
function wantEmails(task) {
  const unknown = (task.collaborators || [])
    .map((c) => c.user_id)
    .filter((id) => id !== (state.me && state.me.id) && !state.people.has(id))
    .sort();
  if (!unknown.length) return;
  const key = unknown.join(',');
  if (state.peopleAsked.get(task.id) === key) return;
  state.peopleAsked.set(task.id, key);
  api('GET', `/api/tasks/${encodeURIComponent(task.id)}/shares`)
    .then((shares) => {
      learnPeople(shares);
      renderTasks();
    })
    .catch(() => {
      /* the ids stay as stand-ins; asked again when the collaborators change */
    });
}

function learnPeople(shares) {
  for (const share of shares || []) {
    if (share.user_id && share.email) state.people.set(share.user_id, share.email);
  }
}

/** Assignment is one field set to what the user picked: last writer wins, no If-Match. */
async function assign(id, assigneeId, control) {
  const task = state.tasks.get(id);
  if (!task) return;
  control.disabled = true;
  try {
    const updated = await api('PATCH', `/api/tasks/${encodeURIComponent(id)}`, { assignee_id: assigneeId });
    if (updated && updated.id) applyTask(updated);
  } catch (e) {
    toast({ title: 'Could not change who the task is assigned to', body: e.message, kind: 'error' });
  } finally {
    control.disabled = false;
    renderTasks();
  }
}

async function leaveTask(id) {
  const task = state.tasks.get(id);
  if (!task || !state.me) return;
  if (!window.confirm(`Leave “${task.title}”? Its owner can share it with you again.`)) return;
  try {
    await api('DELETE', `/api/tasks/${encodeURIComponent(id)}/shares/${encodeURIComponent(state.me.id)}`);
    removeTask(id, task.version + 1);
    renderTasks();
  } catch (e) {
    toast({ title: 'Could not leave the task', body: e.message, kind: 'error' });
  }
}

// ---------------------------------------------------------------------------------------------
// The share dialog (the owner's)

let sharesGen = 0;

function openShareDialog(id) {
  const task = state.tasks.get(id);
  if (!task) return;
  state.sharing = id;
  $('share-form').reset();
  showError('share-error', '');
  $('share-subject').textContent = `“${task.title}”`;
  $('shares').replaceChildren();
  $('shares-empty').hidden = true;
  $('share-dialog').showModal();
  $('share-email').focus();
  refreshShares();
}

async function refreshShares() {
  const id = state.sharing;
  if (!id) return;
  const gen = ++sharesGen;
  try {
    const shares = await api('GET', `/api/tasks/${encodeURIComponent(id)}/shares`);
    if (gen !== sharesGen || state.sharing !== id) return;
    learnPeople(shares);
    renderShares(shares);
    renderTasks();
  } catch (e) {
    if (gen === sharesGen) showError('share-error', e.message);
  }
}

function renderShares(shares) {
  const rows = shares.map((share) => {
    const row = $('share-template').content.firstElementChild.cloneNode(true);
    const pending = share.status === 'pending';
    row.dataset.email = share.email;
    row.dataset.status = share.status;
    row.dataset.role = share.role;
    if (share.user_id) row.dataset.userId = share.user_id;
    row.querySelector('.share-who').textContent = share.email;
    const status = row.querySelector('.share-status');
    status.textContent = pending ? 'Invitation pending' : 'Has access';
    status.classList.toggle('pending', pending);
    status.title = pending ? 'Takes effect when this address registers' : '';
    const role = row.querySelector('.share-role');
    role.value = share.role;
    role.setAttribute('aria-label', `Role of ${share.email}`);
    role.addEventListener('change', () => changeShare(share.email, role.value, role));
    const remove = row.querySelector('.share-remove');
    remove.setAttribute('aria-label', `Remove ${share.email}`);
    remove.addEventListener('click', () => removeShare(share, remove));
    return row;
  });
  $('shares').replaceChildren(...rows);
  $('shares-empty').hidden = rows.length > 0;
}

/** After a share changes, the task (its collaborators, its assignee) is read again: the live
 *  feed would bring it too, but the page must be right without it. */
async function reloadSharedTask(id) {
  try {
    const fresh = await api('GET', `/api/tasks/${encodeURIComponent(id)}`);
    if (applyTask(fresh)) renderTasks();
  } catch {
    /* the live feed or the next list load brings it */
  }
}

async function changeShare(email, role, control) {
  const id = state.sharing;
  if (!id) return;
  showError('share-error', '');
  control.disabled = true;
  try {
    await api('POST', `/api/tasks/${encodeURIComponent(id)}/shares`, { email, role });
    await Promise.all([refreshShares(), reloadSharedTask(id)]);
    return true;
  } catch (e) {
    showError('share-error', e.message);
    return false;
  } finally {
    control.disabled = false;
  }
}

async function onShareSubmit(event) {
  event.preventDefault();
  const form = event.currentTarget;
  const email = form.email.value.trim();
  if (!email || !email.includes('@')) {
    showError('share-error', 'Enter the email of the person to share with.');
    return;
  }
  // Cleared once shared, unless the user has typed the next address meanwhile.
  if ((await changeShare(email, form.role.value, $('share-submit'))) && form.email.value.trim() === email) {
    form.email.value = '';
    form.email.focus();
  }
}

async function removeShare(share, control) {
  const id = state.sharing;
  if (!id) return;
  showError('share-error', '');
  control.disabled = true;
  try {
    const who = share.user_id || share.email;
    await api('DELETE', `/api/tasks/${encodeURIComponent(id)}/shares/${encodeURIComponent(who)}`);
    await Promise.all([refreshShares(), reloadSharedTask(id)]);
  } catch (e) {
    showError('share-error', e.message);
    control.disabled = false;
  }
}

// ---------------------------------------------------------------------------------------------
// Filters

let filterTimer = null;

function readFilters() {
  const form = $('filters');
  state.filters = {
    q: form.q.value.trim(),
    status: form.status.value,
    priority: form.priority.value,
    tag: form.tag.value.trim(),
  };
}

function onFilterChange(event) {
  const typing = event.type === 'input' && (event.target.name === 'q' || event.target.name === 'tag');
  clearTimeout(filterTimer);
  filterTimer = setTimeout(() => {
    readFilters();
    renderTasks();
    loadTasks();
  }, typing ? 250 : 0);
}

// ---------------------------------------------------------------------------------------------
// The editor

function addReminderRow(reminder) {
  const row = $('reminder-template').content.firstElementChild.cloneNode(true);
  const kind = row.querySelector('.reminder-kind');
  const minutes = row.querySelector('.reminder-minutes');
  const at = row.querySelector('.reminder-at');
  const sync = () => {
    minutes.hidden = kind.value !== 'before_due';
    at.hidden = kind.value !== 'at';
  };
  kind.addEventListener('change', sync);
  row.querySelector('.reminder-remove').addEventListener('click', () => row.remove());
  if (reminder) {
    if (reminder.at) {
      kind.value = 'at';
      at.value = toLocalInput(reminder.at);
    } else {
      minutes.value = String(reminder.before_due ?? 30);
    }
    row.querySelector('.reminder-channel').value = reminder.channel || 'in_app';
  }
  sync();
  $('reminders').append(row);
  return row;
}

function syncRecurrenceFields() {
  const kind = $('rec-kind').value;
  $('rec-rule-field').hidden = !kind;
  $('rec-details').hidden = !kind;
  $('rec-rule').placeholder = kind === 'cron' ? '0 9 * * MON' : 'FREQ=WEEKLY;BYDAY=MO,WE';
}

function openEditor(task) {
  state.editing = task || null;
  const form = $('task-form');
  form.reset();
  showError('task-error', '');
  $('editor-title').textContent = task ? 'Edit task' : 'New task';
  $('reminders').replaceChildren();
  $('rec-timezone').value = (state.me && state.me.timezone) || localTimeZone();
  if (task) {
    form.title.value = task.title;
    form.description.value = task.description || '';
    form.priority.value = task.priority;
    form.due_at.value = toLocalInput(task.due_at);
    form.tags.value = (task.tags || []).join(', ');
    const r = task.recurrence;
    if (r) {
      $('rec-kind').value = r.rrule ? 'rrule' : 'cron';
      $('rec-rule').value = r.rrule || r.cron || '';
      $('rec-timezone').value = r.timezone;
      $('rec-mode').value = r.mode;
      $('rec-until').value = toLocalInput(r.until);
      $('rec-count').value = r.count ?? '';
    }
    for (const reminder of task.reminders || []) addReminderRow(reminder);
  }
  syncRecurrenceFields();
  $('editor').showModal();
  form.title.focus();
}

function readTaskForm() {
  const form = $('task-form');
  const title = form.title.value.trim();
  if (!title) throw new Error('Give the task a title.');
  const body = {
    title,
    description: form.description.value.trim() || null,
    priority: form.priority.value,
    due_at: fromLocalInput(form.due_at.value),
    tags: form.tags.value
      .split(',')
      .map((t) => t.trim())
      .filter(Boolean),
    recurrence: null,
    reminders: [],
  };
  const kind = $('rec-kind').value;
  if (kind) {
    const rule = $('rec-rule').value.trim();
    if (!rule) throw new Error(`Enter the ${kind === 'cron' ? 'cron expression' : 'RRULE'} or choose “Does not repeat”.`);
    const recurrence = {
      [kind]: rule,
      timezone: $('rec-timezone').value.trim() || localTimeZone(),
      mode: $('rec-mode').value,
    };
    const until = fromLocalInput($('rec-until').value);
    if (until) recurrence.until = until;
    const count = $('rec-count').value.trim();
    if (count) recurrence.count = Number(count);
    body.recurrence = recurrence;
  }
  for (const row of $('reminders').children) {
    const channel = row.querySelector('.reminder-channel').value;
    if (row.querySelector('.reminder-kind').value === 'at') {
      const at = fromLocalInput(row.querySelector('.reminder-at').value);
      if (!at) throw new Error('Pick a time for each “at a time” reminder.');
      body.reminders.push({ at, channel });
    } else {
      const minutes = Number(row.querySelector('.reminder-minutes').value);
      if (!Number.isInteger(minutes) || minutes < 0) throw new Error('Reminder minutes must be a whole number.');
      if (!body.due_at) throw new Error('A “before due” reminder needs a due date.');
      body.reminders.push({ before_due: minutes, channel });
    }
  }
  return body;
}

async function onSaveTask(event) {
  event.preventDefault();
  showError('task-error', '');
  let body;
  try {
    body = readTaskForm();
  } catch (e) {
    showError('task-error', e.message);
    return;
  }
  const editing = state.editing;
  const button = $('save-task');
  button.disabled = true;
  try {
    let task;
    if (editing) {
      task = await api('PATCH', `/api/tasks/${encodeURIComponent(editing.id)}`, body, {
        'If-Match': `"${editing.version}"`,
      });
    } else {
      if (!body.recurrence) delete body.recurrence;
      if (!body.description) delete body.description;
      if (!body.due_at) delete body.due_at;
      task = await api('POST', '/api/tasks', body, { 'Idempotency-Key': crypto.randomUUID() });
    }
    applyTask(task);
    renderTasks();
    $('editor').close();
  } catch (e) {
    if (e.status === 412) {
      showError('task-error', 'This task was changed elsewhere meanwhile. Its newest version is loaded; edit again.');
      try {
        const fresh = await api('GET', `/api/tasks/${encodeURIComponent(editing.id)}`);
        applyTask(fresh);
        renderTasks();
        state.editing = fresh;
      } catch {
        /* the error above says enough */
      }
    } else {
      showError('task-error', e.message);
    }
  } finally {
    button.disabled = false;
  }
}

// ---------------------------------------------------------------------------------------------
// The live feed

const live = {
  ws: null,
  cursor: null,
  attempt: 0,
  // Connection attempts in a row that ended before the upgrade.
  refusals: 0,
  retryTimer: null,
  pingTimer: null,
  lastHeard: 0,
  running: false,

  start() {
    this.running = true;
    this.cursor = null;
    this.connect();
  },

  stop() {
    this.running = false;
    clearTimeout(this.retryTimer);
    clearInterval(this.pingTimer);
    const ws = this.ws;
    this.ws = null;
    if (ws) ws.close(1000, 'signed out');
    setLive('offline', 'Offline');
  },

  connect() {
    clearTimeout(this.retryTimer);
    if (!this.running || !state.token || !state.config || this.ws) return;
    const params = new URLSearchParams({ token: state.token });
    const resuming = this.cursor !== null;
    if (resuming) params.set('after', this.cursor);
    setLive('connecting', resuming ? 'Reconnecting…' : 'Connecting…');
    const base = state.config.ws_url.replace(/\/+$/, '');
    let ws;
    try {
      ws = new WebSocket(`${base}/ws/tasks?${params}`);
    } catch {
      this.retry();
      return;
    }
    this.ws = ws;
    let opened = false;
    ws.addEventListener('open', () => {
      opened = true;
      this.attempt = 0;
      this.refusals = 0;
      this.lastHeard = Date.now();
      clearInterval(this.pingTimer);
      this.pingTimer = setInterval(() => this.heartbeat(ws), PING_EVERY_MS);
    });
    ws.addEventListener('message', (event) => {
      if (this.ws !== ws) return;
      this.lastHeard = Date.now();
      onLiveMessage(event.data, resuming);
    });
    ws.addEventListener('close', (event) => {
      if (this.ws !== ws) return;
      this.ws = null;
      clearInterval(this.pingTimer);
      if (event.code === 4001) {
        signOut('Your session has expired. Please log in again.');
        return;
      }
      if (!opened) {
        // No upgrade: the gateway is away (the usual case: keep the cursor, any gateway
        // instance serves it when one is back), the token is no longer valid (the REST call
        // then signs out), or the cursor is refused; the browser cannot tell which. After a
        // few refusals in a row, start over with a fresh list.
        this.refusals += 1;
        if (this.refusals >= MAX_REFUSALS_WITH_CURSOR) this.cursor = null;
        api('GET', '/api/me').catch(() => {});
      }
      if (event.code === 4008) {
        toast({ title: 'Live updates fell behind', body: 'Reloading your tasks.', kind: 'info' });
      }
      this.retry(event.code === 1001 ? 0 : undefined);
    });
  },

  heartbeat(ws) {
    if (this.ws !== ws || ws.readyState !== WebSocket.OPEN) return;
    if (Date.now() - this.lastHeard > PING_EVERY_MS + PONG_WITHIN_MS) {
      // Nothing heard, not even our pong: the connection is dead without knowing it.
      this.ws = null;
      clearInterval(this.pingTimer);
      try {
        ws.close(4000, 'no pong');
      } catch {
        /* already closing */
      }
      this.retry();
      return;
    }
    ws.send('ping');
  },

  retry(attemptOverride) {
    if (!this.running) return;
    if (attemptOverride !== undefined) this.attempt = attemptOverride;
    const base = Math.min(MAX_RETRY_MS, 500 * 2 ** this.attempt);
    const delay = Math.round(base * (0.5 + Math.random() / 2));
    this.attempt += 1;
    setLive('offline', `Offline — retrying in ${Math.max(1, Math.round(delay / 1000))} s`);
    clearTimeout(this.retryTimer);
    this.retryTimer = setTimeout(() => this.connect(), delay);
  },

  reconnectNow() {
    if (this.running && !this.ws) {
      this.attempt = 0;
      this.connect();
    }
  },
};

function setLive(kind, text) {
  const el = $('live-status');
  el.dataset.state = kind;
  $('live-text').textContent = text;
}

function onLiveMessage(data, resuming) {
  if (data === 'pong') return;
  let message;
  try {
    message = JSON.parse(data);
  } catch {
    return;
  }
  if (message.cursor) live.cursor = message.cursor;
  switch (message.type) {
    case 'ready':
      setLive('live', 'Live');
      // A fresh connection (not a resume): what happened while we were away is only in the
      // list, so reload it.
      if (!resuming) loadTasks();
      break;
    case 'resync':
      loadTasks();
      break;
    case 'task_created':
    case 'task_updated':
    case 'task_completed':
    case 'task_assigned':
      // data is the task itself, exactly as GET /api/tasks/{id} returns it (role ours)
      if (message.data && message.data.id && applyTask(message.data)) renderTasks();
      break;
    case 'task_shared':
      onTaskShared(message);
      break;
    case 'task_deleted':
      if (message.data) {
        removeTask(message.data.id, message.data.version);
        renderTasks();
      }
      break;
    case 'reminder_triggered': {
      const d = message.data || {};
      const due = d.due_at ? `Due ${formatTimeIn(d.due_at, state.me && state.me.timezone)}` : '';
      toast({
        title: `Reminder: ${d.task_title || 'a task'}`,
        body: [due, d.late ? '(sent late)' : ''].filter(Boolean).join(' '),
        kind: 'reminder',
        timeoutMs: 20_000,
      });
      break;
    }
    case 'notification_sent': {
      const d = message.data || {};
      if (d.status === 'failed') {
        toast({
          title: `A reminder ${CHANNEL_LABEL[d.channel] || ''} could not be delivered`,
          body: d.error || '',
          kind: 'error',
        });
      }
      break;
    }
    default:
      // Newer gateways may send more kinds; ignore what we do not know.
      break;
  }
}

/** A share changed: the task as we now see it, or, when our share was removed, only its id
 *  and version (no title, no role): then it is gone for us, as if deleted. */
function onTaskShared(message) {
  const data = message.data || {};
  if (!data.id) return;
  const share = message.share || {};
  const aboutMe = Boolean(state.me) && share.user_id === state.me.id;
  if (!data.role || typeof data.title !== 'string' || (aboutMe && share.role === 'none')) {
    const title = (state.tasks.get(data.id) || {}).title;
    if (state.tasks.has(data.id)) {
      removeTask(data.id, data.version);
      renderTasks();
      if (aboutMe && title) toast({ title: `“${title}” is no longer shared with you` });
    } else {
      state.deleted.set(data.id, data.version || 0);
    }
    return;
  }
  const known = state.tasks.has(data.id);
  if (applyTask(data)) {
    renderTasks();
    if (aboutMe && !known) {
      toast({ title: `Shared with you: “${data.title}”`, body: `You are its ${ROLE_LABEL[data.role] || data.role}.` });
    }
  }
  if (state.sharing === data.id) refreshShares();
}

// ---------------------------------------------------------------------------------------------
// Wiring

function wire() {
  $('tab-login').addEventListener('click', () => selectTab('login'));
  $('tab-register').addEventListener('click', () => selectTab('register'));
  for (const tab of [$('tab-login'), $('tab-register')]) {
    tab.addEventListener('keydown', (e) => {
      if (e.key === 'ArrowLeft' || e.key === 'ArrowRight') {
        selectTab(tab.id === 'tab-login' ? 'register' : 'login');
        (tab.id === 'tab-login' ? $('tab-register') : $('tab-login')).focus();
      }
    });
  }
  $('login-form').addEventListener('submit', onLogin);
  $('register-form').addEventListener('submit', onRegister);
  $('logout').addEventListener('click', () => signOut());
  $('new-task').addEventListener('click', () => openEditor(null));
  $('task-form').addEventListener('submit', onSaveTask);
  $('cancel-task').addEventListener('click', () => $('editor').close());
  $('add-reminder').addEventListener('click', () => {
    const row = addReminderRow(null);
    row.querySelector('select').focus();
  });
  $('rec-kind').addEventListener('change', syncRecurrenceFields);
  $('filters').addEventListener('input', onFilterChange);
  $('filters').addEventListener('change', onFilterChange);
  $('filters').addEventListener('submit', (e) => e.preventDefault());
  $('filters').addEventListener('reset', () => setTimeout(() => onFilterChange({ type: 'reset', target: {} }), 0));
  $('load-more').addEventListener('click', () => loadTasks({ append: true }));
  for (const button of $('views').querySelectorAll('.view')) {
    button.addEventListener('click', () => selectView(button.dataset.view));
  }
  $('share-form').addEventListener('submit', onShareSubmit);
  $('close-share').addEventListener('click', () => $('share-dialog').close());
  $('share-dialog').addEventListener('close', () => {
    state.sharing = null;
    sharesGen += 1;
  });
  window.addEventListener('online', () => live.reconnectNow());
  document.addEventListener('visibilitychange', () => {
    if (document.visibilityState === 'visible') live.reconnectNow();
  });
}

wire();
if (state.token) {
  start();
} else {
  showSignedOut();
}
