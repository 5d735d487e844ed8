// Web Push: the "Push" button in the top bar subscribes this browser (a service worker, /sw.js,
// and pushManager.subscribe with the server's VAPID public key from /api/config), posts the
// subscription to task-api and adds the push channel to the profile; pressed again, it
// unsubscribes. Hidden when the server has no VAPID key or the browser has no push.

import { $, state } from './state.js';
import { api } from './api.js';
import { toast } from './toast.js';

// The id task-api gave this browser's subscription, to drop it there once the browser no longer
// has it (unsubscribed elsewhere, or replaced by the push service).
const STORED_ID_KEY = 'todo.push.subscription';

const supported = () =>
  'serviceWorker' in navigator && 'PushManager' in window && 'Notification' in window;

/** base64url (the VAPID public key) -> bytes, as applicationServerKey wants them. */
function keyBytes(base64url) {
  const base64 = base64url.replace(/-/g, '+').replace(/_/g, '/');
  const raw = atob(base64 + '='.repeat((4 - (base64.length % 4)) % 4));
  return Uint8Array.from(raw, (c) => c.charCodeAt(0));
}

async function registration() {
  await navigator.serviceWorker.register('/sw.js', { scope: '/' });
  return navigator.serviceWorker.ready;
}

function show(subscribed) {
  const button = $('push-toggle');
  button.hidden = false;
  button.setAttribute('aria-pressed', String(subscribed));
  button.textContent = subscribed ? 'Push on' : 'Push off';
}

/** Store the browser's subscription at task-api (the same endpoint again changes nothing),
 * and drop the one this browser had before if it was another. */
async function remember(subscription) {
  const stored = await api('POST', '/api/me/push-subscriptions', subscription.toJSON());
  await forgetPrevious(stored.id);
  localStorage.setItem(STORED_ID_KEY, stored.id);
  return stored;
}

async function forgetPrevious(keep) {
  const previous = localStorage.getItem(STORED_ID_KEY);
  if (previous && previous !== keep) {
    await api('DELETE', `/api/me/push-subscriptions/${encodeURIComponent(previous)}`).catch(() => {});
  }
  if (!keep) localStorage.removeItem(STORED_ID_KEY);
}

/** Add the push channel to the profile (once: a profile that has it is left as it is). */
async function withPushChannel() {
  const me = await api('GET', '/api/me');
  if (me.notification_channels.includes('push')) return;
  state.me = await api('PATCH', '/api/me', { notification_channels: [...me.notification_channels, 'push'] });
}

export async function subscribe() {
  if ((await Notification.requestPermission()) !== 'granted') {
    throw new Error('Notifications are blocked for this site');
  }
  const reg = await registration();
  const subscription =
    (await reg.pushManager.getSubscription()) ||
    (await reg.pushManager.subscribe({
      userVisibleOnly: true,
      applicationServerKey: keyBytes(state.config.vapid_public_key),
    }));
  const stored = await remember(subscription);
  await withPushChannel();
  show(true);
  return stored;
}

export async function unsubscribe() {
  const reg = await registration();
  const subscription = await reg.pushManager.getSubscription();
  if (subscription) {
    const stored = await api('GET', '/api/me/push-subscriptions');
    const mine = stored.find((s) => s.endpoint === subscription.endpoint);
    if (mine) await api('DELETE', `/api/me/push-subscriptions/${encodeURIComponent(mine.id)}`);
    await subscription.unsubscribe();
  }
  localStorage.removeItem(STORED_ID_KEY);
  show(false);
}

async function toggle() {
  const button = $('push-toggle');
  button.disabled = true;
  try {
    if (button.getAttribute('aria-pressed') === 'true') await unsubscribe();
    else await subscribe();
  } catch (e) {
    toast({ title: 'Push notifications', body: e.message, kind: 'error' });
  } finally {
    button.disabled = false;
  }
}

/** On sign-out: this browser stops receiving the user's pushes (another user may sign in
 * here next; their own subscription is stored when they do). Best effort, with the token
 * being given up; `fetch` directly, as a refusal must not sign out again. */
export function forgetOnSignOut(token) {
  const button = $('push-toggle');
  button.hidden = true;
  button.setAttribute('aria-pressed', 'false');
  const id = localStorage.getItem(STORED_ID_KEY);
  localStorage.removeItem(STORED_ID_KEY);
  if (!id || !token) return;
  fetch(`/api/me/push-subscriptions/${encodeURIComponent(id)}`, {
    method: 'DELETE',
    headers: { Authorization: `Bearer ${token}` },
    keepalive: true,
  }).catch(() => {});
}

/** After sign-in: show the button, and tell task-api again about this browser's subscription
 * (a deleted row comes back while the browser still has it; a gone one the browser drops). */
export async function initPush() {
  const button = $('push-toggle');
  if (!state.config?.vapid_public_key || !supported()) {
    button.hidden = true;
    return;
  }
  if (!button.dataset.wired) {
    button.addEventListener('click', toggle);
    button.dataset.wired = 'true';
  }
  const reg = await navigator.serviceWorker.getRegistration('/');
  const subscription = reg ? await reg.pushManager.getSubscription() : null;
  if (subscription && Notification.permission === 'granted') {
    await remember(subscription).catch(() => {});
    show(true);
  } else {
    await forgetPrevious(null);
    show(false);
  }
}
