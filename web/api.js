// REST: every call to task-api, with the token; a 401 signs out.

import { $, state } from './state.js';
import { signOut } from './auth.js';

// REST

class ApiError extends Error {
  constructor(status, problem) {
    super(problemText(status, problem));
    this.status = status;
    this.problem = problem;
  }
}

function problemText(status, problem) {
  if (!problem || typeof problem !== 'object') return `Request failed (${status})`;
  const fields = Array.isArray(problem.errors)
    ? problem.errors.map((e) => `${e.field}: ${e.message}`).join('; ')
    : '';
  return [problem.detail || problem.title || `Request failed (${status})`, fields]
    .filter(Boolean)
    .join(' — ');
}

export async function api(method, path, body, extraHeaders = {}) {
  const headers = { Accept: 'application/json', ...extraHeaders };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  if (state.token) headers.Authorization = `Bearer ${state.token}`;
  let response;
  try {
    response = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch {
    throw new ApiError(0, { detail: 'The server cannot be reached. Check your connection.' });
  }
  const text = await response.text();
  let data = null;
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = null;
    }
  }
  if (!response.ok) {
    if (response.status === 401 && state.token && !path.startsWith('/api/auth/')) {
      signOut('Your session has ended. Please log in again.');
    }
    throw new ApiError(response.status, data);
  }
  return data;
}
