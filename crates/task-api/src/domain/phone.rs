//! Phone numbers and their verification codes, without I/O.
//!
//! A number is checked against the numbering plan (the `phonenumber` crate carries
//! libphonenumber's metadata) and kept in E.164 (`+4915112345678`). It must be written with its
//! country code: the service has no notion of a user's region to guess one from.
//!
//! A code is six random digits, valid for [`CODE_TTL_MS`], at most [`MAX_FAILED_ATTEMPTS`]
//! wrong guesses (a million codes against five guesses). Only its keyed hash is stored: an
//! HMAC under the SMS gateway's signing key of the user, the number and the code, with the
//! expiry as the signed timestamp, so a leaked table reveals no code, and a hash is good for
//! this user, number and expiry only. The webhook signature code computes it.

use serde::Deserialize;
use utoipa::ToSchema;

/// How long a code is valid.
pub const CODE_TTL_MS: i64 = 10 * 60 * 1000;
/// Wrong codes allowed before the code is void (a new one must be requested).
pub const MAX_FAILED_ATTEMPTS: i32 = 5;
/// Shortest time between two codes sent to a user (each one is a paid text).
pub const RESEND_INTERVAL_MS: i64 = 30 * 1000;
const CODE_DIGITS: usize = 6;

/// `PUT /api/me/phone`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PhoneRequest {
    /// With its country code; spaces, dashes and brackets are ignored.
    #[schema(example = "+49 151 12345678")]
    pub phone_number: String,
}

/// `POST /api/me/phone/verify`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VerifyPhoneRequest {
    /// The six digits sent by SMS.
    #[schema(example = "123456")]
    pub code: String,
}

/// A valid phone number, in E.164.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PhoneNumber(String);

impl PhoneNumber {
    pub fn parse(value: &str) -> Result<Self, String> {
        let value = value.trim();
        let fail =
            || "must be a phone number with its country code, e.g. +49 151 12345678".to_owned();
        if !value.starts_with('+') || value.len() > 32 {
            return Err(fail());
        }
        let number = phonenumber::parse(None, value).map_err(|_| fail())?;
        if !phonenumber::is_valid(&number) {
            return Err("is not a valid number in its country's numbering plan".to_owned());
        }
        Ok(Self(
            number.format().mode(phonenumber::Mode::E164).to_string(),
        ))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A fresh code: six digits from the operating system's CSPRNG.
pub fn new_code() -> Result<String, getrandom::Error> {
    let mut bytes = [0u8; 8];
    getrandom::getrandom(&mut bytes)?;
    // 2^64 is so much larger than 10^6 that the modulo's bias is nil.
    let n = u64::from_le_bytes(bytes) % 10u64.pow(CODE_DIGITS as u32);
    Ok(format!("{n:0width$}", width = CODE_DIGITS))
}

fn message(user_id: &str, phone: &str, code: &str) -> String {
    format!("phone-code/{user_id}/{phone}/{code}")
}

/// The stored form of a code.
pub fn code_hash(key: &str, user_id: &str, phone: &str, code: &str, expires_at: i64) -> String {
    service_kit::webhook::signature(key, expires_at, message(user_id, phone, code).as_bytes())
}

/// Whether `code` is the one hashed (constant-time).
pub fn code_matches(
    key: &str,
    user_id: &str,
    phone: &str,
    code: &str,
    expires_at: i64,
    hash: &str,
) -> bool {
    service_kit::webhook::verify(
        key,
        expires_at,
        message(user_id, phone, code.trim()).as_bytes(),
        hash,
    )
}

/// The text that carries a code.
pub fn code_text(code: &str) -> String {
    format!("{code} is your Todo verification code. It expires in 10 minutes.")
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_kept_in_e164_and_nonsense_refused() {
        assert_eq!(
            PhoneNumber::parse(" +49 (151) 1234-5678 ")
                .unwrap()
                .as_str(),
            "+4915112345678"
        );
        assert_eq!(
            PhoneNumber::parse("+1 415 555 2671").unwrap().as_str(),
            "+14155552671"
        );
        for bad in [
            "015112345678",
            "+49 1",
            "+999 123456789",
            "call me",
            "+",
            "",
        ] {
            assert!(PhoneNumber::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn codes_are_six_digits_and_match_only_their_user_number_and_expiry() {
        let code = new_code().unwrap();
        assert_eq!(code.len(), 6);
        assert!(code.bytes().all(|b| b.is_ascii_digit()));
        let key = "k".repeat(32);
        let hash = code_hash(&key, "u", "+14155552671", &code, 99);
        assert!(code_matches(&key, "u", "+14155552671", &code, 99, &hash));
        assert!(!hash.contains(&code));
        assert!(!code_matches(&key, "v", "+14155552671", &code, 99, &hash));
        assert!(!code_matches(&key, "u", "+14155552672", &code, 99, &hash));
        assert!(!code_matches(&key, "u", "+14155552671", &code, 98, &hash));
        let other = if code == "000000" { "000001" } else { "000000" };
        assert!(!code_matches(&key, "u", "+14155552671", other, 99, &hash));
    }
}
