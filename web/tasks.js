// The task list: loading, live changes applied, rendering, views and filters.

import { $, PAGE_SIZE, VIEWS, state } from './state.js';
import { api } from './api.js';
import { describeRecurrence, formatTime, formatTimeIn } from './format.js';
import { toast } from './toast.js';
import { assign, fillPeople, leaveTask, openShareDialog } from './people.js';
import { openEditor } from './editor.js';
import { live } from './live.js';

// The task list

export function isMine(task) {
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

export async function loadTasks({ append = false } = {}) {
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
export function applyTask(task, { live = true } = {}) {
  const goneAt = state.deleted.get(task.id);
  if (goneAt !== undefined && !(task.version > goneAt)) return false;
  const current = state.tasks.get(task.id);
  if (current && task.version && current.version > task.version) return false;
  state.deleted.delete(task.id);
  state.tasks.set(task.id, task);
  if (live) state.liveStamp.set(task.id, ++state.liveSeq);
  return true;
}

export function removeTask(id, version) {
  state.tasks.delete(id);
  state.deleted.set(id, version || 0);
  state.liveStamp.set(id, ++state.liveSeq);
  if (state.sharing === id) $('share-dialog').close();
  if (state.editing && state.editing.id === id && $('editor').open) {
    $('editor').close();
    toast({ title: 'The task you were editing is no longer available', kind: 'error' });
  }
}

export const elements = new Map();

export function renderTasks() {
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
export const CHANNEL_LABEL = { in_app: 'in the app', email: 'by email', webhook: 'by webhook', sms: 'by SMS', push: 'by push' };

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

export function chip(text, className) {
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

// Views

export function selectView(view, { load = true } = {}) {
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

export function onFilterChange(event) {
  const typing = event.type === 'input' && (event.target.name === 'q' || event.target.name === 'tag');
  clearTimeout(filterTimer);
  filterTimer = setTimeout(() => {
    readFilters();
    renderTasks();
    loadTasks();
  }, typing ? 250 : 0);
}
