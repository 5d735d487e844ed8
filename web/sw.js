// The service worker: shows a push message (a reminder, "assigned to you") as a notification
// and opens the task when it is clicked. notification-service sends JSON:
// {type, title, body, url, tag, notification_id, task_id}.

self.addEventListener('push', (event) => {
  let message = {};
  try {
    message = event.data ? event.data.json() : {};
  } catch {
    message = { title: event.data ? event.data.text() : 'Tasks' };
  }
  event.waitUntil(
    self.registration.showNotification(message.title || 'Tasks', {
      body: message.body || '',
      tag: message.tag,
      data: { url: message.url || '/' },
    }),
  );
});

self.addEventListener('notificationclick', (event) => {
  event.notification.close();
  const url = (event.notification.data && event.notification.data.url) || '/';
  event.waitUntil(self.clients.openWindow(url));
});
