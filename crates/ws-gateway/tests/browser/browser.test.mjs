// The task page in Debian's headless Chromium (driven by playwright-core), against a running
// task-api (TASK_API_URL) and ws-gateway (GATEWAY_URL); CONTROL_URL is the harness of
// tests/browser.rs (publishes a reminder, stops and starts the gateway). Run through run.sh.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  BOUND,
  PASSWORD,
  completedItem,
  createTask,
  launchChromium,
  logIn,
  openItem,
  register,
  shot,
  taskItem,
  userId,
  waitLive,
  waitUntil,
} from './harness.mjs';

const API = process.env.TASK_API_URL;
const GATEWAY = process.env.GATEWAY_URL;
const CONTROL = process.env.CONTROL_URL;
const ARTIFACTS = process.env.ARTIFACT_DIR;

const run = Math.random().toString(36).slice(2, 8);
const emailA = `a-${run}-${Date.now()}@example.com`;
const emailB = `b-${run}-${Date.now()}@example.com`;

let browser;
let contextA;
let contextB;
let a1;
let a2;
let b1;
const pageErrors = [];

function watch(page, name) {
  page.on('pageerror', (e) => pageErrors.push(`${name}: ${e.message}`));
  return page;
}

/** Mark the page so that a reload (which would clear the mark) is noticed. */
async function markNoReload(page) {
  await page.evaluate(() => {
    window.__notReloaded = true;
  });
}

async function assertNotReloaded(page) {
  assert.equal(await page.evaluate(() => window.__notReloaded === true), true, 'the page was not reloaded');
}

async function control(pathname, body) {
  const response = await fetch(`${CONTROL}${pathname}`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify(body || {}),
  });
  assert.ok(response.ok, `${pathname}: ${response.status} ${await response.text()}`);
}

async function gatewayCounter(name, label) {
  const text = await (await fetch(`${GATEWAY}/metrics`)).text();
  return text
    .split('\n')
    .filter((l) => l.startsWith(name) && !l.startsWith('#') && (!label || l.includes(label)))
    .map((l) => Number(l.split(' ').pop()))
    .reduce((a, b) => a + b, 0);
}

before(async () => {
  for (const [name, value] of Object.entries({ API, GATEWAY, CONTROL, ARTIFACTS })) {
    assert.ok(value, `${name} must be set (run.sh)`);
  }
  browser = await launchChromium();
  contextA = await browser.newContext({ viewport: { width: 1100, height: 800 } });
  contextB = await browser.newContext({ viewport: { width: 1100, height: 800 } });
  a1 = watch(await contextA.newPage(), 'a1');
  a2 = watch(await contextA.newPage(), 'a2');
  b1 = watch(await contextB.newPage(), 'b1');
  a1.on('dialog', (d) => d.accept());
  a2.on('dialog', (d) => d.accept());
});

after(async () => {
  if (browser) await browser.close();
});

const titles = {
  plants: `Water the plants ${run}`,
  milk: `Buy milk ${run}`,
  edited: `Water the plants and the lawn ${run}`,
  resumed: `Call the plumber ${run}`,
  rent: `Pay the rent ${run}`,
};

test('user A in two windows sees every change live; user B sees none of it', async () => {
  await register(a1, emailA, 'Ada');
  await logIn(a2, emailA);
  await register(b1, emailB, 'Bob');
  await markNoReload(a2);
  await markNoReload(a1);

  await createTask(a1, {
    title: titles.plants,
    priority: 'high',
    tags: 'home, weekly',
    dueInMinutes: 120,
    reminderMinutes: 30,
  });
  // The second window learns of it from the gateway, without reloading.
  await taskItem(a2, titles.plants).waitFor({ timeout: BOUND });
  await assertNotReloaded(a2);
  const text = await taskItem(a2, titles.plants).innerText();
  assert.match(text, /High/);
  assert.match(text, /#home/);
  assert.match(text, /Due /);
  assert.match(text, /30 min before in the app/);

  // A repeating task (never completed here, so no recurring engine that may be running on the
  // same cluster adds a next occurrence to this test's list).
  await createTask(a1, { title: titles.rent, priority: 'medium', rrule: 'FREQ=MONTHLY;BYMONTHDAY=1' });
  await taskItem(a2, titles.rent).waitFor({ timeout: BOUND });
  // The rule in words, not its RRULE text.
  assert.match(await taskItem(a2, titles.rent).innerText(), /Every month on day 1, /);

  // Completing it in the second window updates the first.
  await taskItem(a2, titles.plants).locator('.task-done').check();
  await completedItem(a1, titles.plants).waitFor({ timeout: BOUND });
  await completedItem(a2, titles.plants).waitFor({ timeout: BOUND });

  // Editing in the first updates the second.
  await taskItem(a1, titles.plants).getByRole('button', { name: /^Edit/ }).click();
  await a1.locator('#editor').getByLabel('Title').fill(titles.edited);
  await a1.locator('#editor').getByRole('button', { name: 'Save' }).click();
  await taskItem(a2, titles.edited).waitFor({ timeout: BOUND });

  // A task created in the second window shows up in the first.
  await createTask(a2, { title: titles.milk, priority: 'low', tags: 'shopping' });
  await openItem(a1, titles.milk).waitFor({ timeout: BOUND });
  await assertNotReloaded(a1);
  await assertNotReloaded(a2);

  // User B saw none of it (A's changes all reached A's windows above).
  assert.equal(await b1.locator('li.task').count(), 0);
  assert.equal(await b1.locator('#empty').isVisible(), true);
  await shot(a1, 'a1-two-windows');
  await shot(a2, 'a2-two-windows');
  await shot(b1, 'b1-sees-nothing');
});

test('a reminder fired for the user pops up as a toast in each of its windows', async () => {
  const id = await userId(a1);
  const taskId = await taskItem(a1, titles.edited).getAttribute('data-task-id');
  await control('/reminder', { user_id: id, task_id: taskId, task_title: titles.edited });
  for (const page of [a1, a2]) {
    await page
      .locator('.toast.reminder', { hasText: `Reminder: ${titles.edited}` })
      .waitFor({ timeout: BOUND });
  }
  await shot(a1, 'a1-reminder-toast');
  assert.equal(await b1.locator('.toast.reminder').count(), 0, 'B gets no reminder of A');
});

test('a dropped connection resumes with ?after= and replays exactly what it missed', async () => {
  const a3 = watch(await contextA.newPage(), 'a3');
  const urls = [];
  let gate = null;
  const connections = [];
  await a3.routeWebSocket(/\/ws\/tasks/, async (ws) => {
    urls.push(ws.url());
    if (gate) await gate.promise;
    const server = ws.connectToServer();
    connections.push({ ws, server });
  });
  await logIn(a3, emailA);
  await taskItem(a3, titles.milk).waitFor({ timeout: BOUND });
  await markNoReload(a3);
  assert.doesNotMatch(urls[0], /after=/, 'the first connection starts fresh');

  // The network drops; the page's reconnect is held back until a change has happened.
  let release;
  gate = { promise: new Promise((resolve) => (release = resolve)) };
  const { ws, server } = connections[0];
  await ws.close({ code: 4000, reason: 'network gone' });
  await server.close();
  await waitUntil('the page to try again', () => urls.length >= 2);
  assert.match(urls[1], /[?&]after=[A-Za-z0-9_-]{8,}/, 'the reconnect resumes from its cursor');

  const sentBefore = await gatewayCounter('ws_messages_sent_total', 'type="task_created"');
  const replayedBefore = await gatewayCounter('ws_messages_replayed_total');
  await createTask(a1, { title: titles.resumed, priority: 'critical' });
  // The gateway has routed the new task (to a1 and a2) before the third window is back.
  await waitUntil('the gateway to route the new task', async () => {
    return (await gatewayCounter('ws_messages_sent_total', 'type="task_created"')) > sentBefore;
  });
  assert.equal(await taskItem(a3, titles.resumed).count(), 0);
  release();

  await taskItem(a3, titles.resumed).waitFor({ timeout: BOUND });
  await waitLive(a3);
  await assertNotReloaded(a3);
  assert.ok((await gatewayCounter('ws_messages_replayed_total')) >= replayedBefore + 1, 'it came as a replay');
  await shot(a3, 'a3-resumed');
  await a3.close();
});

test('when the gateway restarts, the page shows it is offline, reconnects and catches up', async () => {
  await control('/gateway/stop');
  await a2.locator('#live-status[data-state="offline"]').waitFor({ timeout: BOUND });
  await markNoReload(a2);
  // A change while the gateway is away. The new gateway process starts after it, so its
  // buffer has nothing: it reads what the page missed back from Kafka (the cursor is a Kafka
  // position), and the page needs no reload.
  await taskItem(a1, titles.milk).locator('.task-done').check();
  await completedItem(a1, titles.milk).waitFor({ timeout: BOUND });
  await shot(a2, 'a2-offline');
  await control('/gateway/start');
  await waitLive(a2);
  await completedItem(a2, titles.milk).waitFor({ timeout: BOUND });
  await assertNotReloaded(a2);
  assert.ok((await gatewayCounter('ws_read_backs_total', 'outcome="served"')) >= 1, 'it was read back from Kafka');

  // And live updates flow again through the new gateway.
  await taskItem(a2, titles.milk).locator('.task-done').uncheck();
  await openItem(a1, titles.milk).waitFor({ timeout: BOUND * 2 });
  await shot(a2, 'a2-after-restart');
});

test('deleting in one window removes the task from the other; filters narrow the list', async () => {
  await taskItem(a1, titles.resumed).getByRole('button', { name: /^Delete/ }).click();
  await taskItem(a2, titles.resumed).waitFor({ state: 'detached', timeout: BOUND });

  const filters = a2.locator('#filters');
  await filters.getByLabel('Priority').selectOption('low');
  await taskItem(a2, titles.edited).waitFor({ state: 'detached', timeout: BOUND });
  await taskItem(a2, titles.milk).waitFor({ timeout: BOUND });
  await filters.getByRole('button', { name: 'Clear' }).click();
  await filters.getByLabel('Search').fill('lawn');
  await taskItem(a2, titles.milk).waitFor({ state: 'detached', timeout: BOUND });
  await taskItem(a2, titles.edited).waitFor({ timeout: BOUND });
  await shot(a2, 'a2-filtered');
  assert.deepEqual(pageErrors, [], 'no script errors in any window');
});

// Seed 000's frontend, unchanged: it reads message.data as the task itself.
const SEED_CLIENT = (wsBase, token) => {
  const ws = new WebSocket(`${wsBase}/ws/tasks?token=${token}`);
  ws.onmessage = (event) => {
    const message = JSON.parse(event.data);
    if (message.type === 'task_created') {
      console.log('New task:', message.data);
      console.log('New task id:', message.data.id, 'title:', message.data.title);
    }
  };
  return ws;
};

async function apiAs(token, method, pathname, body) {
  const response = await fetch(`${API}${pathname}`, {
    method,
    headers: { 'Content-Type': 'application/json', ...(token ? { Authorization: `Bearer ${token}` } : {}) },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  assert.ok(response.ok, `${method} ${pathname}: ${response.status} ${text}`);
  return text ? JSON.parse(text) : null;
}

async function newUser(prefix, timezone) {
  const email = `${prefix}-${run}-${Date.now()}@example.com`;
  await apiAs(null, 'POST', '/api/auth/register', { email, password: PASSWORD, timezone });
  const login = await apiAs(null, 'POST', '/api/auth/login', { email, password: PASSWORD });
  return login.access_token;
}

test("seed 000's client snippet logs the created task's id and title from message.data", async () => {
  const token = await newUser('seed', 'UTC');
  const context = await browser.newContext();
  const page = watch(await context.newPage(), 'seed');
  const logged = [];
  page.on('console', async (m) => {
    try {
      logged.push(await Promise.all(m.args().map((a) => a.jsonValue())));
    } catch {
      // a page being closed
    }
  });
  await page.goto(`${API}/openapi.json`);
  const wsBase = GATEWAY.replace(/^http/, 'ws');
  await page.evaluate(
    ({ source, wsBase, token }) =>
      new Promise((resolve, reject) => {
        // eslint-disable-next-line no-new-func
        const ws = new Function(`return (${source})`)()(wsBase, token);
        // Not part of the snippet: start only once the gateway has registered the connection.
        ws.addEventListener('message', (e) => JSON.parse(e.data).type === 'ready' && resolve());
        ws.addEventListener('error', () => reject(new Error('WebSocket failed')));
      }),
    { source: SEED_CLIENT.toString(), wsBase, token },
  );
  const task = await apiAs(token, 'POST', '/api/tasks', { title: `Seed client ${run}`, priority: 'high' });
  // Both lines: each console message's arguments arrive on their own (the object's later than
  // the strings'), so the second line may be recorded before the first.
  await waitUntil(
    'the snippet logged the new task',
    () =>
      logged.some((args) => args[0] === 'New task id:' && args[1] === task.id) &&
      logged.some((args) => args[0] === 'New task:' && args[1] && args[1].id === task.id),
  );
  const [, data] = logged.find((args) => args[0] === 'New task:');
  assert.equal(data.id, task.id);
  assert.equal(data.title, `Seed client ${run}`);
  assert.deepEqual(data, task, 'the logged task is the REST task JSON');
  const line = logged.find((args) => args[0] === 'New task id:');
  assert.deepEqual(line, ['New task id:', task.id, 'title:', `Seed client ${run}`]);
  await context.close();
});

test("recurrence reads in words and due dates name the task's zone when it is not the browser's", async () => {
  const token = await newUser('zones', 'Europe/Berlin');
  // 2027-03-01 is a Monday; 08:00 UTC is 09:00 in Berlin (CET).
  await apiAs(token, 'POST', '/api/tasks', {
    title: `Yoga ${run}`,
    due_at: '2027-03-01T08:00:00Z',
    recurrence: { rrule: 'FREQ=WEEKLY;BYDAY=MO,WE,FR', timezone: 'Europe/Berlin' },
  });
  await apiAs(token, 'POST', '/api/tasks', {
    title: `Standup ${run}`,
    due_at: '2027-03-01T14:00:00Z',
    recurrence: { cron: '0 9 * * 1-5', timezone: 'America/New_York' },
  });
  const context = await browser.newContext({ timezoneId: 'Asia/Tokyo' });
  const page = watch(await context.newPage(), 'zones');
  await page.goto(API);
  await page.evaluate((t) => sessionStorage.setItem('todo.token', t), token);
  await page.goto(API);
  await taskItem(page, `Yoga ${run}`).waitFor({ timeout: BOUND });
  const yoga = await taskItem(page, `Yoga ${run}`).innerText();
  assert.match(yoga, /Every week on Mon, Wed, Fri at 09:00, Europe\/Berlin/);
  assert.match(yoga, /Due .*\(Europe\/Berlin\)/);
  const standup = await taskItem(page, `Standup ${run}`).innerText();
  assert.match(standup, /Every week on Mon–Fri at 09:00, America\/New_York/);
  await shot(page, 'zones');
  await context.close();
});
