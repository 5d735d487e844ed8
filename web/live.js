// The live feed from ws-gateway: connect, resume with ?after=, apply each message.

import {
  $,
  MAX_REFUSALS_WITH_CURSOR,
  MAX_RETRY_MS,
  PING_EVERY_MS,
  PONG_WITHIN_MS,
  state,
} from './state.js';
import { api } from './api.js';
import { formatTimeIn } from './format.js';
import { toast } from './toast.js';
import { signOut, start } from './auth.js';
import { CHANNEL_LABEL, applyTask, loadTasks, removeTask, renderTasks } from './tasks.js';
import { ROLE_LABEL, refreshShares } from './people.js';

// The live feed

export const live = {
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
