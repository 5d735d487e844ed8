// The task page: sign-in, the task list with filters and views (all, shared with me, assigned
// to me), the editor, sharing and assignment, and the live feed from the ws-gateway (other
// tabs' and other people's changes appear, reminders pop up, reconnects resume with ?after=).
// Plain ES module, no framework, no build step, nothing fetched from elsewhere.
// This file wires the page together; each concern lives in its own module beside it.

import { $, state } from './state.js';
import { onLogin, onRegister, selectTab, showSignedOut, signOut, start } from './auth.js';
import { loadTasks, onFilterChange, selectView } from './tasks.js';
import { onShareDialogClosed, onShareSubmit } from './people.js';
import { addReminderRow, onSaveTask, openEditor, syncRecurrenceFields } from './editor.js';
import { live } from './live.js';
import { wirePhone } from './phone.js';

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
  $('share-dialog').addEventListener('close', onShareDialogClosed);
  wirePhone();
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
