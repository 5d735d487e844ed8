// Toasts: short notices in the corner.

import { $ } from './state.js';

// Toasts

export function toast({ title, body = '', kind = 'info', timeoutMs = 8000 }) {
  const item = document.createElement('div');
  item.className = `toast ${kind}`;
  item.setAttribute('role', kind === 'error' ? 'alert' : 'status');
  item.dataset.kind = kind;
  const text = document.createElement('div');
  text.className = 'toast-text';
  const strong = document.createElement('strong');
  strong.textContent = title;
  text.append(strong);
  if (body) {
    const p = document.createElement('p');
    p.textContent = body;
    text.append(p);
  }
  const close = document.createElement('button');
  close.type = 'button';
  close.className = 'toast-close';
  close.setAttribute('aria-label', 'Dismiss');
  close.textContent = '×';
  close.addEventListener('click', () => item.remove());
  item.append(text, close);
  $('toasts').append(item);
  if (timeoutMs > 0) setTimeout(() => item.remove(), timeoutMs);
}
