DROP INDEX event_outbox_dead;
