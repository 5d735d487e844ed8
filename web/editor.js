// The editor: a task's fields, recurrence and reminders.

import { $, state } from './state.js';
import { api } from './api.js';
import { fromLocalInput, localTimeZone, toLocalInput } from './format.js';
import { showError } from './auth.js';
import { applyTask, renderTasks } from './tasks.js';

// The editor

export function addReminderRow(reminder) {
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
  // Push is offered only where the server has a VAPID key (an existing push reminder keeps it).
  if (!state.config?.vapid_public_key && reminder?.channel !== 'push') {
    row.querySelector('.reminder-channel option[value="push"]')?.remove();
  }
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

export function syncRecurrenceFields() {
  const kind = $('rec-kind').value;
  $('rec-rule-field').hidden = !kind;
  $('rec-details').hidden = !kind;
  $('rec-rule').placeholder = kind === 'cron' ? '0 9 * * MON' : 'FREQ=WEEKLY;BYDAY=MO,WE';
}

export function openEditor(task) {
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

export async function onSaveTask(event) {
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
