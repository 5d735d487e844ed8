-- SMS (issue 23): the user's phone number in E.164 as user.updated carries it, which is only
-- ever a verified one (task-api sends null while a number is unverified).
ALTER TABLE users ADD COLUMN phone_number TEXT;
