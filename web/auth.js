// Sign-in, registration, sign-out and the start of a session.

import { $, TOKEN_KEY, state } from './state.js';
import { api } from './api.js';
import { localTimeZone } from './format.js';
import { toast } from './toast.js';
import { elements, loadTasks, selectView } from './tasks.js';
import { live } from './live.js';
import { forgetOnSignOut, initPush } from './push.js';

// Sign-in

export function showError(id, message) {
  const el = $(id);
  el.textContent = message || '';
  el.hidden = !message;
}

export function selectTab(which) {
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

export async function onLogin(event) {
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

export async function onRegister(event) {
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

export function signOut(message) {
  live.stop();
  forgetOnSignOut(state.token);
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

export function showSignedOut() {
  $('board').hidden = true;
  $('session').hidden = true;
  $('auth').hidden = false;
  $('register-timezone').value = localTimeZone();
  selectTab('login');
}

export async function start() {
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
  initPush().catch(() => {});
  await loadTasks();
  live.start();
}
