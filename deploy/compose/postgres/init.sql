-- One database per service (docker-compose.yml); each service migrates its own schema at start.
CREATE DATABASE task_api;
CREATE DATABASE notifications;
CREATE DATABASE recurring;
CREATE DATABASE audit;
