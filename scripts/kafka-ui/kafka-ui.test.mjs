// The Kafka UI in Debian's headless Chromium (driven by playwright-core): the page loads, its
// terminal session starts, and the topic names appear on it. Run through ../kafka-ui.sh check.
//
// textual-serve draws kaskade on a canvas (xterm.js), so the text is not in the DOM: the test
// reads what the page receives to draw, the terminal output on the page's WebSocket, without
// the escape sequences.
//
//   KAFKA_UI_URL   the UI (e.g. http://127.0.0.1:8080)
//   TOPICS         comma-separated topic names that must appear
//   ARTIFACT_DIR   where the screenshot goes

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import path from 'node:path';

const require = createRequire(import.meta.url);
const { chromium } = require(process.env.PLAYWRIGHT_CORE || 'playwright-core');

const URL = process.env.KAFKA_UI_URL;
const TOPICS = (process.env.TOPICS || '').split(',').filter(Boolean);
const ARTIFACTS = process.env.ARTIFACT_DIR;
/** kaskade's first listing needs the cluster's metadata: a JVM-free but networked start. */
const BOUND = 60_000;

let browser;

before(async () => {
  assert.ok(URL, 'KAFKA_UI_URL must be set');
  assert.ok(TOPICS.length > 0, 'TOPICS must name at least one topic');
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking',
      '--disable-component-update', '--disable-sync', '--no-first-run'],
  });
});

after(async () => {
  await browser?.close();
});

/** Terminal output without control sequences (CSI, OSC, other ESC pairs). */
function plain(text) {
  return text
    .replace(/\x1b\][^\x07\x1b]*(\x07|\x1b\\)/g, '')
    .replace(/\x1b\[[0-?]*[ -/]*[@-~]/g, '')
    .replace(/\x1b[@-_]/g, '');
}

test('the Kafka UI page lists the topics of the cluster', async () => {
  const page = await browser.newPage({ viewport: { width: 1600, height: 1400 } });
  let received = '';
  page.on('websocket', (ws) => {
    ws.on('framereceived', (frame) => {
      const data = frame.payload;
      received += typeof data === 'string' ? data : Buffer.from(data).toString('utf8');
    });
  });
  const response = await page.goto(URL, { waitUntil: 'domcontentloaded' });
  assert.equal(response.status(), 200, `GET ${URL}`);
  await page.waitForSelector('#terminal', { timeout: BOUND });

  const deadline = Date.now() + BOUND;
  let missing = TOPICS;
  while (Date.now() < deadline) {
    const shown = plain(received);
    missing = TOPICS.filter((t) => !shown.includes(t));
    if (missing.length === 0) break;
    await page.waitForTimeout(250);
  }
  if (ARTIFACTS) {
    await page.screenshot({ path: path.join(ARTIFACTS, 'kafka-ui.png') });
  }
  assert.deepEqual(missing, [], `topics not shown within ${BOUND / 1000} s; the page drew:\n${plain(received).slice(-3000)}`);
  await page.close();
});
