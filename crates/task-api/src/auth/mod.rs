//! Credentials: password hashing and login rate limiting.

pub mod passwords;
pub mod rate_limit;
