// What the browser scripts share: launching Debian's Chromium through playwright-core, and the
// steps of a user on the task page (register, log in, create a task, wait for the live feed).

import { createRequire } from 'node:module';
import path from 'node:path';

const require = createRequire(import.meta.url);
const { chromium } = require(process.env.PLAYWRIGHT_CORE || 'playwright-core');

/** How long a change may take to show in another window. */
export const BOUND = 20_000;
export const PASSWORD = 'correct horse battery';

export function launchChromium() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    // playwright-core gives every launch a fresh temporary --user-data-dir of its own.
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--no-first-run',
    ],
  });
}

export async function shot(page, name) {
  await page.screenshot({ path: path.join(process.env.ARTIFACT_DIR, `${name}.png`), fullPage: true });
}

export function localInput(date) {
  const pad = (n) => String(n).padStart(2, '0');
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}T${pad(date.getHours())}:${pad(date.getMinutes())}`;
}

export const taskItem = (page, title) => page.locator('li.task', { hasText: title });
export const completedItem = (page, title) => page.locator('li.task[data-status="completed"]', { hasText: title });
export const openItem = (page, title) => page.locator('li.task[data-status="open"]', { hasText: title });

export async function waitLive(page) {
  await page.locator('#live-status[data-state="live"]').waitFor({ timeout: BOUND });
}

export async function register(page, email, name, base = process.env.TASK_API_URL) {
  await page.goto(base);
  await page.getByRole('tab', { name: 'Register' }).click();
  const form = page.locator('#register-form');
  await form.getByLabel(/^Name/).fill(name);
  await form.getByLabel('Email').fill(email);
  await form.getByLabel(/^Password/).fill(PASSWORD);
  await form.getByRole('button', { name: 'Create account' }).click();
  await page.getByRole('heading', { name: 'My tasks' }).waitFor({ timeout: BOUND });
  await waitLive(page);
}

export async function logIn(page, email, base = process.env.TASK_API_URL) {
  await page.goto(base);
  const form = page.locator('#login-form');
  await form.getByLabel('Email').fill(email);
  await form.getByLabel('Password').fill(PASSWORD);
  await form.getByRole('button', { name: 'Log in' }).click();
  await page.getByRole('heading', { name: 'My tasks' }).waitFor({ timeout: BOUND });
  await waitLive(page);
}

export async function createTask(page, { title, priority = 'medium', tags = '', dueInMinutes, reminderMinutes, rrule }) {
  await page.getByRole('button', { name: 'New task' }).click();
  const editor = page.locator('#editor');
  await editor.getByLabel('Title').fill(title);
  await editor.getByLabel('Priority', { exact: true }).selectOption(priority);
  if (tags) await editor.getByLabel(/^Tags/).fill(tags);
  if (dueInMinutes !== undefined) {
    await editor.getByLabel(/^Due/).fill(localInput(new Date(Date.now() + dueInMinutes * 60_000)));
  }
  if (rrule) {
    await editor.getByLabel('Rule').selectOption('rrule');
    await editor.getByLabel('Expression').fill(rrule);
  }
  if (reminderMinutes !== undefined) {
    await editor.getByRole('button', { name: 'Add reminder' }).click();
    await editor.getByLabel('Minutes before due').fill(String(reminderMinutes));
  }
  await editor.getByRole('button', { name: 'Save' }).click();
  await editor.waitFor({ state: 'hidden', timeout: BOUND });
  await taskItem(page, title).waitFor({ timeout: BOUND });
}

/** The signed-in user's id, asked of the API with the page's own token. */
export async function userId(page) {
  return page.evaluate(async () => {
    const response = await fetch('/api/me', {
      headers: { Authorization: `Bearer ${sessionStorage.getItem('todo.token')}` },
    });
    return (await response.json()).id;
  });
}

export async function waitUntil(what, check, bound = BOUND) {
  const deadline = Date.now() + bound;
  for (;;) {
    if (await check()) return;
    if (Date.now() > deadline) throw new Error(`timed out after ${bound} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}
