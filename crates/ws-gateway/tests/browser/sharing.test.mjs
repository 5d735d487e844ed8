// Sharing and assignment on the task page, three users in one headless Chromium (a context
// each): A shares a task with B through the share dialog, B sees it under "Shared with me" and
// completes it, A assigns it to B with the picker, B finds it under "Assigned to me" (and, with
// ASSIGNMENT_MAIL=1, gets a mail), A makes B a viewer, B gives the task back and takes it
// again, A removes B, shares again, and B leaves.
// Every change shows in the other user's page live. C, signed in all along, never hears of the
// task: not in the page, not on its WebSocket. Runs once per task-api the harness started
// (TASK_API_URL on SQLite, TASK_API_URL_POSTGRES on PostgreSQL), both behind one gateway.
// Run through run.sh (tests/browser.rs starts the services).

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  BOUND,
  completedItem,
  createTask,
  launchChromium,
  register,
  shot,
  taskItem,
  userId,
  waitUntil,
} from './harness.mjs';

const BACKENDS = [
  ['SQLite', process.env.TASK_API_URL],
  ['PostgreSQL', process.env.TASK_API_URL_POSTGRES],
].filter(([, url]) => url);
const MAIL_CHECKED = process.env.ASSIGNMENT_MAIL === '1';
const MAILPIT = process.env.MAILPIT_API || 'http://127.0.0.1:8025/api/v1';
/** How long a mail may take: the event's trip through Kafka plus an SMTP delivery. */
const MAIL_BOUND = 45_000;

/** Is this the mail notification-service sends a task's new assignee? Its wording is the
 *  service's to choose: this test asks only that a mail to the assignee names the task. Adjust
 *  here if that changes. */
function isAssignmentMail(mail, title) {
  return `${mail.Subject}\n${mail.Text}`.includes(title);
}

async function mailsTo(address) {
  const search = new URL(`${MAILPIT}/search`);
  search.searchParams.set('query', `to:"${address}"`);
  const found = await (await fetch(search)).json();
  return Promise.all(
    (found.messages || []).map(async (m) => (await fetch(`${MAILPIT}/message/${m.ID}`)).json()),
  );
}

let browser;
const pageErrors = [];

before(async () => {
  assert.ok(BACKENDS.length > 0, 'TASK_API_URL must be set (run.sh)');
  assert.ok(process.env.ARTIFACT_DIR, 'ARTIFACT_DIR must be set (run.sh)');
  browser = await launchChromium();
});

after(async () => {
  if (browser) await browser.close();
});

async function userPage(name) {
  const context = await browser.newContext({ viewport: { width: 1100, height: 800 } });
  const page = await context.newPage();
  page.on('pageerror', (e) => pageErrors.push(`${name}: ${e.message}`));
  return { context, page };
}

/** Record every WebSocket frame the page receives. */
function recordFrames(page) {
  const frames = [];
  page.on('websocket', (ws) => ws.on('framereceived', (f) => frames.push(String(f.payload))));
  return frames;
}

const parsed = (frames) =>
  frames.flatMap((f) => {
    try {
      return [JSON.parse(f)];
    } catch {
      return []; // pong
    }
  });

async function markNoReload(page) {
  await page.evaluate(() => {
    window.__notReloaded = true;
  });
}

async function assertNotReloaded(page, who) {
  assert.equal(await page.evaluate(() => window.__notReloaded === true), true, `${who}'s page was not reloaded`);
}

async function showView(page, name) {
  await page.locator('#views').getByRole('button', { name, exact: true }).click();
  await page.getByRole('heading', { name: name === 'All' ? 'My tasks' : name }).waitFor({ timeout: BOUND });
}

/** The whole story on one task-api; `pages` gets each user's page (for screenshots on failure). */
async function shareAssignAndWatch(t, backend, api, pages) {
  const run = `${Math.random().toString(36).slice(2, 8)}-${Date.now()}`;
  const email = (who) => `${who}-${run}@example.com`;
  const [emailA, emailB, emailC, invited] = ['a', 'b', 'c', 'invited'].map(email);
  const title = `Plan the trip ${backend} ${run}`;
  const ownTitleC = `Water the fern ${backend} ${run}`;
  const prefix = backend.toLowerCase();

  const { page: a } = await userPage(`${backend} A`);
  const { page: b } = await userPage(`${backend} B`);
  const { context: contextC, page: c } = await userPage(`${backend} C`);
  Object.assign(pages, { a, b, c });
  const framesB = recordFrames(b);
  const framesC = recordFrames(c);
  // Whatever C's page shows at any moment, not only at the end: every change of its DOM is
  // checked for the task's title.
  await contextC.addInitScript((watched) => {
    window.__sawTask = [];
    const check = () => {
      const text = document.documentElement ? document.documentElement.textContent : '';
      const at = text.indexOf(watched);
      if (at >= 0) window.__sawTask.push(text.slice(Math.max(0, at - 80), at + watched.length + 80).replace(/\s+/g, ' '));
    };
    new MutationObserver(check).observe(document, { subtree: true, childList: true, characterData: true });
  }, title);

  await register(c, emailC, 'Cleo', api);
  await register(a, emailA, 'Ada', api);
  await register(b, emailB, 'Bob', api);
  const idB = await userId(b);
  await markNoReload(a);
  await markNoReload(b);

  // B waits under "Shared with me", empty so far.
  await showView(b, 'Shared with me');
  await b.getByText('Nothing is shared with you yet.').waitFor({ timeout: BOUND });

  await createTask(a, { title, priority: 'high' });
  const taskId = await taskItem(a, title).getAttribute('data-task-id');

  // A shares it with B as editor through the dialog, and invites an address with no account.
  await taskItem(a, title).getByRole('button', { name: /^Share/ }).click();
  const dialog = a.locator('#share-dialog');
  await dialog.getByLabel('Email').fill(emailB);
  await dialog.getByLabel('Role', { exact: true }).selectOption('editor');
  await dialog.getByRole('button', { name: 'Share', exact: true }).click();
  await dialog
    .locator(`li.share[data-email="${emailB}"][data-status="active"][data-role="editor"]`)
    .waitFor({ timeout: BOUND });
  await dialog.getByLabel('Email').fill(invited);
  await dialog.getByRole('button', { name: 'Share', exact: true }).click();
  const invitation = dialog.locator(`li.share[data-email="${invited}"][data-status="pending"]`);
  await invitation.waitFor({ timeout: BOUND });
  assert.match(await invitation.innerText(), /Invitation pending/);
  await shot(a, `${prefix}-a-share-dialog`);
  await invitation.getByRole('button', { name: `Remove ${invited}` }).click();
  await invitation.waitFor({ state: 'detached', timeout: BOUND });
  await dialog.getByRole('button', { name: 'Done' }).click();
  await dialog.waitFor({ state: 'hidden', timeout: BOUND });

  // B sees it under "Shared with me" without reloading, as an editor: may complete and edit,
  // may not delete or share.
  await taskItem(b, title).waitFor({ timeout: BOUND });
  await assertNotReloaded(b, 'B');
  const itemB = taskItem(b, title);
  assert.match(await itemB.innerText(), /Shared with you as editor/);
  assert.equal(await itemB.getByRole('button', { name: /^Edit/ }).isVisible(), true);
  assert.equal(await itemB.getByRole('button', { name: /^Delete/ }).isVisible(), false);
  assert.equal(await itemB.getByRole('button', { name: /^Share/ }).isVisible(), false);
  const shared = parsed(framesB).find((m) => m.type === 'task_shared' && m.data.id === taskId);
  assert.ok(shared, 'B heard task_shared');
  assert.deepEqual(shared.share, { user_id: idB, role: 'editor' });
  // A's task names B (the email from the task's shares).
  await taskItem(a, title).getByText(`Shared with ${emailB} (editor)`).waitFor({ timeout: BOUND });

  // B completes it; A's page shows it completed.
  await itemB.locator('.task-done').check();
  await completedItem(a, title).waitFor({ timeout: BOUND });
  await assertNotReloaded(a, 'A');
  await shot(b, `${prefix}-b-shared-with-me`);

  // B waits under "Assigned to me"; A assigns the task to B with the picker.
  await showView(b, 'Assigned to me');
  await taskItem(b, title).waitFor({ state: 'detached', timeout: BOUND });
  const picker = taskItem(a, title).getByLabel(/^Assignee of/);
  await picker.locator('option', { hasText: emailB }).waitFor({ state: 'attached', timeout: BOUND });
  await picker.selectOption({ label: `${emailB} (editor)` });
  await a.locator(`li.task[data-task-id="${taskId}"][data-assignee="${idB}"]`).waitFor({ timeout: BOUND });
  await taskItem(b, title).waitFor({ timeout: BOUND });
  assert.match(await taskItem(b, title).innerText(), /Assigned to you/);
  const assigned = parsed(framesB).find((m) => m.type === 'task_assigned' && m.data.id === taskId);
  assert.ok(assigned, 'B heard task_assigned');
  assert.equal(assigned.data.assignee_id, idB);
  assert.equal(assigned.previous_assignee_id, null);
  await shot(b, `${prefix}-b-assigned-to-me`);
  await shot(a, `${prefix}-a-assigned-to-b`);

  if (MAIL_CHECKED) {
    await waitUntil(
      `a mail to ${emailB} about “${title}” in Mailpit`,
      async () => (await mailsTo(emailB)).some((m) => isAssignmentMail(m, title)),
      MAIL_BOUND,
    );
  } else {
    t.diagnostic('the assignment mail is not checked (set TEST_ASSIGNMENT_MAIL=1 where notification-service sends it)');
  }

  // A makes B a viewer: B's page turns read-only. B may still give the task back.
  await taskItem(a, title).getByRole('button', { name: /^Share/ }).click();
  await dialog.getByLabel(`Role of ${emailB}`).selectOption('viewer');
  await dialog.locator(`li.share[data-email="${emailB}"][data-role="viewer"]`).waitFor({ timeout: BOUND });
  await b.locator(`li.task[data-task-id="${taskId}"][data-role="viewer"]`).waitFor({ timeout: BOUND });
  assert.equal(await taskItem(b, title).locator('.task-done').isDisabled(), true);
  assert.equal(await taskItem(b, title).getByRole('button', { name: /^Edit/ }).isVisible(), false);
  await shot(b, `${prefix}-b-viewer`);
  await taskItem(b, title).getByRole('button', { name: /^Give back/ }).click();
  await taskItem(b, title).waitFor({ state: 'detached', timeout: BOUND });
  await a.locator(`li.task[data-task-id="${taskId}"][data-assignee=""]`).waitFor({ timeout: BOUND });

  // B takes it again, from the whole list.
  await showView(b, 'All');
  await taskItem(b, title).getByRole('button', { name: /^Take/ }).click();
  await a.locator(`li.task[data-task-id="${taskId}"][data-assignee="${idB}"]`).waitFor({ timeout: BOUND });

  // A removes B (which also unassigns B): gone from B's page, live.
  await dialog.getByRole('button', { name: `Remove ${emailB}` }).click();
  await dialog.locator(`li.share[data-email="${emailB}"]`).waitFor({ state: 'detached', timeout: BOUND });
  await taskItem(b, title).waitFor({ state: 'detached', timeout: BOUND });
  await a.locator(`li.task[data-task-id="${taskId}"][data-assignee=""]`).waitFor({ timeout: BOUND });
  assert.doesNotMatch(await taskItem(a, title).innerText(), /Shared with/);
  await assertNotReloaded(b, 'B');

  // A shares it once more, as viewer; this time B leaves it with the task's Leave button.
  await dialog.getByLabel('Email').fill(emailB);
  await dialog.getByLabel('Role', { exact: true }).selectOption('viewer');
  await dialog.getByRole('button', { name: 'Share', exact: true }).click();
  await dialog.locator(`li.share[data-email="${emailB}"][data-role="viewer"]`).waitFor({ timeout: BOUND });
  await dialog.getByRole('button', { name: 'Done' }).click();
  await dialog.waitFor({ state: 'hidden', timeout: BOUND });
  await taskItem(b, title).waitFor({ timeout: BOUND });
  b.once('dialog', (d) => d.accept()); // "Leave …? Its owner can share it with you again."
  await taskItem(b, title).getByRole('button', { name: /^Leave/ }).click();
  await taskItem(b, title).waitFor({ state: 'detached', timeout: BOUND });
  // A's page hears it live: the task is no longer shared.
  await waitUntil('A to see that B left', async () => !/Shared with/.test(await taskItem(a, title).innerText()));
  const left = parsed(framesB).filter((m) => m.type === 'task_shared' && m.data.id === taskId).pop();
  assert.deepEqual(left.share, { user_id: idB, role: 'none' }, 'B heard its own leaving');
  await assertNotReloaded(b, 'B');

  // C's feed works (its own new task arrives on it, after everything above went through the
  // same gateway), and it never carried A's task; nor did C's page ever show it.
  await createTask(c, { title: ownTitleC });
  await waitUntil('C to hear of its own task', () =>
    parsed(framesC).some((m) => m.type === 'task_created' && m.data.title === ownTitleC),
  );
  assert.ok(parsed(framesC).some((m) => m.type === 'ready'), 'C was connected');
  const heard = {
    websocket: framesC.filter((f) => f.includes(taskId) || f.includes(title)),
    page: await c.evaluate(() => window.__sawTask),
  };
  assert.deepEqual(heard, { websocket: [], page: [] }, 'C never heard of the task');
  assert.equal(await c.locator(`li.task[data-task-id="${taskId}"]`).count(), 0);
  await shot(c, `${prefix}-c-sees-nothing`);
  assert.deepEqual(pageErrors, [], 'no script errors in any page');
}

for (const [backend, api] of BACKENDS) {
  test(`${backend}: A shares with B, B completes, A assigns to B, all live; C never hears of it`, async (t) => {
    const pages = {};
    try {
      await shareAssignAndWatch(t, backend, api, pages);
    } catch (e) {
      for (const [who, page] of Object.entries(pages)) {
        await shot(page, `${backend.toLowerCase()}-failed-${who}`).catch(() => {});
      }
      throw e;
    } finally {
      for (const page of Object.values(pages)) await page.context().close();
    }
  });
}
