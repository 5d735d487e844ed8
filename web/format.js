// Times and recurrence rules in words, in the user's time zone.

import { $ } from './state.js';

// Time helpers

const dateFormat = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'short' });

export function formatTime(iso) {
  if (!iso) return '';
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? iso : dateFormat.format(d);
}

/** A time in an IANA zone, named when that zone is not the browser's (09:00 in Berlin is not
 *  09:00 here). */
export function formatTimeIn(iso, zone) {
  if (!iso || !zone || zone === localTimeZone()) return formatTime(iso);
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return iso;
  try {
    const inZone = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'short', timeZone: zone });
    return `${inZone.format(d)} (${zone})`;
  } catch {
    return formatTime(iso);
  }
}

/** HH:MM of a time in a zone (24-hour), or '' when it cannot be shown. */
function clockIn(iso, zone) {
  const d = new Date(iso);
  if (!iso || Number.isNaN(d.getTime())) return '';
  try {
    const parts = new Intl.DateTimeFormat('en-GB', { hour: '2-digit', minute: '2-digit', hourCycle: 'h23', timeZone: zone }).formatToParts(d);
    const get = (type) => (parts.find((p) => p.type === type) || {}).value || '';
    return `${get('hour')}:${get('minute')}`;
  } catch {
    return '';
  }
}

// Recurrence in words: "Every week on Mon, Wed, Fri at 09:00, Europe/Berlin", from the rule.

const WEEKDAYS = { MO: 'Mon', TU: 'Tue', WE: 'Wed', TH: 'Thu', FR: 'Fri', SA: 'Sat', SU: 'Sun' };
const CRON_WEEKDAYS = ['Sun', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat', 'Sun'];
const CRON_DAY_NAMES = { SUN: 0, MON: 1, TUE: 2, WED: 3, THU: 4, FRI: 5, SAT: 6 };
const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
const UNITS = { SECONDLY: 'second', MINUTELY: 'minute', HOURLY: 'hour', DAILY: 'day', WEEKLY: 'week', MONTHLY: 'month', YEARLY: 'year' };
const ORDINALS = { 1: 'first', 2: 'second', 3: 'third', 4: 'fourth', 5: 'fifth', '-1': 'last', '-2': 'second to last' };
const pad2 = (n) => String(n).padStart(2, '0');

function listWords(items) {
  return items.join(', ');
}

function describeRRule(text, dueAt, zone) {
  const parts = {};
  for (const piece of text.replace(/^RRULE:/i, '').split(';')) {
    const [k, v] = piece.split('=');
    if (k && v) parts[k.trim().toUpperCase()] = v.trim().toUpperCase();
  }
  const unit = UNITS[parts.FREQ];
  if (!unit) return null;
  const n = Number(parts.INTERVAL || 1);
  const words = [n > 1 ? `Every ${n} ${unit}s` : `Every ${unit}`];
  if (parts.BYDAY) {
    const days = parts.BYDAY.split(',').map((d) => {
      const m = /^([+-]?\d+)?([A-Z]{2})$/.exec(d);
      if (!m || !WEEKDAYS[m[2]]) return d;
      return m[1] ? `the ${ORDINALS[Number(m[1])] || `${m[1]}.`} ${WEEKDAYS[m[2]]}` : WEEKDAYS[m[2]];
    });
    words.push(`on ${listWords(days)}`);
  }
  if (parts.BYMONTHDAY) words.push(`on day ${listWords(parts.BYMONTHDAY.split(','))}`);
  if (parts.BYMONTH) words.push(`in ${listWords(parts.BYMONTH.split(',').map((m) => MONTHS[Number(m) - 1] || m))}`);
  if (parts.BYHOUR) {
    const minutes = (parts.BYMINUTE || '0').split(',');
    const times = parts.BYHOUR.split(',').flatMap((h) => minutes.map((m) => `${pad2(h)}:${pad2(m)}`));
    words.push(`at ${listWords(times)}`);
  } else if (dueAt && ['day', 'week', 'month', 'year'].includes(unit)) {
    const clock = clockIn(dueAt, zone);
    if (clock) words.push(`at ${clock}`);
  }
  return { text: words.join(' '), count: parts.COUNT ? Number(parts.COUNT) : null };
}

function cronDay(token) {
  const t = token.toUpperCase();
  return t in CRON_DAY_NAMES ? CRON_DAY_NAMES[t] : Number(t);
}

function describeCron(text) {
  let fields = text.trim().split(/\s+/);
  if (fields.length === 6 || fields.length === 7) fields = fields.slice(1, 6); // seconds first
  if (fields.length !== 5) return null;
  const [minute, hour, dom, month, dow] = fields;
  if (!/^\d+$/.test(minute) || !/^\d+(,\d+)*$/.test(hour)) return null;
  const at = `at ${listWords(hour.split(',').map((h) => `${pad2(h)}:${pad2(minute)}`))}`;
  const words = [];
  if (dow !== '*' && dow !== '?') {
    const days = [];
    for (const piece of dow.split(',')) {
      const range = piece.split('-');
      if (range.length === 2) {
        const [a, b] = range.map(cronDay);
        if (Number.isNaN(a) || Number.isNaN(b)) return null;
        days.push(`${CRON_WEEKDAYS[a]}–${CRON_WEEKDAYS[b]}`);
      } else {
        const d = cronDay(piece);
        if (Number.isNaN(d) || !CRON_WEEKDAYS[d]) return null;
        days.push(CRON_WEEKDAYS[d]);
      }
    }
    words.push(`Every week on ${listWords(days)}`);
  } else if (dom !== '*' && dom !== '?') {
    words.push(`Every month on day ${listWords(dom.split(','))}`);
  } else {
    words.push('Every day');
  }
  if (month !== '*') words.push(`in ${listWords(month.split(',').map((m) => MONTHS[Number(m) - 1] || m))}`);
  words.push(at);
  return { text: words.join(' '), count: null };
}

/** A recurrence in words, e.g. "Every week on Mon, Wed, Fri at 09:00, Europe/Berlin". */
export function describeRecurrence(r, dueAt) {
  const rule = r.rrule ? describeRRule(r.rrule, dueAt, r.timezone) : describeCron(r.cron || '');
  const base = rule ? rule.text : r.rrule ? `Repeats ${r.rrule}` : `Repeats (cron ${r.cron})`;
  const count = r.count || (rule && rule.count);
  const extra = [];
  if (r.until) extra.push(`until ${formatTimeIn(r.until, r.timezone)}`);
  if (count) extra.push(`${count} times`);
  if (r.mode === 'after_completion') extra.push('counted from completion');
  return [base, r.timezone, ...extra].filter(Boolean).join(', ');
}

/** RFC 3339 -> value of an <input type="datetime-local"> (local time). */
export function toLocalInput(iso) {
  if (!iso) return '';
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return '';
  const pad = (n) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}`;
}

/** Value of a datetime-local input (local time) -> RFC 3339 UTC, or null. */
export function fromLocalInput(value) {
  if (!value) return null;
  const d = new Date(value);
  return Number.isNaN(d.getTime()) ? null : d.toISOString();
}

export function localTimeZone() {
  try {
    return Intl.DateTimeFormat().resolvedOptions().timeZone || 'UTC';
  } catch {
    return 'UTC';
  }
}
