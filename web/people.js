// People on a task (collaborators, assignee) and the owner's share dialog.

import { $, state } from './state.js';
import { api } from './api.js';
import { toast } from './toast.js';
import { showError } from './auth.js';
import { applyTask, chip, isMine, removeTask, renderTasks } from './tasks.js';

// People on a task: its collaborators and its assignee

/** A user as this reader knows them: "you", their email, or a stand-in until it is known. */
function personName(userId, task) {
  if (state.me && userId === state.me.id) return 'you';
  if (task && userId === task.owner_id) return state.people.get(userId) || 'the owner';
  return state.people.get(userId) || 'someone';
}

export const ROLE_LABEL = { owner: 'owner', editor: 'editor', viewer: 'viewer' };

export function fillPeople(el, task) {
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
export async function assign(id, assigneeId, control) {
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

export async function leaveTask(id) {
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

// The share dialog (the owner's)

let sharesGen = 0;

export function openShareDialog(id) {
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

/** The dialog closed: no task is being shared, and answers still on their way are dropped. */
export function onShareDialogClosed() {
  state.sharing = null;
  sharesGen += 1;
}

export async function refreshShares() {
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

export async function onShareSubmit(event) {
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
