// The page subscribes this browser to web push: a new user presses "Push off", the test has
// granted the notification permission, Chromium registers with the push service (a stand-in,
// see run.sh) using the server's VAPID key, and task-api stores exactly the subscription the
// browser returned, with the push channel added to the profile.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const { chromium } = require(process.env.PLAYWRIGHT_CORE || 'playwright-core');

const BOUND = 20_000;
const base = process.env.TASK_API_URL;
const gcm = process.env.GCM_URL;

test('the page subscribes to push and task-api stores what the browser returned', async () => {
  // Push needs a profile on disk: Chromium refuses the Push API in an incognito context, which
  // is what a non-persistent playwright context is.
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'push-profile-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--no-first-run',
      '--disable-component-update',
      '--disable-sync',
      `--gcm-checkin-url=${gcm}/checkin`,
      `--gcm-registration-url=${gcm}/register`,
    ],
  });
  try {
    await context.grantPermissions(['notifications'], { origin: base });
    const page = context.pages()[0] || (await context.newPage());
    await page.goto(base);
    await page.getByRole('tab', { name: 'Register' }).click();
    const form = page.locator('#register-form');
    await form.getByLabel(/^Name/).fill('Push Tester');
    const email = `push-${Date.now()}-${process.pid}@example.com`;
    await form.getByLabel('Email').fill(email);
    await form.getByLabel(/^Password/).fill('correct horse battery');
    await form.getByRole('button', { name: 'Create account' }).click();
    await page.getByRole('heading', { name: 'My tasks' }).waitFor({ timeout: BOUND });

    const toggle = page.locator('#push-toggle');
    await toggle.waitFor({ state: 'visible', timeout: BOUND });
    assert.equal(await toggle.getAttribute('aria-pressed'), 'false');
    await toggle.click();
    await page.locator('#push-toggle[aria-pressed="true"]').waitFor({ timeout: BOUND });
    await page.screenshot({ path: path.join(process.env.ARTIFACT_DIR, 'push-subscribed.png'), fullPage: true });

    const { browser, stored, me } = await page.evaluate(async () => {
      const reg = await navigator.serviceWorker.getRegistration('/');
      const subscription = await reg.pushManager.getSubscription();
      const auth = { Authorization: `Bearer ${sessionStorage.getItem('todo.token')}` };
      const get = async (p) => (await fetch(p, { headers: auth })).json();
      return {
        browser: subscription && subscription.toJSON(),
        stored: await get('/api/me/push-subscriptions'),
        me: await get('/api/me'),
      };
    });
    assert.ok(browser, 'the browser holds a push subscription');
    assert.equal(stored.length, 1, JSON.stringify(stored));
    assert.equal(stored[0].endpoint, browser.endpoint);
    assert.deepEqual(stored[0].keys, browser.keys);
    assert.ok(me.notification_channels.includes('push'), JSON.stringify(me));
    console.log(`SUBSCRIBED ${browser.endpoint}`);

    // Signing out stops this browser receiving the user's pushes (someone else may sign in
    // here); signing in again stores the browser's subscription again.
    const token = await page.evaluate(() => sessionStorage.getItem('todo.token'));
    const storedNow = async () =>
      (await fetch(`${base}/api/me/push-subscriptions`, { headers: { Authorization: `Bearer ${token}` } })).json();
    await page.locator('#logout').click();
    const deadline = Date.now() + BOUND;
    while ((await storedNow()).length !== 0) {
      assert.ok(Date.now() < deadline, 'the subscription is dropped at sign-out');
      await new Promise((r) => setTimeout(r, 200));
    }
    const login = page.locator('#login-form');
    await login.getByLabel('Email').fill(email);
    await login.getByLabel('Password').fill('correct horse battery');
    await login.getByRole('button', { name: 'Log in' }).click();
    await page.locator('#push-toggle[aria-pressed="true"]').waitFor({ timeout: BOUND });
    const again = await storedNow();
    assert.equal(again.length, 1, JSON.stringify(again));
    assert.equal(again[0].endpoint, browser.endpoint);
    assert.deepEqual(again[0].keys, browser.keys);
  } finally {
    await context.close();
    fs.rmSync(profile, { recursive: true, force: true });
  }
});
