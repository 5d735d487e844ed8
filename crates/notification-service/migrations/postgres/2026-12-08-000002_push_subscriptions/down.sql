DROP TABLE push_gone;
DROP TABLE push_subscriptions;
