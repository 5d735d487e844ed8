// The notifications dialog: which channels the user's reminders and "assigned to you" notices
// go out on (PATCH /api/me), and the phone number SMS goes to: entered (a code is texted to
// it), verified with the code, or removed (PUT, POST verify, DELETE /api/me/phone). The server
// keeps the rules (sms needs a verified number and a server with an SMS gateway); this page
// shows what it answers.

import { $, state } from './state.js';
import { api } from './api.js';
import { showError } from './auth.js';
import { toast } from './toast.js';

function clearErrors() {
  for (const id of ['channels-error', 'phone-error']) $(id).hidden = true;
}

/** Show the user's profile in the dialog. */
function render(me) {
  state.me = me;
  const chosen = new Set(me.notification_channels);
  for (const box of $('channels-form').querySelectorAll('input[name="channel"]')) {
    box.checked = chosen.has(box.value);
  }
  $('webhook-url').value = me.webhook_url || '';
  const verified = Boolean(me.phone_number && me.phone_verified);
  $('sms-hint').hidden = verified;
  $('phone-status').textContent = !me.phone_number
    ? 'No number yet.'
    : verified
      ? `SMS goes to ${me.phone_number}.`
      : `${me.phone_number} is not verified yet: enter the code sent to it.`;
  $('phone-verify-form').hidden = !me.phone_number || verified;
  $('phone-remove').hidden = !me.phone_number;
}

async function open() {
  clearErrors();
  try {
    render(await api('GET', '/api/me'));
  } catch (e) {
    toast({ title: 'Could not load your settings', body: e.message, kind: 'error' });
    return;
  }
  $('channels-dialog').showModal();
}

async function onSaveChannels(event) {
  event.preventDefault();
  clearErrors();
  const channels = [...$('channels-form').querySelectorAll('input[name="channel"]:checked')]
    .map((box) => box.value);
  const url = $('webhook-url').value.trim();
  try {
    render(await api('PATCH', '/api/me', { notification_channels: channels, webhook_url: url || null }));
    toast({ title: 'Channels saved' });
  } catch (e) {
    showError('channels-error', e.message);
  }
}

async function onSendCode(event) {
  event.preventDefault();
  clearErrors();
  const number = $('phone-number').value.trim();
  if (!number) return showError('phone-error', 'Enter a number with its country code, e.g. +49 151 12345678.');
  try {
    render(await api('PUT', '/api/me/phone', { phone_number: number }));
    if (!state.me.phone_verified) $('phone-code').focus();
  } catch (e) {
    showError('phone-error', e.message);
  }
}

async function onVerify(event) {
  event.preventDefault();
  clearErrors();
  try {
    render(await api('POST', '/api/me/phone/verify', { code: $('phone-code').value.trim() }));
    $('phone-code').value = '';
    toast({ title: 'Number verified', body: 'Tick “By SMS” and save to get texts.' });
  } catch (e) {
    showError('phone-error', e.message);
  }
}

async function onRemove() {
  clearErrors();
  try {
    await api('DELETE', '/api/me/phone');
    render(await api('GET', '/api/me'));
  } catch (e) {
    showError('phone-error', e.message);
  }
}

export function wirePhone() {
  $('open-channels').addEventListener('click', open);
  $('close-channels').addEventListener('click', () => $('channels-dialog').close());
  $('channels-form').addEventListener('submit', onSaveChannels);
  $('phone-form').addEventListener('submit', onSendCode);
  $('phone-verify-form').addEventListener('submit', onVerify);
  $('phone-remove').addEventListener('click', onRemove);
}
