-- SMS (issue 23): the user's phone number in E.164, verified (phone_verified_at set) once the
-- user entered the code sent to it; only a verified number travels on user.updated.
ALTER TABLE users ADD COLUMN phone_number TEXT;
ALTER TABLE users ADD COLUMN phone_verified_at BIGINT;

-- The pending code of a number being verified, one per user: only its keyed hash is stored
-- (bound to the user, the number and the expiry), with the failed attempts counted.
CREATE TABLE phone_verifications (
    user_id TEXT PRIMARY KEY NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    phone_number TEXT NOT NULL,
    code_hash TEXT NOT NULL,
    failed_attempts INTEGER NOT NULL DEFAULT 0,
    sent_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
